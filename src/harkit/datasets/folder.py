"""Your own recordings: a folder of labelled CSV files described by a `harkit.toml` beside them.

See `TEMPLATE` (written by `harkit datasets --template DIR`) for every setting.
"""

from __future__ import annotations

import itertools
import logging
import re
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from harkit import HarkitError
from harkit.datasets.base import UNLABELLED, Dataset, DefaultSplit, Recording, Source, sensor_groups
from harkit.datasets.download import tree_fingerprint
from harkit.datasets.parsing import map_files

log = logging.getLogger(__name__)
DESCRIPTION = "harkit.toml"
RATE_TOLERANCE = 0.05  # a measured rate this far from the declared one is an error
GAP_FACTOR = 2.0  # a step longer than this many sample periods is a gap

TEMPLATE = """\
# harkit dataset description: this file sits beside (or above) the CSV recordings it describes.
# harkit prepare DIR, harkit train --dataset DIR ... then treat the folder like a built-in dataset.

name = "my-recordings"          # shown in reports
files = "**/*.csv"              # which files are recordings (a glob relative to this folder)
sampling_rate = 50.0            # Hz, as recorded

# Columns that are sensor channels, in this order. Channels named <stem>_x, <stem>_y, <stem>_z form a 3-axis
# sensor (rotated together by rotation augmentation); list other groupings explicitly in `sensors`.
channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
# sensors = [["ax", "ay", "az"]]

label_column = "activity"       # strings or integers
null_labels = ["", "null"]      # rows with these labels (or no label) are not windowed
# classes = ["walking", "sitting"]   # fixes the class order; by default the sorted labels found

# Where the subject comes from: a column, or a regular expression over the file's path (first group).
subject_column = "subject"
# subject_pattern = "subject(\\\\d+)"

timestamp_column = "timestamp"  # optional, in seconds; checked against sampling_rate
resample = false                # true: resample to sampling_rate instead of refusing irregular time

window = 128                    # samples
overlap = 0.5
test_subjects = [3]             # the default test split; omit it to hold out the last fifth of the subjects
"""

