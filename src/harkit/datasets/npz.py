"""Windows already cut, in a NumPy `.npz`: `x` [n, time, channels], `y` [n], and optionally `subject` [n].

Optional arrays: `channels` (names), `classes` (names, when `y` holds indices into them) and `sampling_rate`
(a scalar, Hz). The file is loaded with `allow_pickle=False`: an array of Python objects is refused, never
unpickled.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path

import numpy as np

from harkit import HarkitError
from harkit.datasets.base import Dataset, DefaultSplit, Source, Windows

log = logging.getLogger(__name__)
KNOWN = ("x", "y", "subject", "channels", "classes", "sampling_rate")
TEST_SHARE = 0.2  # the default test part: the last fifth of the subjects (a seeded fifth of windows without them)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an `.npz`, without unpickling anything; errors name the file and the array."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            unknown = sorted(set(names) - set(KNOWN))
            if unknown:
                raise HarkitError(f"{path}: unknown arrays {unknown}; an .npz dataset holds {', '.join(KNOWN)}")
            arrays = {}
            for name in names:
                try:
                    arrays[name] = archive[name]
                except ValueError:
                    raise HarkitError(
                        f"{path}: the array {name!r} holds Python objects, which harkit never unpickles; save it as "
                        "numbers or strings (e.g. np.asarray(labels, dtype=str))"
                    ) from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise HarkitError(f"cannot read {path} as an .npz file: {error}") from None
    return arrays


class NpzDataset(Dataset):
    """Pre-windowed arrays in one `.npz` file."""

    marker = ".npz"
    overlap = 0.0
    default_split = DefaultSplit()
    nan_policy = "NaN values become the training mean after normalisation; infinite values are refused."

    def __init__(self, path: Path, sampling_rate: float | None = None) -> None:
        self.path = Path(path).resolve()
        arrays = load_npz(self.path)
        for name in ("x", "y"):
            if name not in arrays:
                raise HarkitError(f"{self.path} has no array {name!r}; an .npz dataset needs x [n, time, channels], y")
        x, y = arrays["x"], arrays["y"]
        if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
            raise HarkitError(f"{self.path}: x must be numbers of shape [n, time, channels], got {x.dtype} {x.shape}")
        if y.shape != (len(x),):
            raise HarkitError(f"{self.path}: y must have one label per window, shape ({len(x)},), got {y.shape}")
        with np.errstate(over="ignore"):
            x = x.astype(np.float32)
        infinite = np.isinf(x)
        if infinite.any():
            window, time, channel = np.argwhere(infinite)[0]
            raise HarkitError(
                f"{self.path}: x[{window}, {time}, {channel}] is not finite ({arrays['x'][window, time, channel]}); "
                "mark missing values as NaN"
            )
        self.key = str(self.path)
        self.title = self.path.stem
        self.source = Source(url=self.path.as_uri(), filename=self.path.name)
        rate = sampling_rate if sampling_rate is not None else arrays.get("sampling_rate", 1.0)
        rate = float(np.asarray(rate)) if np.asarray(rate).size == 1 else float("nan")
        if not (np.isfinite(rate) and rate > 0):
            raise HarkitError(f"{self.path}: sampling_rate must be a positive number of Hz, got {rate}")
        self.sampling_rate = rate
        self.window = x.shape[1]
        self.channels = self._names(arrays, "channels", x.shape[2], "ch")
        self._y, self.classes = self._labels(arrays, y)
        self._x = x
        if "subject" in arrays:
            subject = arrays["subject"]
            if subject.shape != (len(x),) or not np.issubdtype(subject.dtype, np.integer):
                raise HarkitError(f"{self.path}: subject must be integers of shape ({len(x)},), got {subject.dtype}")
            self._subject = subject.astype(np.int64)
            ids = np.unique(self._subject)
            test = ids[-max(1, round(TEST_SHARE * len(ids))) :] if len(ids) > 1 else ids
        else:
            # No subjects: every window is its own group, and a seeded fifth of them is tested. Windows cut from
            # one recording with overlap then fall on both sides: the score is optimistic.
            self._subject = np.arange(1, len(x) + 1, dtype=np.int64)
            count = max(1, round(TEST_SHARE * len(x)))
            test = np.sort(np.random.default_rng(0).choice(self._subject, size=count, replace=False))
            log.warning(
                "%s has no subject array: %d random windows are the test part; windows from one recording "
                "may fall on both sides, so add `subject` for a split by subject",
                self.path.name,
                count,
            )
        self.default_split = DefaultSplit(test_subjects=tuple(int(s) for s in test))

    def _names(self, arrays: dict, name: str, count: int, prefix: str) -> list[str]:
        if name not in arrays:
            return [f"{prefix}_{i}" for i in range(count)]
        names = [str(v) for v in np.asarray(arrays[name]).reshape(-1)]
        if len(names) != count:
            raise HarkitError(f"{self.path}: {name} names {len(names)} entries, but there are {count}")
        return names

    def _labels(self, arrays: dict, y: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Class indices and names: string labels are sorted, integer labels index `classes` when given."""
        if np.issubdtype(y.dtype, np.integer):
            values = np.unique(y)
            if "classes" in arrays:
                classes = self._names(arrays, "classes", len(np.asarray(arrays["classes"]).reshape(-1)), "")
                if values.min() < 0 or values.max() >= len(classes):
                    raise HarkitError(f"{self.path}: y holds {values.tolist()}, not indices into classes {classes}")
                return y.astype(np.int64), classes
            return np.searchsorted(values, y).astype(np.int64), [str(v) for v in values]
        if y.dtype.kind in "US":
            labels = y.astype(str)
            classes = sorted(set(labels.tolist()))
            return np.searchsorted(np.array(classes), labels).astype(np.int64), classes
        raise HarkitError(f"{self.path}: y must hold integers or strings, got {y.dtype}")

    @property
    def options(self) -> dict:
        return {"sampling_rate": self.sampling_rate}

    def find(self, data_dir: Path | None, cache_dir: Path, allow_download: bool) -> tuple[Path, str]:
        stat = self.path.stat()
        return self.path, "npz:" + hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()

    def read(self, root: Path) -> Windows:
        return Windows(self._x, self._y, self._subject, np.full(len(self._x), self.path.stem))

    def describe_recordings(self) -> dict:
        """What harkit understood: windows, subjects and classes (for `harkit datasets --describe`)."""
        counts = np.bincount(self._y, minlength=len(self.classes)) * self.window
        has_subjects = len(np.unique(self._subject)) < len(self._subject)
        return {
            "folder": str(self.path),
            "recordings": len(self._x),
            "unlabelled_recordings": [],
            "subjects": {int(s): str(s) for s in np.unique(self._subject)} if has_subjects else {},
            "split": {"kind": "subject"}
            if has_subjects
            else {"kind": "published", "text": "a random fifth of windows"},
            "test_subjects": list(self.default_split.test_subjects),
            "channels": self.channels,
            "sensors": [[self.channels[i] for i in g] for g in self.sensors],
            "classes": {
                c: {"samples": int(counts[i]), "seconds": counts[i] / self.sampling_rate}
                for i, c in enumerate(self.classes)
            },
            "unlabelled_samples": 0,
            "sampling_rate": self.sampling_rate,
            "window": self.window,
            "window_is_default": False,
            "overlap": 0.0,
        }
