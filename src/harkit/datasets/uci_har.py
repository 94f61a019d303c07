"""UCI-HAR (id 240): published already cut into 128-sample windows at 50 Hz with 50 % overlap."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from harkit import HarkitError
from harkit.datasets.base import Dataset, DefaultSplit, Source, Windows
from harkit.datasets.hapt import BASIC, UCI_HAR_TEST_SUBJECTS
from harkit.datasets.parsing import map_files, read_space_separated

SIGNALS = [f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz"]


class UCIHAR(Dataset):
    """The nine `Inertial Signals` files of each split are stacked into `[n, 128, 9]`. The published
    train/test split is by subject, so the default split reproduces it exactly.
    """

    key = "uci-har"
    title = "Human Activity Recognition Using Smartphones (UCI 240)"
    source = Source(
        "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip",
        "human+activity+recognition+using+smartphones.zip",
        "c00b803081a5c797cd5e4b83700a9810b38d53d9d84e01917e090e1fdbc81031",
    )
    archive_names = ("UCI HAR Dataset.zip", "UCI%20HAR%20Dataset.zip")
    # The zip inside the published one, which many copies of UCI-HAR are.
    archive_sha256 = dict.fromkeys(archive_names, "2045e435c955214b38145fb5fa00776c72814f01b203fec405152dac7d5bfeb0")
    marker = "UCI HAR Dataset/activity_labels.txt"
    sampling_rate = 50.0
    window = 128
    overlap = 0.5
    default_split = DefaultSplit(test_subjects=UCI_HAR_TEST_SUBJECTS)
    # Body and total acceleration and the gyroscope of one waist-worn phone.
    devices: ClassVar[dict[str, list[str]]] = {"phone": list(SIGNALS)}

    def __init__(self) -> None:
        self.channels = list(SIGNALS)
        self.classes = list(BASIC)

    def read(self, root: Path) -> Windows:
        parts = [self._read_part(root / "UCI HAR Dataset", part) for part in ("train", "test")]
        return Windows.concatenate(parts, self.window, len(self.channels))

    def _read_part(self, folder: Path, part: str) -> Windows:
        signals = map_files(
            lambda name: read_space_separated(folder / part / "Inertial Signals" / f"{name}_{part}.txt", self.window),
            SIGNALS,
        )
        labels = read_space_separated(folder / part / f"y_{part}.txt", columns=1)[:, 0].astype(np.int64) - 1
        subjects = read_space_separated(folder / part / f"subject_{part}.txt", columns=1)[:, 0].astype(np.int64)
        counts = {len(labels), len(subjects), *(len(s) for s in signals)}
        if len(counts) != 1:
            raise HarkitError(f"the files of {folder / part} disagree on the number of windows: {sorted(counts)}")
        if labels.min() < 0 or labels.max() >= len(self.classes):
            raise HarkitError(f"{folder / part / f'y_{part}.txt'} holds labels outside 1..{len(self.classes)}")
        x = np.stack(signals, axis=2)
        return Windows(x, labels, subjects, np.full(len(labels), part))
