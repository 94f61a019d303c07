"""Export a trained run to ONNX, with what a deployment needs beside it, checked against PyTorch."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from harkit import HarkitError
from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint

INPUT_NAME, OUTPUT_NAME = "windows", "logits"


def deployment_meta(run: Path) -> dict:
    """Channels, classes, window, step, sampling rate and normalisation of a run, from its checkpoint."""
    checkpoint = load_checkpoint(Path(run) / "best.pt")
    dataset = json.loads((Path(run) / "dataset.json").read_text())
    return {
        "dataset": checkpoint["dataset"],
        "model": checkpoint["model"]["name"],
        "channels": checkpoint["channels"],
        "classes": checkpoint["classes"],
        "window": checkpoint["model"]["window"],
        "step": dataset["step"],
        "sampling_rate": checkpoint["sampling_rate"],
        "mean": checkpoint["mean"],
        "std": checkpoint["std"],
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "input_layout": "[batch, window, channels], float32, normalised: (x - mean) / std",
    }


def export_onnx(run: Path | str, check_windows: int = 64, seed: int = 0) -> dict:
    """Write `model.onnx` and `model.json` into the run and compare onnxruntime with PyTorch.

    Returns the paths and the largest absolute difference between the two on `check_windows` windows.
    """
    import onnxruntime

    run = Path(run)
    checkpoint = load_checkpoint(run / "best.pt")
    model = model_from_checkpoint(checkpoint)
    meta = deployment_meta(run)
    window, channels = meta["window"], len(meta["channels"])
    example = torch.randn(2, window, channels, generator=torch.Generator().manual_seed(seed))
    path = run / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation chatter
        try:
            torch.onnx.export(
                model,
                (example,),
                path,
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            )
        except Exception as error:
            path.unlink(missing_ok=True)
            raise HarkitError(f"ONNX export of {meta['model']} failed: {error}") from None
    check = torch.randn(check_windows, window, channels, generator=torch.Generator().manual_seed(seed + 1))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = session.run([OUTPUT_NAME], {INPUT_NAME: check.numpy()})[0]
    with torch.inference_mode():
        torch_out = model(check).numpy()
    difference = float(np.abs(onnx_out - torch_out).max())
    meta["max_abs_difference"] = difference
    (run / "model.json").write_text(json.dumps(meta, indent=2))
    if difference > 1e-3:
        raise HarkitError(f"the ONNX model differs from PyTorch by up to {difference:.2g}; do not ship {path}")
    return {"onnx": str(path), "meta": str(run / "model.json"), "max_abs_difference": difference}
