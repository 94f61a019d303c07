"""Your own recordings: a folder of CSV files described by a `harkit.toml` beside them.

See `TEMPLATE` (written by `harkit datasets --template DIR`) for every setting.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from harkit import HarkitError, checks
from harkit.datasets.base import UNLABELLED, Dataset, DefaultSplit, Recording, Source
from harkit.datasets.parsing import map_files
from harkit.datasets.resample import resample_signals
from harkit.datasets.timestamps import UNITS, needs_text, parse_timestamps
from harkit.datasets.windows import labels_from_segments, segments

log = logging.getLogger(__name__)
DESCRIPTION = "harkit.toml"
RATE_TOLERANCE = 0.05  # a measured rate this far from the declared one is an error
GAP_FACTOR = 2.0  # a step longer than this many sample periods is a gap
DEFAULT_WINDOW = 128
DEFAULT_TEST_FRACTION = 0.2
INTERVAL_TOLERANCE = 1e-6  # seconds: a sample at 1.4999999 s belongs to an interval that starts at 1.5 s
# A folder holding one of these files is harkit's output (a run, a cross-validation, a benchmark, predictions);
# its CSV files (history.csv, predictions.csv, ...) are never recordings.
OUTPUT_MARKERS = ("config.json", "history.csv", "crossval.json", "grid.json", "predictions.csv", "timeline.csv")
OUTPUT_FOLDERS = ("runs",)  # harkit's default output folder

TEMPLATE = """\
# harkit dataset description: this file sits beside (or above) the CSV recordings it describes.
# harkit prepare DIR, harkit train --dataset DIR ... then treat the folder like a built-in dataset.
# harkit never writes into this folder; its own outputs (runs/, run folders) are never read as recordings.

name = "my-recordings"          # shown in reports
files = "**/*.csv"              # which files are recordings (a glob relative to this folder)
sampling_rate = 50.0            # Hz, as recorded

# Columns that are sensor channels, in this order. Channels named <stem>_x, <stem>_y, <stem>_z form a 3-axis
# sensor (rotated together by rotation augmentation); list other groupings explicitly in `sensors`.
channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
# sensors = [["ax", "ay", "az"]]
# Channels measured in each device's frame: one rotation turns all of a device's sensors together. Leave out
# channels that are not vectors in the device's frame (Euler angles, quaternions, earth-frame signals).
# devices = {phone = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]}

# Labels: one of these three. Recordings without labels are allowed: they are not trained on, and
# `harkit predict` can label them.
label_column = "activity"       # a column of strings or integers, one label per row
# label_pattern = "(walking|sitting)"   # a regular expression over the file's path: one label per file
# labels_file = "labels.csv"    # intervals: columns recording,start,end,label; recording is the file's path
#                               # relative to this folder, start and end are seconds from its first sample
#                               # (a sample at time t has the label when start <= t < end)
null_labels = ["", "null"]      # rows with these labels (or no label) are not windowed
# classes = ["walking", "sitting"]   # fixes the class order; by default the sorted labels found

# Where the subject comes from: a column, or a regular expression over the file's path (first group).
subject_column = "subject"
# subject_pattern = "subject(\\\\d+)"

timestamp_column = "timestamp"  # optional; checked against sampling_rate (rate, gaps, order), per file
# timestamp_unit = "s"          # epoch numbers in "s", "ms", "us" or "ns" (default "s"), converted exactly;
#                               # ISO 8601 date-times (2024-05-01T13:45:00.020Z) are recognised by themselves
resample = false                # true: resample to sampling_rate (anti-aliasing filter) instead of refusing
#                               # another rate or gaps; samples inside a gap are never windowed

