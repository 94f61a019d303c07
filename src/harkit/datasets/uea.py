"""UEA/UCR time-series classification archives: a folder with `NAME_TRAIN.ts` and `NAME_TEST.ts`.

The `.ts` format (sktime/aeon): `@` header lines (`@problemName`, `@univariate`, `@dimensions`,
`@equalLength`, `@classLabel true a b c`, ...), then after `@data` one series per line, its dimensions
separated by `:`, the values of a dimension by `,`, the class label last. `?` is a missing value.

Each series is one window. Series of unequal length are padded at the end to the longest one with missing
values, which become the training mean after normalisation (like every missing value in harkit). The archives
name no subjects, so every series is its own group: the validation part is a random set of training series.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from harkit import HarkitError
from harkit.datasets.base import Dataset, DefaultSplit, Source, Windows

log = logging.getLogger(__name__)


def _header(lines: list[str], path: Path) -> dict[str, list[str]]:
    """`@key value ...` lines (lower-cased keys) up to `@data`."""
    header = {}
    for line in lines:
        words = line.strip().split()
        if words and words[0].startswith("@"):
            header[words[0][1:].lower()] = words[1:]
    if "timestamps" in header and header["timestamps"][:1] == ["true"]:
        raise HarkitError(f"{path}: series with time stamps (@timeStamps true) are not supported; resample them first")
    return header


def read_ts(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(x `[n, longest, dimensions]` float32 with NaN after the end of shorter series, labels, declared classes).

    The values are parsed with one pass of numpy/pandas over all series of a dimension, not line by line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise HarkitError(f"cannot read {path}: {error}") from None
    lower = text.lower()
    at = lower.find("@data")
    if at < 0:
        raise HarkitError(f"{path} has no @data line: it is not a .ts file")
    header = _header(text[:at].splitlines(), path)
    body = text[at:].split("\n", 1)[1] if "\n" in text[at:] else ""
    labelled = header.get("classlabel", ["false"])[:1] == ["true"]
    classes = header.get("classlabel", [])[1:] if labelled else []
    try:
        frame = pd.read_csv(
            io.StringIO(body), sep=":", header=None, dtype=str, skip_blank_lines=True, comment="#", engine="c"
        )
    except (ValueError, pd.errors.ParserError) as error:
        raise HarkitError(f"{path}: the series after @data differ in their number of dimensions: {error}") from None
    if frame.empty:
        raise HarkitError(f"{path} holds no series after @data")
    dimensions = frame.shape[1] - (1 if labelled else 0)
    declared = header.get("dimensions", [None])[0]
    if declared is not None and declared.isdigit() and int(declared) != dimensions:
        raise HarkitError(f"{path}: @dimensions {declared}, but the series have {dimensions}")
    if dimensions < 1:
        raise HarkitError(f"{path}: the series have no values")
    labels = frame.iloc[:, -1].fillna("").str.strip().to_numpy(str) if labelled else np.full(len(frame), "")
    n = len(frame)
    lengths = np.empty((n, dimensions), np.int64)
    values = []
    for d in range(dimensions):  # one vectorised parse per dimension
        cells = frame.iloc[:, d].fillna("").str.strip()
        lengths[:, d] = cells.str.count(",").to_numpy() + 1
        joined = ",".join(cells)
        numbers = _parse_numbers(joined.replace("?", "nan"), int(lengths[:, d].sum()))
        with np.errstate(over="ignore"):  # beyond float32's range is an error too
            infinite = np.isinf(numbers.astype(np.float32))
        bad = np.zeros(0, bool)
        if numbers.size != lengths[:, d].sum() or infinite.any():  # value by value, to name the culprit
            items = pd.Series(joined.split(",")).str.strip()
            numbers = pd.to_numeric(items.replace("?", "NaN"), errors="coerce").to_numpy(np.float64)
            with np.errstate(over="ignore"):
                infinite = np.isinf(numbers.astype(np.float32))
            bad = (np.isnan(numbers) & ~items.isin(["?", "NaN", "nan"]).to_numpy()) | infinite
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            series = int(np.searchsorted(np.cumsum(lengths[:, d]), first, side="right"))
            raise HarkitError(
                f"{path}: series {series + 1} (data line {series + 1} after @data), dimension {d}: the value "
                f"{items.iat[first]!r} is not a finite number (use ? for a missing value)"
            )
        values.append(numbers)
    uneven = np.flatnonzero((lengths != lengths[:, :1]).any(axis=1))
    if len(uneven):
        raise HarkitError(
            f"{path}: the dimensions of series {uneven[0] + 1} have different lengths {lengths[uneven[0]].tolist()}"
        )
    length = lengths[:, 0]
    x = np.full((n, int(length.max()), dimensions), np.nan, np.float32)
    rows = np.repeat(np.arange(n), length)
    columns = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    for d in range(dimensions):
        x[rows, columns, d] = values[d]
    return x, labels, classes


def _parse_numbers(text: str, count: int) -> np.ndarray:
    """Comma-separated numbers through pandas' C parser, one per line; an empty array when one is not a number."""
    if count == 0:
        return np.empty(0)
    try:
        frame = pd.read_csv(io.StringIO(text.replace(",", "\n")), header=None, dtype=np.float64, engine="c")
    except (ValueError, pd.errors.ParserError):
        return np.empty(0)
    return frame.iloc[:, 0].to_numpy()


