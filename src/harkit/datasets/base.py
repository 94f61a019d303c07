"""The shapes every dataset shares: recordings, windows and the dataset description.

The registry lives in `harkit.datasets.registry`, above the readers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from harkit.datasets.download import locate

UNLABELLED = -1


@dataclass
class Recording:
    """One continuous recording of one subject: `signals` is `[n_samples, n_channels]` float32.

    `labels` holds a 0-based class index per sample, or `UNLABELLED`.
    """

    signals: np.ndarray
    labels: np.ndarray
    subject: int
    session: str


@dataclass
class Windows:
    """Windowed arrays: `x` is `[n, window, channels]` float32, `y` 0-based int64, one subject per window."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    session: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Windows:
        """The windows selected by a boolean mask or an index array."""
        return Windows(self.x[index], self.y[index], self.subject[index], self.session[index])

    @staticmethod
    def concatenate(parts: Sequence[Windows], window: int, channels: int) -> Windows:
        """Join windows; an empty list gives empty arrays of the right shape."""
        if not parts:
            return Windows(
                np.empty((0, window, channels), np.float32),
                np.empty(0, np.int64),
                np.empty(0, np.int64),
                np.empty(0, dtype=str),
            )
        return Windows(
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.y for p in parts]),
            np.concatenate([p.subject for p in parts]),
            np.concatenate([p.session for p in parts]),
        )


@dataclass(frozen=True)
class Source:
    """Where the archive is published; `sha256` is None where the owner publishes no checksum."""

    url: str
    filename: str
    sha256: str | None = None


@dataclass(frozen=True)
class DefaultSplit:
    """The dataset's default test part: whole subjects, or (subject, session) recordings."""

    test_subjects: tuple[int, ...] = ()
    test_sessions: tuple[tuple[int, str], ...] = ()

    @property
    def by(self) -> str:
        return "session" if self.test_sessions else "subject"


class Dataset:
    """A dataset: the facts about it and a reader of its raw format.

    Subclasses set the class attributes and implement `read`; readers know one raw format and nothing
    else (windowing, splitting, normalisation and caching are shared, in `harkit.datasets.pipeline`).
    """

    key: ClassVar[str]
    title: ClassVar[str]
    source: ClassVar[Source]
    archive_names: ClassVar[tuple[str, ...]] = ()
    # SHA-256 of archives published under other names than `source.filename` (an older or inner archive).
    archive_sha256: ClassVar[dict[str, str]] = {}
    marker: ClassVar[str]
    sampling_rate: ClassVar[float]
    downsample: ClassVar[int] = 1
    window: ClassVar[int]
    overlap: ClassVar[float]
    default_split: ClassVar[DefaultSplit]
    nan_policy: ClassVar[str] = "The raw files hold no missing values."
    # Device name -> the channels measured in that device's frame: one rotation turns them together. Channels
    # that are not vectors in a device frame (Euler angles, quaternions, earth-frame signals) belong to no
    # device and are never rotated. Empty: every 3-axis sensor counts as a device of its own.
    devices: ClassVar[dict[str, list[str]]] = {}

    channels: list[str]
    classes: list[str]

    @property
    def rate(self) -> float:
        """Sampling rate of the windows, after down-sampling."""
        return self.sampling_rate / self.downsample

    @property
    def options(self) -> dict:
        """Reader options that change what is read (part of the cache key)."""
        return {}

    def read(self, root: Path) -> list[Recording] | Windows:
        """Read the extracted archive under `root` (the folder that holds `marker`)."""
        raise NotImplementedError

    def find(self, data_dir: Path | None, cache_dir: Path, allow_download: bool) -> tuple[Path, str]:
        """The folder to read from and a fingerprint of its content (see `harkit.datasets.download.locate`)."""
        return locate(self, data_dir, cache_dir, allow_download)

    @property
    def sensors(self) -> list[tuple[int, int, int]]:
        """Channel indices of each 3-axis sensor (what rotation augmentation rotates).

        With `devices`, only the x, y, z groups whose channels all belong to one device.
        """
        groups = sensor_groups(self.channels)
        if not self.devices:
            return groups
        members = [set(names) for names in self.devices.values()]
        return [g for g in groups if any({self.channels[i] for i in g} <= names for names in members)]

    def describe(self) -> dict:
        """The dataset's facts as plain data."""
        split = self.default_split
        return {
            "key": self.key,
            "title": self.title,
            "url": self.source.url,
            "sha256": self.source.sha256,
            "sampling_rate": self.sampling_rate,
            "rate": self.rate,
            "channels": list(self.channels),
            "classes": list(self.classes),
            "window": self.window,
            "overlap": self.overlap,
            "test_subjects": list(split.test_subjects),
            "test_sessions": [list(s) for s in split.test_sessions],
            "options": self.options,
            "missing_values": self.nan_policy,
            "devices": self.devices,
        }


def sensor_groups(channels: Sequence[str]) -> list[tuple[int, int, int]]:
    """Indices of channels that form one 3-axis sensor: names that differ only by a final x, y, z."""
    by_stem: dict[str, dict[str, int]] = {}
    for index, name in enumerate(channels):
        match = re.fullmatch(r"(.*?)[_ ]?([xyzXYZ])", name)
        if match:
            by_stem.setdefault(match.group(1), {})[match.group(2).lower()] = index
    return [(axes["x"], axes["y"], axes["z"]) for axes in by_stem.values() if set(axes) == {"x", "y", "z"}]