KNOWN_KEYS = {
    "name",
    "files",
    "sampling_rate",
    "channels",
    "sensors",
    "label_column",
    "null_labels",
    "classes",
    "subject_column",
    "subject_pattern",
    "timestamp_column",
    "resample",
    "window",
    "overlap",
    "test_subjects",
}


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
        unknown = set(d) - KNOWN_KEYS
        if unknown:
            raise HarkitError(f"{path}: unknown settings {sorted(unknown)}; known: {sorted(KNOWN_KEYS)}")
        for required in ("sampling_rate", "channels", "label_column"):
            if required not in d:
                raise HarkitError(f"{path} lacks {required!r}; see `harkit datasets --template DIR`")
        if "subject_column" not in d and "subject_pattern" not in d:
            raise HarkitError(f"{path} needs subject_column or subject_pattern to know whose recording a file is")
        self.key = str(self.folder)
        self.title = d.get("name", self.folder.name)
        self.source = Source(url=self.folder.as_uri(), filename=DESCRIPTION)
        self.sampling_rate = float(d["sampling_rate"])
        self.window = int(d.get("window", 128))
        self.overlap = float(d.get("overlap", 0.5))
        self.channels = [str(c) for c in d["channels"]]
        self.classes = [str(c) for c in d["classes"]] if "classes" in d else []
        self.subject_names: list[str] = []
        if "test_subjects" in d:
            self.default_split = DefaultSplit(test_subjects=tuple(int(s) for s in d["test_subjects"]))

    @property
    def options(self) -> dict:
        return self.description

    @property
    def sensors(self) -> list[tuple[int, int, int]]:
        if "sensors" not in self.description:
            return sensor_groups(self.channels)
        groups = []
        for group in self.description["sensors"]:
            missing = [c for c in group if c not in self.channels]
            if len(group) != 3 or missing:
                raise HarkitError(f"sensor {group} must name three of the channels {self.channels}")
            groups.append(tuple(self.channels.index(c) for c in group))
        return groups

    def find(self, data_dir: Path | None, cache_dir: Path, allow_download: bool) -> tuple[Path, str]:
        return self.folder, tree_fingerprint(self.folder)

    def files(self) -> list[Path]:
        files = sorted(p for p in self.folder.glob(self.description.get("files", "**/*.csv")) if p.is_file())
        if not files:
            raise HarkitError(f"no recordings match {self.description.get('files', '**/*.csv')!r} in {self.folder}")
        return files

    def _read_file(self, path: Path) -> pd.DataFrame:
        d = self.description
        try:
            frame = pd.read_csv(path, dtype={d["label_column"]: str}, keep_default_na=False, na_values=[""])
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise HarkitError(f"cannot read {path}: {error}") from None
        needed = [*self.channels, d["label_column"], *[d[k] for k in ("subject_column", "timestamp_column") if k in d]]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise HarkitError(f"{path} lacks the columns {missing} (it has {list(frame.columns)})")
        for column in self.channels:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = values.isna() & frame[column].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise HarkitError(
                    f"{path}: non-numeric value {frame[column].iat[row]!r} in channel {column!r} at data row {row + 1}"
                )
            frame[column] = values
        return frame

    def _subject(self, path: Path, frame: pd.DataFrame) -> np.ndarray:
        d = self.description
        if "subject_column" in d:
            names = frame[d["subject_column"]].astype(str).to_numpy()
        else:
            match = re.search(d["subject_pattern"], str(path.relative_to(self.folder)))
            if not match:
                raise HarkitError(f"{path}: the file name does not match subject_pattern {d['subject_pattern']!r}")
            names = np.full(len(frame), match.group(1) if match.groups() else match.group(0))
        return names

    def _timing(self, path: Path, frame: pd.DataFrame) -> pd.DataFrame:
        """Check the timestamps against the declared rate; resample when asked."""
        d = self.description
        time = pd.to_numeric(frame[d["timestamp_column"]], errors="coerce").to_numpy(np.float64)
        steps = np.diff(time)
        period = 1.0 / self.sampling_rate
        problem = None
        if np.isnan(time).any():
            problem = f"a missing or non-numeric timestamp at data row {int(np.flatnonzero(np.isnan(time))[0]) + 1}"
        elif (steps <= 0).any():
            problem = f"time does not increase at data row {int(np.flatnonzero(steps <= 0)[0]) + 2}"
        elif len(steps):
            measured = 1.0 / np.median(steps)
            if abs(measured - self.sampling_rate) / self.sampling_rate > RATE_TOLERANCE:
                problem = f"sampled at {measured:.4g} Hz, not the declared {self.sampling_rate:g} Hz"
            elif (steps > GAP_FACTOR * period).any():
                row = int(np.flatnonzero(steps > GAP_FACTOR * period)[0]) + 2
                problem = f"a gap of {steps[row - 2]:.3g} s before data row {row}"
        if problem is None:
            return frame
        fixable = "Hz" in problem or "gap" in problem
        if not (fixable and d.get("resample", False)):
            hint = (
                (f"; fix the file, or set resample = true in {DESCRIPTION} to resample to {self.sampling_rate:g} Hz")
                if fixable
                else ""
            )
            raise HarkitError(f"{path}: {problem}{hint}")
        grid = np.arange(time[0], time[-1] + 1e-9, period)
        nearest = np.clip(np.searchsorted(time, grid), 0, len(time) - 1)
        resampled = frame.iloc[nearest].reset_index(drop=True)  # labels and subject: the next sample's
        for column in self.channels:
            resampled[column] = np.interp(grid, time, frame[column].to_numpy(np.float64))
        resampled[d["timestamp_column"]] = grid
        return resampled

    def read(self, root: Path) -> list[Recording]:
        d = self.description
        nulls = {str(v) for v in d.get("null_labels", [""])}

        def load(path: Path) -> tuple[Path, pd.DataFrame]:
            frame = self._read_file(path)
            return path, self._timing(path, frame) if "timestamp_column" in d else frame

        frames, short = [], []
        for path, frame in map_files(load, self.files()):
            if len(frame) < self.window:
                short.append(path.name)
                continue
            frames.append((path, frame))
        if short:
            log.warning(
                "skipped %d recordings shorter than one window (%d samples): %s",
                len(short),
                self.window,
                ", ".join(short[:10]) + (" ..." if len(short) > 10 else ""),
            )
        if not frames:
            raise HarkitError(f"no recording in {self.folder} is as long as one window ({self.window} samples)")
        labels_found = sorted({str(v) for _, f in frames for v in f[d["label_column"]].dropna().unique()} - nulls)
        if not self.classes:
            self.classes = labels_found
        unknown = sorted(set(labels_found) - set(self.classes))
        if unknown:
            raise HarkitError(f"labels {unknown} are not in the classes {self.classes} of {DESCRIPTION}")
        subject_names = sorted({s for path, f in frames for s in self._subject(path, f)}, key=_natural)
        self.subject_names = subject_names
        numbers = {name: _subject_number(name, i) for i, name in enumerate(subject_names)}
        lookup = {name: i for i, name in enumerate(self.classes)}
        recordings, subjects_of_class = [], defaultdict(set)
        for path, frame in frames:
            names = self._subject(path, frame)
            raw = frame[d["label_column"]].fillna("").astype(str)
            labels = raw.map(lambda v: UNLABELLED if v in nulls else lookup[v]).to_numpy(np.int64)
            signals = frame[self.channels].to_numpy(np.float32)
            bounds = np.concatenate([[0], np.flatnonzero(names[1:] != names[:-1]) + 1, [len(frame)]])
            for a, b in itertools.pairwise(bounds):
                subject = numbers[names[a]]
                recordings.append(Recording(signals[a:b], labels[a:b], subject, str(path.relative_to(self.folder))))
                for label in np.unique(labels[a:b][labels[a:b] != UNLABELLED]):
                    subjects_of_class[self.classes[label]].add(subject)
        lonely = sorted(c for c, s in subjects_of_class.items() if len(s) == 1)
        if lonely and len(numbers) > 1:
            log.warning(
                "classes %s occur in one subject only: a split by subject tests them on a subject that "
                "never trained them, or never tests them",
                lonely,
            )
        if not self.default_split.test_subjects:
            ids = sorted(numbers.values())
            held_out = ids[-max(1, round(0.2 * len(ids))) :] if len(ids) > 1 else ids
            self.default_split = DefaultSplit(test_subjects=tuple(held_out))
            log.info("no test_subjects in %s: holding out subjects %s", DESCRIPTION, held_out)
        return recordings

    def describe_recordings(self) -> dict:
        """What harkit understood: recordings, subjects, and per class the samples and duration."""
        recordings = self.read(self.folder)
        per_class = defaultdict(int)
        for recording in recordings:
            for label, count in zip(*np.unique(recording.labels, return_counts=True), strict=True):
                if label != UNLABELLED:
                    per_class[self.classes[label]] += int(count)
        return {
            "folder": str(self.folder),
            "recordings": len(recordings),
            "subjects": {int(_subject_number(n, i)): n for i, n in enumerate(self.subject_names)},
            "test_subjects": list(self.default_split.test_subjects),
            "channels": self.channels,
            "sensors": [[self.channels[i] for i in g] for g in self.sensors],
            "classes": {
                c: {"samples": per_class[c], "seconds": per_class[c] / self.sampling_rate} for c in self.classes
            },
            "unlabelled_samples": int(sum((r.labels == UNLABELLED).sum() for r in recordings)),
            "sampling_rate": self.sampling_rate,
            "window": self.window,
            "overlap": self.overlap,
        }


def _natural(name: str):
    return (0, int(name)) if name.lstrip("-").isdigit() else (1, name)


def _subject_number(name: str, index: int) -> int:
    """Integer subject ids stay as they are; other names are numbered 1, 2, ... in sorted order."""
    return int(name) if name.lstrip("-").isdigit() else index + 1