window = 128                    # samples (128 when omitted; a warning says so when it is too long)
overlap = 0.5                   # in [0, 1)
test_subjects = [3]             # the default test split; omit it to hold out the last fifth of the subjects
# split = "time"                # instead: the last test_fraction of every recording is the test part, after
# test_fraction = 0.2           # a gap of one window; validation comes from the part before it
"""

# Every setting and the kind of value it takes.
SETTINGS = {
    "name": "text",
    "files": "text",
    "sampling_rate": "number",
    "channels": "texts",
    "sensors": "groups",
    "devices": "devices",
    "label_column": "text",
    "label_pattern": "text",
    "labels_file": "text",
    "null_labels": "labels",
    "classes": "labels",
    "subject_column": "text",
    "subject_pattern": "text",
    "timestamp_column": "text",
    "timestamp_unit": "text",
    "resample": "bool",
    "window": "integer",
    "overlap": "number",
    "test_subjects": "labels",
    "split": "text",
    "test_fraction": "number",
}
KNOWN_KEYS = set(SETTINGS)
_KINDS = {
    "text": ("a string", '"..."'),
    "number": ("a finite number", "0.5"),
    "integer": ("an integer", "128"),
    "bool": ("true or false", "true"),
    "texts": ("a list of strings", '["a", "b"]'),
    "labels": ("a list of strings or integers", '["a", "b"]'),
    "groups": ("a list of three-name lists", '[["ax", "ay", "az"]]'),
    "devices": ("a table of channel lists", '{phone = ["acc_x", "acc_y", "acc_z"]}'),
}


def _is_kind(value, kind: str) -> bool:
    def number(v) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def label(v) -> bool:
        return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))

    return {
        "text": lambda: isinstance(value, str),
        "number": lambda: number(value) and math.isfinite(value),
        "integer": lambda: isinstance(value, int) and not isinstance(value, bool),
        "bool": lambda: isinstance(value, bool),
        "texts": lambda: isinstance(value, list) and all(isinstance(v, str) for v in value),
        "labels": lambda: isinstance(value, list) and all(label(v) for v in value),
        "groups": lambda: (
            isinstance(value, list) and all(isinstance(g, list) and all(isinstance(v, str) for v in g) for g in value)
        ),
        "devices": lambda: (
            isinstance(value, dict)
            and all(isinstance(g, list) and all(isinstance(v, str) for v in g) for g in value.values())
        ),
    }[kind]()


def check_settings(settings: dict, where: Path | str) -> None:
    """Every key known and every value of the right kind and range; errors name the key."""
    unknown = set(settings) - KNOWN_KEYS
    if unknown:
        raise HarkitError(f"{where}: unknown settings {sorted(unknown)}; known: {sorted(KNOWN_KEYS)}")
    for key, value in settings.items():
        kind = SETTINGS[key]
        if not _is_kind(value, kind):
            what, example = _KINDS[kind]
            raise HarkitError(f"{where}: {key} must be {what}, got {value!r}; for example {key} = {example}")
    for required in ("sampling_rate", "channels"):
        if required not in settings:
            raise HarkitError(f"{where} lacks {required!r}; see `harkit datasets --template DIR`")
    if not settings["channels"]:
        raise HarkitError(f"{where}: channels is empty; list the columns that are sensor channels")
    sources = [k for k in ("label_column", "label_pattern", "labels_file") if k in settings]
    if len(sources) != 1:
        raise HarkitError(
            f"{where}: set exactly one of label_column, label_pattern or labels_file to say where labels come "
            f"from (found {sources or 'none'})"
        )
    split = settings.get("split", "subject")
    if split not in ("subject", "time"):
        raise HarkitError(f'{where}: split must be "subject" or "time", got {split!r}')
    if split == "time" and "test_subjects" in settings:
        raise HarkitError(f'{where}: test_subjects is for a split by subject; with split = "time" remove it')
    if "test_fraction" in settings and split != "time":
        raise HarkitError(f'{where}: test_fraction is for split = "time"; add that, or remove test_fraction')
    if not 0 < settings.get("test_fraction", DEFAULT_TEST_FRACTION) < 1:
        raise HarkitError(f"{where}: test_fraction must be in (0, 1), got {settings['test_fraction']}")
    if split != "time" and "subject_column" not in settings and "subject_pattern" not in settings:
        raise HarkitError(
            f"{where} needs subject_column or subject_pattern to know whose recording a file is "
            '(or split = "time" for recordings of one subject)'
        )
    if settings.get("timestamp_unit", "s") not in UNITS:
        unit = settings["timestamp_unit"]
        raise HarkitError(f"{where}: timestamp_unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if "timestamp_unit" in settings and "timestamp_column" not in settings:
        raise HarkitError(f"{where}: timestamp_unit needs timestamp_column, the column it describes")
    for key in ("label_pattern", "subject_pattern"):
        if key in settings:
            try:
                re.compile(settings[key])
            except re.error as error:
                raise HarkitError(f"{where}: {key} {settings[key]!r} is not a regular expression: {error}") from None
    # The numeric ranges shared with the CLI and the Python API are checked in one place.
    from harkit.datasets.config import PrepareConfig  # config sits below the registry: no import circle

    try:
        checks.positive("sampling_rate", settings["sampling_rate"])
        PrepareConfig(window=settings.get("window"), overlap=settings.get("overlap"))
    except HarkitError as error:
        raise HarkitError(f"{where}: {error}") from None


def write_template(folder: Path) -> list[Path]:
    """A commented `harkit.toml` and three example recordings (three subjects), ready to train on."""
    folder = Path(folder)
    if (folder / DESCRIPTION).exists():
        raise HarkitError(f"{folder / DESCRIPTION} exists already; choose an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DESCRIPTION).write_text(TEMPLATE)
    rng = np.random.default_rng(0)
    written = [folder / DESCRIPTION]
    for subject in (1, 2, 3):
        n = 1500
        t = np.arange(n) / 50.0
        activity = np.where(t < 15, "walking", "sitting")
        moving = (activity == "walking")[:, None]
        signals = rng.normal(0, 0.05, (n, 6)) + moving * np.sin(2 * np.pi * 2 * t)[:, None] + [0, 0, 1, 0, 0, 0]
        frame = pd.DataFrame(signals.round(5), columns=["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"])
        frame.insert(0, "timestamp", t.round(4))
        frame["activity"] = activity
        frame["subject"] = subject
        path = folder / f"subject{subject}_session1.csv"
        frame.to_csv(path, index=False)
        written.append(path)
    return written


@dataclass
class _Table:
    """One file as read: per-sample signals, label text (or None), subject name and time in seconds."""

    name: str  # the path relative to the folder, with forward slashes
    signals: np.ndarray
    labels: np.ndarray | None
    subjects: np.ndarray
    seconds: np.ndarray | None
    in_gap: np.ndarray | None  # samples made up inside a gap by resampling: never labelled


class FolderDataset(Dataset):
    """A dataset read from a folder described by `harkit.toml`."""

    marker = DESCRIPTION
    default_split = DefaultSplit()

    def __init__(self, folder: Path, **overrides) -> None:
        self.folder = Path(folder).resolve()
        path = self.folder / DESCRIPTION
        if not path.is_file():
            raise HarkitError(f"{self.folder} has no {DESCRIPTION}; write one with `harkit datasets --template DIR`")
        try:
            self.description = tomllib.loads(path.read_text()) | overrides
        except tomllib.TOMLDecodeError as error:
            raise HarkitError(f"{path} is not valid TOML: {error}") from None
        d = self.description
        check_settings(d, path)
        self.key = str(self.folder)
        self.title = d.get("name", self.folder.name)
        self.source = Source(url=self.folder.as_uri(), filename=DESCRIPTION)
        self.sampling_rate = float(d["sampling_rate"])
        self.window = int(d.get("window", DEFAULT_WINDOW))
        self.overlap = float(d.get("overlap", 0.5))
        self.channels = [str(c) for c in d["channels"]]
        self.classes = [str(c) for c in d["classes"]] if "classes" in d else []
        self.subject_names: list[str] = []
        self.unlabelled_recordings: list[str] = []
        # split = "time": the last `test_fraction` of every recording is tested (see harkit.datasets.time_split)
        self.test_fraction = float(d.get("test_fraction", DEFAULT_TEST_FRACTION)) if d.get("split") == "time" else None
        tests = d.get("test_subjects", [])
        if tests and all(isinstance(s, int) for s in tests):
            self.default_split = DefaultSplit(test_subjects=tuple(tests))
        if "window" not in d:
            log.info(
                "%s sets no window: using the default of %d samples (%.3g s at %g Hz)",
                DESCRIPTION,
                DEFAULT_WINDOW,
                DEFAULT_WINDOW / self.sampling_rate,
                self.sampling_rate,
            )

    @property
    def options(self) -> dict:
        return self.description

    @property
    def devices(self) -> dict[str, list[str]]:
        """`devices` of harkit.toml: device name -> its channels (each one of `channels`)."""
        devices = self.description.get("devices", {})
        for name, names in devices.items():
            missing = [c for c in names if c not in self.channels]
            if missing:
                raise HarkitError(f"device {name!r} in harkit.toml names {missing}, which are not in {self.channels}")
        return devices

    @property
    def sensors(self) -> list[tuple[int, int, int]]:
        if "sensors" not in self.description:
            return super().sensors  # x, y, z names, within one device when harkit.toml lists devices
        groups = []
        for group in self.description["sensors"]:
            missing = [c for c in group if c not in self.channels]
            if len(group) != 3 or missing:
                raise HarkitError(f"sensor {group} must name three of the channels {self.channels}")
            groups.append(tuple(self.channels.index(c) for c in group))
        return groups

    def find(self, data_dir: Path | None, cache_dir: Path, allow_download: bool) -> tuple[Path, str]:
        """The folder itself, fingerprinted by the files harkit reads (not by anything else in it)."""
        read = [self.folder / DESCRIPTION, *self.files()]
        if "labels_file" in self.description:
            read.append(self._labels_path())
        entries = sorted(f"{p.relative_to(self.folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in read)
        return self.folder, "files:" + hashlib.sha256("\n".join(entries).encode()).hexdigest()

    def files(self) -> list[Path]:
        """The recordings: files matching `files`, except the labels file and anything harkit wrote."""
        pattern = self.description.get("files", "**/*.csv")
        labels = self._labels_path() if "labels_file" in self.description else None
        output: dict[Path, bool] = {}

        def is_output(folder: Path) -> bool:
            if folder not in output:
                output[folder] = folder.name in OUTPUT_FOLDERS or any((folder / m).exists() for m in OUTPUT_MARKERS)
            return output[folder]

        candidates = sorted(p for p in self.folder.glob(pattern) if p.is_file() and p != labels)
        inside = [p.relative_to(self.folder).parents[:-1] for p in candidates]  # folders below self.folder
        files = [p for p, up in zip(candidates, inside, strict=True) if not any(is_output(self.folder / f) for f in up)]
        if len(files) < len(candidates):
            log.info("left out %d files in harkit's own output folders", len(candidates) - len(files))
        if not files:
            raise HarkitError(f"no recordings match {pattern!r} in {self.folder}")
        return files

    def _labels_path(self) -> Path:
        return (self.folder / self.description["labels_file"]).resolve()

    # --- reading one file ---

    def _load(self, path: Path) -> _Table:
        d = self.description
        text_columns = [d[k] for k in ("label_column", "subject_column") if k in d]
        try:
            frame = pd.read_csv(path, dtype=dict.fromkeys(text_columns, str), keep_default_na=False, na_values=[""])
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise HarkitError(f"cannot read {path}: {error}") from None
        needed = [*self.channels, *[d[k] for k in ("subject_column", "timestamp_column") if k in d]]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise HarkitError(f"{path} lacks the columns {missing} (it has {list(frame.columns)})")
        signals = self._signals(path, frame)
        name = path.relative_to(self.folder).as_posix()
        labels = None
        if "label_column" in d and d["label_column"] in frame.columns:
            labels = frame[d["label_column"]].fillna("").astype(str).str.strip().to_numpy(object)
        elif "label_pattern" in d:
            match = re.search(d["label_pattern"], name)
            if match:
                labels = np.full(len(frame), match.group(1) if match.groups() else match.group(0), dtype=object)
        subjects = self._subject(path, frame)
        if "timestamp_column" not in d:
            return _Table(name, signals, labels, subjects, None, None)
        time = frame[d["timestamp_column"]]
        if needs_text(time, d.get("timestamp_unit")):  # decimal epochs: float64 dropped digits, read them again
            time = pd.read_csv(path, usecols=[d["timestamp_column"]], dtype=str, keep_default_na=False, na_values=[""])
            time = time[d["timestamp_column"]]
        nanoseconds = parse_timestamps(time, d.get("timestamp_unit"), str(path))
        return self._timing(path, name, signals, labels, subjects, nanoseconds)

    def _signals(self, path: Path, frame: pd.DataFrame) -> np.ndarray:
        """The channels as float32; text and non-finite values are errors that name the row."""
        values = frame[self.channels].apply(pd.to_numeric, errors="coerce")
        text = values.isna().to_numpy() & frame[self.channels].notna().to_numpy()
        with np.errstate(over="ignore"):  # values beyond float32's range become inf, reported below
            signals = values.to_numpy(np.float32)
        infinite = np.isinf(signals)  # also finite float64 values beyond float32's range
        for bad, what in ((text, "non-numeric"), (infinite, "non-finite")):
            if bad.any():
                row, column = np.argwhere(bad)[0]
                raise HarkitError(
                    f"{path}: {what} value {frame[self.channels[column]].iat[row]!r} in channel "
                    f"{self.channels[column]!r} at data row {row + 1}"
                    + ("; a channel value must be a finite 32-bit float" if what == "non-finite" else "")
                )
        return signals

    def _subject(self, path: Path, frame: pd.DataFrame) -> np.ndarray:
        d = self.description
        if "subject_column" in d:
            names = frame[d["subject_column"]].fillna("").astype(str).str.strip().to_numpy(object)
            if (names == "").any():
                row = int(np.flatnonzero(names == "")[0])
                raise HarkitError(f"{path}: no subject at data row {row + 1} of column {d['subject_column']!r}")
            return names
        if "subject_pattern" not in d:  # split = "time" needs no subjects
            return np.full(len(frame), "1", dtype=object)
        match = re.search(d["subject_pattern"], path.relative_to(self.folder).as_posix())
        if not match:
            raise HarkitError(f"{path}: the file name does not match subject_pattern {d['subject_pattern']!r}")
        return np.full(len(frame), match.group(1) if match.groups() else match.group(0), dtype=object)

    def _timing(self, path, name, signals, labels, subjects, nanoseconds) -> _Table:
        """Check the timestamps against the declared rate; resample when asked."""
        steps = np.diff(nanoseconds)
        if (steps <= 0).any():
            row = int(np.flatnonzero(steps <= 0)[0]) + 2
            raise HarkitError(f"{path}: time does not increase at data row {row}")
        seconds = (nanoseconds - nanoseconds[0]) / 1e9  # differences of exact integers: no loss on large epochs
        step_seconds = steps / 1e9
        period = 1.0 / self.sampling_rate
        problem, measured, other_rate = None, self.sampling_rate, False
        if len(steps):
            measured = 1.0 / float(np.median(step_seconds))
            other_rate = abs(measured - self.sampling_rate) / self.sampling_rate > RATE_TOLERANCE
            if other_rate:
                problem = f"sampled at {measured:.4g} Hz, not the declared {self.sampling_rate:g} Hz"
            elif (step_seconds > GAP_FACTOR * period).any():
                row = int(np.flatnonzero(step_seconds > GAP_FACTOR * period)[0]) + 2
                problem = f"a gap of {step_seconds[row - 2]:.3g} s before data row {row}"
        if problem is None:
            return _Table(name, signals, labels, subjects, seconds, None)
        if not self.description.get("resample", False):
            raise HarkitError(
                f"{path}: {problem}; fix the file, or set resample = true in {DESCRIPTION} to resample to "
                f"{self.sampling_rate:g} Hz"
            )
        # On a regular grid at the recording's own rate first (interpolation at the same rate adds no alias),
        # then to the declared rate with an anti-aliasing filter.
        source = measured if other_rate else self.sampling_rate
        grid = np.arange(0, seconds[-1] + 1e-9, 1.0 / source)
        regular = np.column_stack([np.interp(grid, seconds, signals[:, c]) for c in range(signals.shape[1])])
        resampled = resample_signals(regular, source, self.sampling_rate).astype(np.float32)
        times = np.arange(len(resampled)) / self.sampling_rate
        right = np.clip(np.searchsorted(seconds, times, side="right"), 1, len(seconds) - 1)
        in_gap = seconds[right] - seconds[right - 1] > GAP_FACTOR * max(period, 1.0 / source)
        nearest = np.where(times - seconds[right - 1] < seconds[right] - times, right - 1, right)
        take = None if labels is None else labels[nearest]
        return _Table(name, resampled, take, subjects[nearest], times, in_gap)

    # --- labels from a file of intervals ---

    def _intervals(self, names: set[str]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per recording: (starts, ends, labels) from `labels_file`, checked against the recordings found."""
        path = self._labels_path()
        if not path.is_file():
            raise HarkitError(f"labels_file {self.description['labels_file']!r} does not exist in {self.folder}")
        try:
            frame = pd.read_csv(path, dtype={"recording": str, "label": str}, keep_default_na=False, na_values=[""])
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise HarkitError(f"cannot read {path}: {error}") from None
        missing = [c for c in ("recording", "start", "end", "label") if c not in frame.columns]
        if missing:
            raise HarkitError(
                f"{path} lacks the columns {missing}; it needs recording,start,end,label (it has {list(frame.columns)})"
            )
        times = frame[["start", "end"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(times)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise HarkitError(
                f"{path}: {('start', 'end')[column]} {frame[('start', 'end')[column]].iat[row]!r} at data row "
                f"{row + 1} is not a finite number of seconds"
            )
        starts, ends = times[:, 0], times[:, 1]
        if (ends <= starts).any():
            row = int(np.flatnonzero(ends <= starts)[0])
            raise HarkitError(f"{path}: end {ends[row]:g} is not after start {starts[row]:g} at data row {row + 1}")
        recordings = frame["recording"].fillna("").map(lambda p: PurePosixPath(p.replace("\\", "/")).as_posix())
        unknown = ~recordings.isin(names)
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise HarkitError(
                f"{path}: data row {row + 1} names the recording {frame['recording'].iat[row]!r}, which is not one "
                f"of the {len(names)} recordings (paths relative to {self.folder}, e.g. {sorted(names)[0]!r})"
            )
        order = np.lexsort((starts, recordings.to_numpy(str)))
        same = recordings.to_numpy(str)[order][1:] == recordings.to_numpy(str)[order][:-1]
        overlapping = same & (starts[order][1:] < ends[order][:-1])
        if overlapping.any():
            i = int(np.flatnonzero(overlapping)[0])
            raise HarkitError(
                f"{path}: the intervals at data rows {order[i] + 1} and {order[i + 1] + 1} of "
                f"{recordings.iat[order[i]]!r} overlap; a sample can have one label only"
            )
        labels = frame["label"].fillna("").astype(str).str.strip().to_numpy(object)
        grouped = pd.Series(np.arange(len(frame))).groupby(recordings.to_numpy(str))
        return {name: (starts[rows], ends[rows], labels[rows]) for name, rows in grouped.indices.items()}

    def _label_from_intervals(self, table: _Table, intervals) -> np.ndarray | None:
        if table.name not in intervals:
            return None
        starts, ends, labels = intervals[table.name]
        n = len(table.signals)
        seconds = table.seconds if table.seconds is not None else np.arange(n) / self.sampling_rate
        first = np.searchsorted(seconds, starts - INTERVAL_TOLERANCE)
        after = np.searchsorted(seconds, ends - INTERVAL_TOLERANCE)
        which = labels_from_segments(n, first, after - 1, np.arange(len(labels)))
        return np.where(which >= 0, labels[np.maximum(which, 0)], "").astype(object)

    # --- the dataset ---

    def read(self, root: Path) -> list[Recording]:
        d = self.description
        nulls = {str(v) for v in d.get("null_labels", [""])} | {""}
        tables = map_files(self._load, self.files())
        if "labels_file" in d:
            intervals = self._intervals({t.name for t in tables})
            for table in tables:
                table.labels = self._label_from_intervals(table, intervals)
        for table in tables:
            if table.labels is not None and table.in_gap is not None:
                table.labels = np.where(table.in_gap, "", table.labels).astype(object)
        self.unlabelled_recordings = [
            t.name for t in tables if t.labels is None or not (~pd.Series(t.labels).isin(nulls)).any()
        ]
        labels_found = sorted({v for t in tables if t.labels is not None for v in pd.unique(t.labels)} - nulls)
        if not labels_found:
            source = {
                "label_column": f"column {d.get('label_column')!r}",
                "label_pattern": f"label_pattern {d.get('label_pattern')!r} over the file paths",
                "labels_file": f"labels_file {d.get('labels_file')!r}",
            }
            where = next(v for k, v in source.items() if k in d)
            raise HarkitError(f"no recording in {self.folder} has a label from {where}; see {DESCRIPTION}")
        if self.unlabelled_recordings:
            log.warning(
                "%d of %d recordings have no labels and are not trained on (predict can label them): %s",
                len(self.unlabelled_recordings),
                len(tables),
                ", ".join(self.unlabelled_recordings[:10]) + (" ..." if len(self.unlabelled_recordings) > 10 else ""),
            )
        if not self.classes:
            self.classes = labels_found
        unknown = sorted(set(labels_found) - set(self.classes))
        if unknown:
            raise HarkitError(f"labels {unknown} are not in the classes {self.classes} of {DESCRIPTION}")
        subject_names = sorted({s for t in tables for s in pd.unique(t.subjects)}, key=_natural)
        self.subject_names = subject_names
        numbers = {name: _subject_number(name, i) for i, name in enumerate(subject_names)}
        lookup = {name: i for i, name in enumerate(self.classes)} | dict.fromkeys(nulls, UNLABELLED)
        recordings, subjects_of_class = [], defaultdict(set)
        for table in tables:
            names, n = table.subjects, len(table.signals)
            if table.labels is None:
                labels = np.full(n, UNLABELLED, np.int64)
            else:
                labels = pd.Series(table.labels).map(lookup).to_numpy(np.int64)
            bounds = np.concatenate([[0], np.flatnonzero(names[1:] != names[:-1]) + 1, [n]])
            for a, b in itertools.pairwise(bounds):
                subject = numbers[names[a]]
                recordings.append(Recording(table.signals[a:b], labels[a:b], subject, table.name))
                starts, ends, values = segments(labels[a:b])
                for label in np.unique(values[ends - starts >= self.window]):  # classes that give windows
                    subjects_of_class[self.classes[label]].add(subject)
        self._warn_about_window(recordings)
        if self.test_fraction is not None:
            return recordings
        lonely = sorted(c for c, s in subjects_of_class.items() if len(s) == 1)
        if lonely and len(numbers) > 1:
            log.warning(
                "classes %s occur in one subject only: a split by subject tests them on a subject that "
                "never trained them, or never tests them",
                lonely,
            )
        named = [s for s in d.get("test_subjects", []) if isinstance(s, str)]
        if named:
            absent = [s for s in named if s not in numbers]
            if absent:
                raise HarkitError(f"test_subjects {absent} of {DESCRIPTION} are not among the subjects {subject_names}")
            ids = [numbers[s] if isinstance(s, str) else s for s in d["test_subjects"]]
            self.default_split = DefaultSplit(test_subjects=tuple(ids))
        if not self.default_split.test_subjects:
            ids = sorted(numbers.values())
            held_out = ids[-max(1, round(0.2 * len(ids))) :] if len(ids) > 1 else ids
            self.default_split = DefaultSplit(test_subjects=tuple(held_out))
            log.info("no test_subjects in %s: holding out subjects %s", DESCRIPTION, held_out)
        return recordings

    def _warn_about_window(self, recordings: list[Recording]) -> None:
        """Say early, and with the fix, when the window is longer than the labelled data."""
        lengths = [int(e - s) for r in recordings for s, e in zip(*segments(r.labels)[:2], strict=True)]
        longest = max(lengths, default=0)
        short = sum(1 for r in recordings if (r.labels != UNLABELLED).any() and len(r.labels) < self.window)
        if "window" not in self.description and longest < self.window:
            log.warning(
                "%s sets no window, so the default of %d samples (%.3g s at %g Hz) is used, but the longest "
                "labelled segment has %d samples; set window = %d (or less) in %s, or pass --window",
                DESCRIPTION,
                self.window,
                self.window / self.sampling_rate,
                self.sampling_rate,
                longest,
                longest,
                DESCRIPTION,
            )
        elif short:
            log.warning(
                "%d labelled recordings are shorter than one window (%d samples) and give no windows",
                short,
                self.window,
            )

    def describe_recordings(self) -> dict:
        """What harkit understood: recordings, subjects, and per class the samples and duration."""
        recordings = self.read(self.folder)
        per_class = defaultdict(int)
        for recording in recordings:
            for label, count in zip(*np.unique(recording.labels, return_counts=True), strict=True):
                if label != UNLABELLED:
                    per_class[self.classes[label]] += int(count)
        time_split = self.test_fraction is not None
        return {
            "folder": str(self.folder),
            "recordings": len({r.session for r in recordings}),
            "unlabelled_recordings": list(self.unlabelled_recordings),
            "subjects": {int(_subject_number(n, i)): n for i, n in enumerate(self.subject_names)},
            "split": {"kind": "time", "test_fraction": self.test_fraction} if time_split else {"kind": "subject"},
            "test_subjects": [] if time_split else list(self.default_split.test_subjects),
            "channels": self.channels,
            "sensors": [[self.channels[i] for i in g] for g in self.sensors],
            "classes": {
                c: {"samples": per_class[c], "seconds": per_class[c] / self.sampling_rate} for c in self.classes
            },
            "unlabelled_samples": int(sum((r.labels == UNLABELLED).sum() for r in recordings)),
            "sampling_rate": self.sampling_rate,
            "window": self.window,
            "window_is_default": "window" not in self.description,
            "overlap": self.overlap,
        }


def _natural(name: str):
    return (0, int(name)) if name.lstrip("-").isdigit() else (1, name)


def _subject_number(name: str, index: int) -> int:
    """Integer subject ids stay as they are; other names are numbered 1, 2, ... in sorted order."""
    return int(name) if name.lstrip("-").isdigit() else index + 1
