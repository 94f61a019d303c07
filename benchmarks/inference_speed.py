"""Inference latency of SANN and `tiny`: onnxruntime against PyTorch (eager, inference mode) at batch 1 and 256.

Exports each freshly initialised model for HAPT's window shape (128 x 6, 6 classes) to a temporary ONNX file,
then times both backends with the same inputs, float32 on the CPU, `--threads` intra-op threads for both (the
PyTorch default: all cores): warm-up runs, then the median and 95th percentile of `--repeats` runs. The
machine facts of `harkit doctor` come first.
Usage: python benchmarks/inference_speed.py [--models sann,tiny] [--repeats 50] [--threads N] [--batches 1,256]
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

from harkit.hardware import facts_lines, machine_facts
from harkit.models import create_model, list_models


def timed(functions: list, repeats: int, warmup: int = 5) -> list[tuple[float, float]]:
    """Median and 95th percentile ms of each function, called in turn so that all meet the same machine load."""
    for _ in range(warmup):
        for function in functions:
            function()
    timings: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, times in zip(functions, timings, strict=True):
            start = time.perf_counter()
            function()
            times.append((time.perf_counter() - start) * 1000)
    return [(statistics.median(times), sorted(times)[round(0.95 * (len(times) - 1))]) for times in timings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sann,tiny", help="comma-separated; those not registered are left out")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads of both backends [all cores]")
    parser.add_argument("--batches", default="1,256", help="comma-separated batch sizes")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for line in facts_lines(machine_facts()):
        print(line)
    for name in args.models.split(","):
        if name in list_models():
            benchmark(name, args.repeats, [int(batch) for batch in args.batches.split(",")])
        else:
            print(f"{name}: not a registered model here, left out")


def benchmark(name: str, repeats: int, batches: list[int]) -> None:
    window, channels, classes = 128, 6, 6
    torch.manual_seed(0)
    model = create_model(name, window, channels, classes).eval()
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
        print(f"{name}, CPU, {torch.get_num_threads()} threads for both backends, float32")
        for batch in batches:
            x = np.random.default_rng(0).normal(size=(batch, window, channels)).astype(np.float32)
            tensor = torch.from_numpy(x)

            def run_torch(tensor=tensor):
                with torch.inference_mode():
                    model(tensor)

            (torch_median, torch_p95), (onnx_median, onnx_p95) = timed(
                [run_torch, lambda x=x: session.run(None, {"windows": x})], repeats
            )
            print(
                f"batch {batch:3d}: PyTorch {torch_median:8.3f} ms (p95 {torch_p95:.3f})  onnxruntime "
                f"{onnx_median:8.3f} ms (p95 {onnx_p95:.3f})  ratio {torch_median / onnx_median:.2f}x"
            )


if __name__ == "__main__":
    main()
