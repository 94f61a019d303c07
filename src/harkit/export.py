"""Export a trained run to ONNX, with what a deployment needs beside it, checked against PyTorch.

Export writes exactly two files into the run: `model.onnx` (graph and weights in one file, no
`model.onnx.data` beside it) and `model.json` (channels, classes, window, step, rate, normalisation).
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from harkit import HarkitError
from harkit.runs import Run

INPUT_NAME, OUTPUT_NAME = "windows", "logits"
# The exporter logs, at warning level, each torchvision operator it skips when torchvision is absent:
# harkit's models use none of them.
_EXPORTER_LOGGERS = ("torch.onnx._internal.exporter._registration",)


def deployment_meta(run: Path | str) -> dict:
    """Channels, classes, window, step, sampling rate and normalisation of a run, from its checkpoint."""
    return Run(run).info | {
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "input_layout": "[batch, window, channels], float32, normalised: (x - mean) / std",
    }


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's chatter that says nothing about this model; its errors still raise."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation warnings
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def export_onnx(run: Path | str, check_windows: int = 64, seed: int = 0) -> dict:
    """Write `model.onnx` and `model.json` into the run and compare onnxruntime with PyTorch.

    Returns the paths and the largest absolute difference between the two on `check_windows` windows.
    """
    import onnxruntime

    opened = Run(run)
    run = opened.path
    model = opened.model()
    meta = deployment_meta(run)
    window, channels = meta["window"], len(meta["channels"])
    example = torch.randn(2, window, channels, generator=torch.Generator().manual_seed(seed))
    path = run / "model.onnx"
    (run / "model.onnx.data").unlink(missing_ok=True)  # the weights file of an earlier export, now inline
    with _quiet_exporter():
        try:
            torch.onnx.export(
                model,
                (example,),
                path,
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                external_data=False,  # one file: harkit's models are far below ONNX's 2 GB limit
                verbose=False,
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
