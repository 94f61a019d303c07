"""Predict activities in a new recording (a CSV file) with a trained run.

The recording's columns are named as the run's channels; an optional `timestamp` column (seconds)
gives its sampling rate, which must match the run's (or be resampled with `resample=True`). Windows
are cut like the training data, normalised with the training statistics, and classified with
onnxruntime when the run holds `model.onnx`, else with PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harkit import HarkitError
from harkit.datasets.windows import fill_gaps as interpolate_gaps
from harkit.export import INPUT_NAME, OUTPUT_NAME, deployment_meta

RATE_TOLERANCE = 0.02


def read_recording(path: Path, channels: list[str], fill_gaps: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(signals `[n, channels]` float32, timestamps in seconds or None) from a CSV file."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise HarkitError(f"cannot read {path}: {error}") from None
    missing = [c for c in channels if c not in frame.columns]
    if missing:
        raise HarkitError(f"{path} lacks the columns {missing}; the model needs {channels}")
    values = frame[channels].apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & frame[channels].notna()
    if bad.any().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        raise HarkitError(
            f"{path}: non-numeric value {frame[channels].iat[row, column]!r} in column {channels[column]!r} "
            f"at data row {row + 1}"
        )
    signals = values.to_numpy(np.float32)
    gaps = np.flatnonzero(np.isnan(signals).any(axis=1))
    if len(gaps) and not fill_gaps:
        raise HarkitError(
            f"{path} has missing values in {len(gaps)} rows (the first at data row {gaps[0] + 1}); fill or drop "
            "them, or pass --fill-gaps to interpolate them"
        )
    if len(gaps):
        signals = interpolate_gaps(signals)
        if np.isnan(signals).any():
            raise HarkitError(f"{path}: a column is empty; it cannot be interpolated")
    timestamps = frame["timestamp"].to_numpy(np.float64) if "timestamp" in frame.columns else None
    return signals, timestamps


def conform_rate(
    signals: np.ndarray, timestamps: np.ndarray | None, rate: float | None, target: float, resample: bool, path: Path
) -> np.ndarray:
    """Check the recording's rate against the model's; resample linearly when asked."""
    if timestamps is not None:
        steps = np.diff(timestamps)
        if len(steps) and (steps <= 0).any():
            row = int(np.flatnonzero(steps <= 0)[0]) + 2
            raise HarkitError(f"{path}: timestamps do not increase at data row {row}")
        measured = 1.0 / float(np.median(steps)) if len(steps) else target
        rate = rate or measured
    rate = rate or target
    if abs(rate - target) / target <= RATE_TOLERANCE:
        return signals
    if not resample:
        raise HarkitError(
            f"{path} is sampled at {rate:.4g} Hz but the model expects {target:.4g} Hz; pass --resample to "
            "resample it, or record at the model's rate"
        )
    duration = (len(signals) - 1) / rate
    source = np.arange(len(signals)) / rate
    target_times = np.arange(0, duration + 1e-9, 1.0 / target)
    return np.stack([np.interp(target_times, source, signals[:, c]) for c in range(signals.shape[1])], 1).astype(
        np.float32
    )


def classify(run: Path, windows: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, str]:
    """Class probabilities `[n, classes]` and the backend that computed them."""
    if (run / "model.onnx").is_file():
        import onnxruntime

        session = onnxruntime.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
        logits = np.concatenate(
            [
                session.run([OUTPUT_NAME], {INPUT_NAME: windows[i : i + batch_size]})[0]
                for i in range(0, len(windows), batch_size)
            ]
        )
        backend = "onnxruntime"
    else:
        from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint

        model = model_from_checkpoint(load_checkpoint(run / "best.pt"))
        with torch.inference_mode():
            logits = torch.cat(
                [model(torch.from_numpy(windows[i : i + batch_size])) for i in range(0, len(windows), batch_size)]
            ).numpy()
        backend = "pytorch"
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy(), backend


def timeline(predictions: pd.DataFrame) -> pd.DataFrame:
    """Consecutive windows with the same label merged into segments (start, end, label)."""
    labels = predictions["label"].to_numpy()
    new_segment = np.concatenate([[True], labels[1:] != labels[:-1]])
    segment = np.cumsum(new_segment) - 1
    grouped = predictions.groupby(segment)
    return pd.DataFrame(
        {
            "start_s": grouped["start_s"].min(),
            "end_s": grouped["end_s"].max(),
            "label": grouped["label"].first(),
            "windows": grouped.size(),
            "mean_confidence": grouped["confidence"].mean(),
        }
    ).reset_index(drop=True)


def predict_recording(
    run: Path | str,
    recording: Path | str,
    out: Path | str | None = None,
    rate: float | None = None,
    resample: bool = False,
    fill_gaps: bool = False,
) -> dict:
    """Per-window predictions and a merged timeline for one recording; written as CSV to `out` if given."""
    run, recording = Path(run), Path(recording)
    meta = deployment_meta(run)
    signals, timestamps = read_recording(recording, meta["channels"], fill_gaps)
    signals = conform_rate(signals, timestamps, rate, meta["sampling_rate"], resample, recording)
    window, step, target = meta["window"], meta["step"], meta["sampling_rate"]
    if len(signals) < window:
        raise HarkitError(
            f"{recording} has {len(signals)} samples, fewer than one window of {window} "
            f"({window / target:.2f} s at {target:.4g} Hz)"
        )
    normalised = (signals - np.array(meta["mean"], np.float32)) / np.array(meta["std"], np.float32)
    starts = np.arange(0, len(signals) - window + 1, step)
    view = np.lib.stride_tricks.sliding_window_view(normalised, window, axis=0)
    windows = np.ascontiguousarray(view[starts].transpose(0, 2, 1), dtype=np.float32)
    probabilities, backend = classify(run, windows)
    best = probabilities.argmax(1)
    predictions = pd.DataFrame(
        {
            "window": np.arange(len(starts)),
            "start_sample": starts,
            "end_sample": starts + window,
            "start_s": starts / target,
            "end_s": (starts + window) / target,
            "label": np.array(meta["classes"])[best],
            "confidence": probabilities.max(1),
        }
    )
    for index, name in enumerate(meta["classes"]):
        predictions[f"p_{name}"] = probabilities[:, index]
    segments = timeline(predictions)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        predictions.to_csv(out / "predictions.csv", index=False, float_format="%.6g")
        segments.to_csv(out / "timeline.csv", index=False, float_format="%.6g")
    return {"predictions": predictions, "timeline": segments, "backend": backend}
