"""Inference latency of SANN: onnxruntime against PyTorch (eager, inference mode) at batch 1 and 256.

Exports a freshly initialised SANN for HAPT's window shape to a temporary ONNX file, then times both
backends with the same inputs: warm-up runs, then the median and 95th percentile of `--repeats` runs.
Usage: python benchmarks/inference_speed.py [--model sann] [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from harkit.models import create_model


def timed(function, repeats: int, warmup: int = 5) -> tuple[float, float]:
    for _ in range(warmup):
        function()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    return statistics.median(timings), timings[round(0.95 * (len(timings) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sann")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    window, channels, classes = 128, 6, 6
    torch.manual_seed(0)
    model = create_model(args.model, window, channels, classes).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.randn(2, window, channels),),
                path,
                dynamo=True,
                input_names=["windows"],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        print(f"{args.model}, CPU, {torch.get_num_threads()} threads for both backends, float32")
        for batch in (1, 256):
            x = np.random.default_rng(0).normal(size=(batch, window, channels)).astype(np.float32)
            tensor = torch.from_numpy(x)

            def run_torch(tensor=tensor):
                with torch.inference_mode():
                    model(tensor)

            torch_median, torch_p95 = timed(run_torch, args.repeats)
            onnx_median, onnx_p95 = timed(lambda x=x: session.run(None, {"windows": x}), args.repeats)
            print(
                f"batch {batch:3d}: PyTorch {torch_median:8.3f} ms (p95 {torch_p95:.3f})  onnxruntime "
                f"{onnx_median:8.3f} ms (p95 {onnx_p95:.3f})  ratio {torch_median / onnx_median:.2f}x"
            )


if __name__ == "__main__":
    main()