def find_pair(folder: Path, name: str | None = None) -> tuple[Path, Path]:
    """The `NAME_TRAIN.ts` / `NAME_TEST.ts` pair in `folder` (the only one, or the one called `name`)."""
    trains = sorted(folder.glob("*_TRAIN.ts"))
    names = [p.name[: -len("_TRAIN.ts")] for p in trains]
    names = [n for n in names if (folder / f"{n}_TEST.ts").is_file()]
    if name is not None:
        names = [n for n in names if n == name]
    if len(names) != 1:
        found = ", ".join(names) or "none"
        raise HarkitError(
            f"{folder} needs exactly one pair NAME_TRAIN.ts / NAME_TEST.ts (found: {found})"
            + ("; choose one with --option name=NAME" if len(names) > 1 else "")
        )
    return folder / f"{names[0]}_TRAIN.ts", folder / f"{names[0]}_TEST.ts"


class UEADataset(Dataset):
    """A UEA/UCR archive's train/test pair as a dataset; its published test file is the default test part."""

    marker = "_TRAIN.ts"
    window = 0
    overlap = 0.0
    default_split = DefaultSplit()
    nan_policy = "? values and the padding of shorter series become the training mean after normalisation."

    def __init__(self, folder: Path, name: str | None = None, sampling_rate: float = 1.0) -> None:
        self.folder = Path(folder).resolve()
        self.train_file, self.test_file = find_pair(self.folder, name)
        if not (isinstance(sampling_rate, int | float) and np.isfinite(sampling_rate) and sampling_rate > 0):
            raise HarkitError(f"sampling_rate must be a positive number of Hz, got {sampling_rate!r}")
        self.name = self.train_file.name[: -len("_TRAIN.ts")]
        self.key = str(self.folder)
        self.title = f"{self.name} (UEA/UCR .ts)"
        self.source = Source(url=self.folder.as_uri(), filename=self.train_file.name)
        self.sampling_rate = float(sampling_rate)
        self._data = None
        x, _, _ = self._read()
        self.window = x.shape[1]
        self.channels = [f"dim_{d}" for d in range(x.shape[2])]
        # every series is its own group (the archives name no subjects); the published test file is tested
        self.default_split = DefaultSplit(test_subjects=tuple(range(self._data[2] + 1, len(x) + 1)))

    def _read(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        if self._data is None:
            train_x, train_y, declared = read_ts(self.train_file)
            test_x, test_y, _ = read_ts(self.test_file)
            if train_x.shape[2] != test_x.shape[2]:
                raise HarkitError(
                    f"{self.train_file.name} has {train_x.shape[2]} dimensions but {self.test_file.name} "
                    f"has {test_x.shape[2]}"
                )
            longest = max(train_x.shape[1], test_x.shape[1])
            x = np.full((len(train_x) + len(test_x), longest, train_x.shape[2]), np.nan, np.float32)
            x[: len(train_x), : train_x.shape[1]] = train_x
            x[len(train_x) :, : test_x.shape[1]] = test_x
            labels = np.concatenate([train_y, test_y])
            classes = list(declared) or sorted(set(labels.tolist()))
            unknown = sorted(set(labels.tolist()) - set(classes))
            if unknown:
                raise HarkitError(f"labels {unknown} are not among the classes {classes} of @classLabel")
            self.classes = classes
            self._data = (x, labels, len(train_x))
        x, labels, _ = self._data
        return x, labels, self.classes

    @property
    def options(self) -> dict:
        return {"name": self.name, "sampling_rate": self.sampling_rate}

    def find(self, data_dir: Path | None, cache_dir: Path, allow_download: bool) -> tuple[Path, str]:
        entries = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in (self.train_file, self.test_file)]
        return self.folder, "ts:" + hashlib.sha256("\n".join(entries).encode()).hexdigest()

    def read(self, root: Path) -> Windows:
        x, labels, classes = self._read()
        n_train = self._data[2]
        lookup = {c: i for i, c in enumerate(classes)}
        y = pd.Series(labels).map(lookup).to_numpy(np.int64)
        subject = np.arange(1, len(x) + 1, dtype=np.int64)  # every series is its own group
        session = np.where(np.arange(len(x)) < n_train, "train", "test")
        return Windows(x, y, subject, session)

    def describe_recordings(self) -> dict:
        """What harkit understood: series, classes and the published split (for `harkit datasets --describe`)."""
        x, labels, classes = self._read()
        lengths = (~np.isnan(x).all(axis=2)).sum(axis=1)
        return {
            "folder": str(self.folder),
            "recordings": len(x),
            "unlabelled_recordings": [],
            "subjects": {},
            "split": {
                "kind": "published",
                "text": f"{self.test_file.name} ({len(x) - self._data[2]} series; {self._data[2]} to train on)",
            },
            "test_subjects": [],
            "channels": self.channels,
            "sensors": [],
            "classes": {
                c: {
                    "samples": int(lengths[labels == c].sum()),
                    "seconds": lengths[labels == c].sum() / self.sampling_rate,
                }
                for c in classes
            },
            "unlabelled_samples": 0,
            "sampling_rate": self.sampling_rate,
            "window": self.window,
            "window_is_default": False,
            "overlap": 0.0,
        }
