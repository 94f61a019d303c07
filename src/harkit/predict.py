"""Predict activities in a new recording (a CSV file) with a trained run or a pretrained model.

The recording's columns are named as the model's channels; an optional `timestamp` column (seconds) gives
its sampling rate, which must match the model's (or be resampled with `resample=True`, polyphase with an
anti-aliasing filter). Without timestamps the rate is `rate` if given, else the model's own, and the result
says so. Windows are cut like the training data, normalised with the training statistics, and classified with
onnxruntime when the run holds `model.onnx`, else with PyTorch.

Overlapping windows are merged into one label per sample: each sample gets the mean of the class
probabilities of every window that covers it. The last window is aligned to the recording's end, so the
tail after the last regular window (fewer than `step` samples) is covered by the model too, not guessed.
`smooth` (seconds) then merges segments shorter than that into a neighbour.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harkit import HarkitError
from harkit.datasets.resample import resample_signals
from harkit.datasets.windows import fill_gaps as interpolate_gaps
from harkit.export import INPUT_NAME, OUTPUT_NAME, deployment_meta

RATE_TOLERANCE = 0.02
PLOT_POINTS = 20_000  # per channel in timeline.png; longer recordings are thinned for drawing only
PLOT_CHANNELS = 12


@dataclass
class Recording:
    """A recording as read from CSV: signals `[n, channels]`, timestamps (s) or None, labels or None."""

    signals: np.ndarray
    timestamps: np.ndarray | None
    labels: pd.Series | None


@dataclass
class Predictor:
    """What predicts: the deployment facts (`Run.info` keys), a name to show, an ONNX file or a PyTorch model."""

    info: dict
    name: str
    onnx: Path | None
    load_model: Callable[[], torch.nn.Module]
    # How recordings like the training ones write time: (column, unit), from a folder dataset's harkit.toml;
    # None: a `timestamp` column in seconds.
    timestamps: tuple[str, str | None] | None = None


def open_predictor(run: Path | str | None = None, pretrained: str | None = None) -> Predictor:
    """The predictor of a run directory, or of a pretrained model shipped with harkit (exactly one of the two)."""
    if (run is None) == (pretrained is None):
        raise HarkitError("give either a run directory or --pretrained NAME, not both or neither")
    if pretrained is not None:
        from harkit.pretrained import PRETRAINED_NAMES, load_pretrained

        if pretrained not in PRETRAINED_NAMES:
            raise HarkitError(f"no pretrained model {pretrained!r}; harkit ships {', '.join(PRETRAINED_NAMES)}")
        model, info = load_pretrained(pretrained)
        return Predictor(info, f"pretrained {pretrained}", None, lambda: model)
    run = Path(run)
    meta = deployment_meta(run)

    def load_model() -> torch.nn.Module:
        from harkit.runs import Run

        return Run(run).model()  # loaded without unpickling code

    onnx = run / "model.onnx"
    return Predictor(meta, str(run), onnx if onnx.is_file() else None, load_model, _timestamp_format(run))


def _timestamp_format(run: Path) -> tuple[str, str | None] | None:
    """The timestamp column and unit of the folder dataset a run was trained on (its copied harkit.toml)."""
    from harkit.runs import TOML_COPY

    if not (run / TOML_COPY).is_file():
        return None
    try:
        description = tomllib.loads((run / TOML_COPY).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if "timestamp_column" not in description:
        return None
    return str(description["timestamp_column"]), description.get("timestamp_unit")


def read_recording(
    path: Path,
    channels: list[str],
    fill_gaps: bool = False,
    label_column: str | None = None,
    timestamps: tuple[str, str | None] | None = None,
) -> Recording:
    """Signals (float32), timestamps (float64 seconds, checked) and labels of a CSV recording.

    `timestamps` is (column, unit) as a folder dataset's harkit.toml gives them (epoch numbers in the unit,
    or ISO 8601 date-times); without, a `timestamp` column holds seconds.

    Raises:
        HarkitError: unreadable file; a missing column; a value that is not a number or not finite (naming
            the row and column); missing values without `fill_gaps`; a timestamp that is text or empty.
    """
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise HarkitError(f"cannot read {path}: {error}") from None
    missing = [c for c in channels if c not in frame.columns]
    if missing:
        raise HarkitError(f"{path} lacks the columns {missing}; the model needs {channels}")
    if label_column is not None and label_column not in frame.columns:
        raise HarkitError(
            f"{path} has no column {label_column!r} for --label-column; its columns are {list(frame.columns)}"
        )
    values = frame[channels].apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & frame[channels].notna()
    if bad.any().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        raise HarkitError(
            f"{path}: non-numeric value {frame[channels].iat[row, column]!r} in column {channels[column]!r} "
            f"at data row {row + 1}"
        )
    signals = values.to_numpy(np.float64)
    infinite = np.isinf(signals)
    if infinite.any():
        # a value beyond float range (1e400) is read as inf: both would poison every window that holds them
        row, column = np.argwhere(infinite)[0]
        raise HarkitError(
            f"{path}: non-finite value {signals[row, column]} in column {channels[column]!r} at data row {row + 1} "
            f"({int(infinite.any(axis=1).sum())} such rows); replace it with a measured value, or leave the cell "
            "empty and pass --fill-gaps"
        )
    too_large = np.abs(np.nan_to_num(signals)) > np.finfo(np.float32).max  # would become inf as float32
    if too_large.any():
        row, column = np.argwhere(too_large)[0]
        raise HarkitError(
            f"{path}: value {values.iat[row, column]} in column {channels[column]!r} at data row {row + 1} is too "
            "large for float32; check the units"
        )
    signals = signals.astype(np.float32)
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
    column, unit = timestamps or ("timestamp", None)
    times = None
    if column in frame.columns and timestamps is None:
        times = _timestamps(frame[column], path)
    elif column in frame.columns:
        from harkit.datasets.timestamps import parse_timestamps

        times = _increasing(parse_timestamps(frame[column], unit, str(path)).astype(np.float64) / 1e9, path)
    labels = frame[label_column] if label_column is not None else None
    return Recording(signals, times, labels)


def _timestamps(column: pd.Series, path: Path) -> np.ndarray:
    """The timestamp column as float64 seconds, refusing text, empty and non-finite cells by row."""
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = column.iat[row]
        if pd.isna(value):
            problem = "is empty"
        elif np.isnan(numbers[row]):
            problem = f"{value!r} is not a number"
        else:
            problem = f"{value!r} is not finite"
        raise HarkitError(
            f"{path}: timestamp {problem} at data row {row + 1} ({int(bad.sum())} such rows); the timestamp column "
            "must hold seconds as numbers, or be left out (then pass --rate)"
        )
    return _increasing(numbers, path)


def _increasing(seconds: np.ndarray, path: Path) -> np.ndarray:
    steps = np.diff(seconds)
    if len(steps) and (steps <= 0).any():
        row = int(np.flatnonzero(steps <= 0)[0]) + 2
        raise HarkitError(f"{path}: timestamps do not increase at data row {row}")
    return seconds


def recording_rate(timestamps: np.ndarray | None, rate: float | None, target: float, path: Path) -> tuple[float, str]:
    """(the recording's rate in Hz, where it came from: "timestamps", "--rate" or "model")."""
    if rate is not None and (not np.isfinite(rate) or rate <= 0):
        raise HarkitError(f"--rate must be a positive number of Hz, got {rate}")
    if timestamps is not None and len(timestamps) > 1:
        measured = 1.0 / float(np.median(np.diff(timestamps)))
        if rate is not None and abs(rate - measured) / measured > RATE_TOLERANCE:
            raise HarkitError(
                f"{path}: its timestamps say {measured:.4g} Hz but --rate says {rate:.4g} Hz; drop --rate or fix "
                "the timestamp column"
            )
        return measured, "timestamps"
    if rate is not None:
        return float(rate), "--rate"
    return float(target), "model"


def conform_rate(signals: np.ndarray, rate: float, target: float, resample: bool, path: Path) -> np.ndarray:
    """The signals at the model's rate: unchanged within 2 %, else resampled (polyphase) when asked."""
    if abs(rate - target) / target <= RATE_TOLERANCE:
        return signals
    if not resample:
        raise HarkitError(
            f"{path} is sampled at {rate:.4g} Hz but the model expects {target:.4g} Hz; pass --resample to "
            "resample it, or record at the model's rate"
        )
    return resample_signals(signals, rate, target).astype(np.float32)


def window_starts(samples: int, window: int, step: int) -> np.ndarray:
    """Window starts every `step` samples, plus one window aligned to the end when the tail is not covered."""
    starts = np.arange(0, samples - window + 1, step)
    if starts[-1] + window < samples:
        starts = np.append(starts, samples - window)
    return starts


def merge_windows(probabilities: np.ndarray, starts: np.ndarray, window: int, samples: int) -> tuple:
    """Per-sample class probabilities: the mean over every window covering the sample.

    Vectorised with a difference array: each window adds its probabilities at its start and removes them at
    its end; a cumulative sum then gives every sample the sum over the windows covering it.

    Returns:
        (probabilities `[samples, classes]`, number of covering windows `[samples]`); a sample covered by no
        window (impossible with `window_starts`) gets zeros and count 0.
    """
    classes = probabilities.shape[1]
    delta = np.zeros((samples + 1, classes))
    np.add.at(delta, starts, probabilities)
    np.add.at(delta, starts + window, -probabilities)
    counts = np.zeros(samples + 1, np.int64)
    np.add.at(counts, starts, 1)
    np.add.at(counts, starts + window, -1)
    counts = np.cumsum(counts[:-1])
    sums = np.clip(np.cumsum(delta[:-1], axis=0), 0, None)  # clip: rounding of the running sum, never below 0
    return sums / np.maximum(counts, 1)[:, None], counts


def segment_bounds(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) in samples of the runs of equal labels; `ends` is exclusive."""
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    return np.r_[0, change], np.r_[change, len(labels)]


def smooth_labels(labels: np.ndarray, probabilities: np.ndarray, edges: np.ndarray, minimum: float) -> np.ndarray:
    """Labels with every segment shorter than `minimum` seconds merged into a neighbour.

    The shortest segment goes first; it takes the label of the neighbour that the model finds more likely
    over its samples (summed probability; ties go to the longer neighbour). Repeats until every segment
    lasts `minimum` or the recording is one segment. Works on segments, not samples.

    Args:
        labels: class index per sample.
        probabilities: `[samples, classes]`.
        edges: time in seconds of each sample's start, plus the end of the last (`samples + 1` values).
        minimum: shortest segment kept, in seconds.
    """
    starts, ends = segment_bounds(labels)
    names = labels[starts].copy()
    sums = np.add.reduceat(probabilities, starts, axis=0)
    while len(starts) > 1:
        durations = edges[ends] - edges[starts]
        i = int(np.argmin(durations))
        if durations[i] >= minimum:
            break
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(starts)]
        j = max(neighbours, key=lambda j: (sums[i, names[j]], durations[j]))
        names[i] = names[j]
        keep = np.r_[True, names[1:] != names[:-1]]
        first = np.flatnonzero(keep)
        sums = np.add.reduceat(sums, first, axis=0)
        ends = np.r_[starts[first[1:]], ends[-1]]
        starts, names = starts[first], names[first]
    return np.repeat(names, ends - starts)


def timeline(labels: np.ndarray, probabilities: np.ndarray, edges: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Segments of equal label, back to back: each ends where the next starts, so none overlap."""
    starts, ends = segment_bounds(labels)
    chosen = probabilities[np.arange(len(labels)), labels]
    return pd.DataFrame(
        {
            "start_s": edges[starts],
            "end_s": edges[ends],
            "duration_s": edges[ends] - edges[starts],
            "label": np.array(classes)[labels[starts]],
            "samples": ends - starts,
            "mean_confidence": np.add.reduceat(chosen, starts) / (ends - starts),
        }
    )


def classify(predictor: Predictor, windows: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, str]:
    """Class probabilities `[n, classes]` and the backend that computed them."""
    if predictor.onnx is not None:
        session = _onnx_session(predictor)
        logits = np.concatenate(
            [
                session.run([OUTPUT_NAME], {INPUT_NAME: windows[i : i + batch_size]})[0]
                for i in range(0, len(windows), batch_size)
            ]
        )
        backend = "onnxruntime"
    else:
        model = predictor.load_model()
        with torch.inference_mode():
            logits = torch.cat(
                [model(torch.from_numpy(windows[i : i + batch_size])) for i in range(0, len(windows), batch_size)]
            ).numpy()
        backend = "pytorch"
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy(), backend


def _onnx_session(predictor: Predictor):
    """An onnxruntime session on the run's `model.onnx`, checked against the run's window and channels."""
    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    errors = tuple(
        getattr(ort_errors, name)
        for name in ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NotImplemented")
    )
    redo = f"delete it to predict with PyTorch, or write it again with: harkit export {predictor.name}"
    try:
        session = onnxruntime.InferenceSession(str(predictor.onnx), providers=["CPUExecutionProvider"])
    except (*errors, RuntimeError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HarkitError(f"cannot read {predictor.onnx} ({reason}); {redo}") from None
    inputs = session.get_inputs()
    expected = [predictor.info["window"], len(predictor.info["channels"])]
    if [i.name for i in inputs] != [INPUT_NAME] or list(inputs[0].shape[1:]) != expected:
        raise HarkitError(
            f"{predictor.onnx} takes {[(i.name, i.shape) for i in inputs]}, not the run's windows "
            f"{INPUT_NAME} [batch, {expected[0]}, {expected[1]}]; {redo}"
        )
    return session


def _label_codes(labels: pd.Series, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(class index per row: -1 for a label the model does not know, -2 for none; the labels as text)."""
    if pd.api.types.is_float_dtype(labels) and np.allclose(labels.dropna() % 1, 0):
        labels = labels.astype("Int64")  # 3.0 read from a column with gaps means the class "3"
    text = labels.astype("string")
    codes = pd.Index(classes).get_indexer(text).astype(np.int64)
    codes[text.isna().to_numpy() | (text.str.strip() == "").fillna(False).to_numpy()] = -2
    return codes, text.to_numpy()


def _truth(data: Recording, classes: list[str], samples: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """True class codes and label text per predicted sample; `ratio` (source / model rate) maps resampled ones."""
    codes, text = _label_codes(data.labels, classes)
    if len(codes) != samples:  # resampled: each new sample takes the label of the nearest original sample
        nearest = np.minimum(np.rint(np.arange(samples) * ratio).astype(np.int64), len(codes) - 1)
        codes, text = codes[nearest], text[nearest]
    return codes, text


def _sample_edges(timestamps: np.ndarray | None, samples: int, target: float, resampled: bool) -> np.ndarray:
    """The time in seconds at which each sample starts, and one more for the end of the last sample."""
    if timestamps is not None and not resampled:
        period = float(np.median(np.diff(timestamps))) if samples > 1 else 1 / target
        return np.r_[timestamps, timestamps[-1] + period]
    start = timestamps[0] if timestamps is not None else 0.0
    return start + np.arange(samples + 1) / target


def _gap_note(timestamps: np.ndarray | None, path: Path) -> list[str]:
    """A note when the timestamps jump by more than 1.5 sampling periods: the samples are taken as evenly spaced."""
    if timestamps is None or len(timestamps) < 3:
        return []
    steps = np.diff(timestamps)
    gaps = np.flatnonzero(steps > 1.5 * np.median(steps))
    if not len(gaps):
        return []
    return [
        f"{path.name}: the timestamps jump {len(gaps)} times (the largest by {steps.max():.3g} s, the first after "
        f"data row {gaps[0] + 1}); windows span the jumps as if the samples were evenly spaced"
    ]


def score(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """Per-sample accuracy and macro F1 on the samples whose label the model knows, with the confusion matrix.

    `macro_f1` averages over the classes present in the truth or the predictions, as `harkit evaluate` does;
    `macro_f1_all_classes` averages over every class of the model (absent ones count 0).
    """
    from sklearn.metrics import f1_score

    from harkit.evaluation.metrics import classification_metrics

    known = truth >= 0
    if not known.any():
        raise HarkitError(f"no sample of the recording has one of the model's labels {classes}; nothing to score")
    metrics = classification_metrics(truth[known], predicted[known], classes)
    metrics["macro_f1_all_classes"] = float(
        f1_score(truth[known], predicted[known], labels=range(len(classes)), average="macro", zero_division=0)
    )
    return metrics


def predict_recording(
    run: Path | str | None,
    recording: Path | str,
    out: Path | str | None = None,
    rate: float | None = None,
    resample: bool = False,
    fill_gaps: bool = False,
    label_column: str | None = None,
    smooth: float | None = None,
    pretrained: str | None = None,
    plot: bool = True,
    timestamp_unit: str | None = None,
) -> dict:
    """Predict every window and every sample of one recording, merged into a timeline of activities.

    Args:
        run: run directory (or None with `pretrained`).
        recording: CSV with one column per channel, optionally `timestamp` (seconds) and a label column.
        out: folder for predictions.csv (per window), samples.csv (per sample), timeline.csv, timeline.png
            and, with `label_column`, metrics.json and the confusion matrix (csv, png). Nothing is written
            when None.
        rate: the recording's rate when it has no timestamps (default: the model's, said in `notes`).
        resample: resample a recording at another rate to the model's instead of refusing it.
        fill_gaps: interpolate missing values instead of refusing them.
        label_column: column with the true activity per sample; scores the prediction.
        smooth: minimum segment duration in seconds; shorter segments merge into a neighbour.
        pretrained: name of a pretrained model shipped with harkit, instead of `run`.
        plot: write timeline.png (and the confusion matrix png).
        timestamp_unit: the timestamps are epoch numbers in s, ms, us or ns (default: as the run's harkit.toml
            says, else seconds).

    Returns:
        `predictions`, `samples`, `timeline` (DataFrames), `backend`, `rate`, `rate_source`, `notes` (what
        the user should know), `metrics` (dict or None), `files` (written).
    """
    recording = Path(recording)
    if smooth is not None and (not np.isfinite(smooth) or smooth < 0):
        raise HarkitError(f"--smooth must be a duration in seconds >= 0, got {smooth}")
    predictor = open_predictor(run, pretrained)
    meta = predictor.info
    classes, window, step, target = meta["classes"], meta["window"], meta["step"], meta["sampling_rate"]
    timestamps = predictor.timestamps
    if timestamp_unit is not None:
        timestamps = ((timestamps or ("timestamp", None))[0], timestamp_unit)
    data = read_recording(recording, meta["channels"], fill_gaps, label_column, timestamps)
    source_rate, rate_source = recording_rate(data.timestamps, rate, target, recording)
    notes = []
    if rate_source == "model":
        notes.append(
            f"{recording.name} has no timestamp column: assumed the model's rate, {target:g} Hz; pass --rate if it "
            "was recorded at another rate"
        )
    signals = conform_rate(data.signals, source_rate, target, resample, recording)
    resampled = signals is not data.signals
    if resampled:
        notes.append(f"resampled from {source_rate:.4g} Hz to {target:g} Hz: the per-sample table is at {target:g} Hz")
    samples = len(signals)
    if samples < window:
        raise HarkitError(
            f"{recording} has {samples} samples, fewer than one window of {window} "
            f"({window / target:.2f} s at {target:.4g} Hz)"
        )
    notes += _gap_note(data.timestamps, recording)
    edges = _sample_edges(data.timestamps, samples, target, resampled)

    normalised = (signals - np.array(meta["mean"], np.float32)) / np.array(meta["std"], np.float32)
    starts = window_starts(samples, window, step)
    view = np.lib.stride_tricks.sliding_window_view(normalised, window, axis=0)
    windows = np.ascontiguousarray(view[starts].transpose(0, 2, 1), dtype=np.float32)
    probabilities, backend = classify(predictor, windows)
    predictions = pd.DataFrame(
        {
            "window": np.arange(len(starts)),
            "start_sample": starts,
            "end_sample": starts + window,
            "start_s": edges[starts],
            "end_s": edges[starts + window],
            "label": np.array(classes)[probabilities.argmax(1)],
            "confidence": probabilities.max(1),
        }
    )
    for index, name in enumerate(classes):
        predictions[f"p_{name}"] = probabilities[:, index]

    per_sample, coverage = merge_windows(probabilities, starts, window, samples)
    raw_labels = per_sample.argmax(1)
    labels = raw_labels if not smooth else smooth_labels(raw_labels, per_sample, edges, smooth)
    table = pd.DataFrame(
        {
            "sample": np.arange(samples),
            "time_s": edges[:-1],
            "label": np.array(classes)[labels],
            "confidence": per_sample[np.arange(samples), labels],
            "windows": coverage,
        }
    )
    truth = None
    metrics = None
    if data.labels is not None:
        codes, text = _truth(data, classes, samples, source_rate / target)
        unknown = {str(k): int(v) for k, v in pd.Series(text[codes == -1]).value_counts().items()}
        truth = codes
        table.insert(3, "true_label", text)
        metrics = score(codes, labels, classes)
        metrics.update(
            recording=str(recording),
            model=meta["model"],
            dataset=meta["dataset"],
            predictor=predictor.name,
            label_column=label_column,
            samples_scored=int((codes >= 0).sum()),
            samples_unlabelled=int((codes == -2).sum()),
            labels_not_in_model=unknown,
            smooth_s=smooth or 0.0,
        )
        if smooth:
            unsmoothed = score(codes, raw_labels, classes)
            metrics["unsmoothed"] = {k: unsmoothed[k] for k in ("accuracy", "macro_f1", "macro_f1_all_classes")}
        if unknown:
            notes.append(
                f"{sum(unknown.values())} samples carry labels the model does not know and are not scored: "
                + ", ".join(f"{k} ({v})" for k, v in sorted(unknown.items()))
            )
        if metrics["samples_unlabelled"]:
            notes.append(
                f"{metrics['samples_unlabelled']} samples have no label in {label_column!r} and are not scored"
            )
    for index, name in enumerate(classes):
        table[f"p_{name}"] = per_sample[:, index]
    segments = timeline(labels, per_sample, edges, classes)
    result = {
        "predictions": predictions,
        "samples": table,
        "timeline": segments,
        "backend": backend,
        "predictor": predictor.name,
        "rate": source_rate,
        "rate_source": rate_source,
        "notes": notes,
        "metrics": metrics,
        "files": [],
    }
    if out is not None:
        result["files"] = _write(
            Path(out), result, signals, edges, labels, truth, meta, recording, predictor.name, plot
        )
    return result


def _write(out, result, signals, edges, labels, truth, meta, recording, name, plot) -> list[Path]:
    """Write the tables, metrics and figures of one prediction into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "predictions.csv", out / "samples.csv", out / "timeline.csv"]
    result["predictions"].to_csv(files[0], index=False, float_format="%.6g")
    result["samples"].to_csv(files[1], index=False, float_format="%.6g")
    result["timeline"].to_csv(files[2], index=False, float_format="%.6g")
    metrics = result["metrics"]
    if metrics is not None:
        files.append(out / "metrics.json")
        files[-1].write_text(json.dumps(metrics, indent=2))
        files.append(out / "confusion_matrix.csv")
        pd.DataFrame(
            metrics["confusion"],
            index=pd.Index(meta["classes"], name="true \\ predicted"),
            columns=meta["classes"],
        ).to_csv(files[-1])
    if plot:
        files.append(out / "timeline.png")
        plot_timeline(signals, edges, labels, truth, meta, f"{recording.name} ({name})", files[-1], metrics)
        if metrics is not None:
            from harkit.evaluation.plots import plot_confusion

            files.append(out / "confusion_matrix.png")
            plot_confusion(metrics, files[-1], meta["classes"], f"{recording.name}: confusion per sample")
    return files


def _colours(count: int) -> list:
    """One colour per class, from a palette unlike the signal lines' (tab10), so bands and lines are not confused."""
    import matplotlib

    cmap = matplotlib.colormaps["Set3" if count <= 12 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def plot_timeline(
    signals: np.ndarray,
    edges: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray | None,
    meta: dict,
    title: str,
    path: Path,
    metrics: dict | None = None,
) -> None:
    """The signals over time above a band of predicted activities, and of the true ones where known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    classes, channels = meta["classes"], meta["channels"]
    colours = _colours(len(classes))
    # Epoch timestamps (1.7e9 s) would show as offsets on the axis: the plot counts from the first sample.
    origin = edges[0] if abs(edges[0]) > 1e6 else 0.0
    edges = edges - origin
    bands = [("predicted", labels)] + ([("true", truth)] if truth is not None else [])
    fig, axes = plt.subplots(
        1 + len(bands),
        1,
        figsize=(12, 3.6 + 0.6 * len(bands)),
        sharex=True,
        layout="constrained",
        gridspec_kw={"height_ratios": [5] + [1] * len(bands)},
    )
    every = max(1, -(-len(signals) // PLOT_POINTS))
    shown = min(len(channels), PLOT_CHANNELS)
    for index in range(shown):
        axes[0].plot(edges[:-1:every], signals[::every, index], linewidth=0.7, label=channels[index])
    axes[0].set_ylabel("signal")
    axes[0].legend(fontsize=7, ncol=min(shown, 6), loc="upper right")
    if metrics is not None:
        title += f": accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}"
    if shown < len(channels):
        title += f" (first {shown} of {len(channels)} channels)"
    axes[0].set_title(title)
    used = set()
    for ax, (name, codes) in zip(axes[1:], bands, strict=True):
        starts, ends = segment_bounds(codes)
        for code in np.unique(codes[starts]):
            if code == -2:  # unlabelled: left blank
                used.add(-2)
                continue
            mine = codes[starts] == code
            spans = list(zip(edges[starts[mine]], edges[ends[mine]] - edges[starts[mine]], strict=True))
            if code == -1:
                ax.broken_barh(spans, (0, 1), facecolors="lightgrey", hatch="//", edgecolor="grey", linewidth=0)
                used.add(-1)
            else:
                ax.broken_barh(spans, (0, 1), facecolors=colours[code])
                used.add(int(code))
        ax.set_ylim(0, 1)
        ax.set_yticks([0.5], [name])
        ax.tick_params(axis="y", length=0)
    axes[-1].set_xlim(edges[0], edges[-1])
    axes[-1].set_xlabel("time from the first sample (s)" if origin else "time (s)")
    handles = [Patch(color=colours[c], label=classes[c]) for c in sorted(used - {-1, -2})]
    if -1 in used:
        handles.append(Patch(facecolor="lightgrey", hatch="//", edgecolor="grey", label="not a model class"))
    if -2 in used:
        handles.append(Patch(facecolor="white", edgecolor="grey", label="unlabelled"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
