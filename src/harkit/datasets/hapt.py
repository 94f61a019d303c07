"""UCI HAPT (id 341): the raw 50 Hz accelerometer and gyroscope signals behind UCI-HAR."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np

from harkit import HarkitError
from harkit.datasets.base import UNLABELLED, Dataset, DefaultSplit, Recording, Source
from harkit.datasets.parsing import map_files, read_space_separated
from harkit.datasets.windows import labels_from_segments

BASIC = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
TRANSITIONS = ["STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND"]
UCI_HAR_TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
PUBLISHED_SHA256 = "4ac4ae064227c07045a99551876b54d204837e995e298b6488559e209b3deb09"
log = logging.getLogger(__name__)


class HAPT(Dataset):
    """Labels come from `RawData/labels.txt` (0-based inclusive sample ranges); samples outside every
    range are unlabelled. By default only the six UCI-HAR activities are windowed.
    """

    key = "hapt"
    title = "Smartphone-Based Recognition of Human Activities and Postural Transitions (UCI 341)"
    source = Source(
        "https://archive.ics.uci.edu/static/public/341/"
        "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip",
        "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip",
        PUBLISHED_SHA256,
    )
    archive_names = ("HAPT Data Set.zip", "HAPT%20Data%20Set.zip", "hapt.zip")
    # UCI published the same archive (79,596,192 bytes) as "HAPT Data Set.zip" before its current name.
    archive_sha256 = dict.fromkeys(archive_names, PUBLISHED_SHA256)
    marker = "RawData/labels.txt"
    sampling_rate = 50.0
    window = 128
    overlap = 0.5
    default_split = DefaultSplit(test_subjects=UCI_HAR_TEST_SUBJECTS)
    # One waist-worn phone: its accelerometer and gyroscope share its axes.
    devices: ClassVar[dict[str, list[str]]] = {"phone": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]}

    def __init__(self, transitions: bool = False) -> None:
        self.transitions = transitions
        self.channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
        self.classes = BASIC + TRANSITIONS if transitions else list(BASIC)

    @property
    def options(self) -> dict:
        return {"transitions": self.transitions}

    def read(self, root: Path) -> list[Recording]:
        raw = root / "RawData"
        labels = read_space_separated(raw / "labels.txt", columns=5).astype(np.int64)
        published = (labels[:, 2] >= 1) & (labels[:, 2] <= len(BASIC + TRANSITIONS))
        if not published.all():
            log.warning(
                "%s: %d rows have activity ids outside HAPT's published 1..12 (%s); their samples are left unlabelled",
                raw / "labels.txt",
                int((~published).sum()),
                ", ".join(map(str, np.unique(labels[~published, 2]).tolist())),
            )

        def recording(experiment_user: np.ndarray) -> Recording:
            experiment, user = experiment_user
            stem = f"exp{experiment:02d}_user{user:02d}.txt"
            acc = read_space_separated(raw / f"acc_{stem}", columns=3, single_space=True)
            gyro = read_space_separated(raw / f"gyro_{stem}", columns=3, single_space=True)
            if len(acc) != len(gyro):
                raise HarkitError(f"acc_{stem} has {len(acc)} rows but gyro_{stem} has {len(gyro)}")
            rows = labels[labels[:, 0] == experiment]
            activity = rows[:, 2] - 1
            # Transitions (ids 7-12) are left out unless asked for; ids outside 1..12 were reported above.
            activity = np.where((activity >= 0) & (activity < len(self.classes)), activity, UNLABELLED)
            per_sample = labels_from_segments(len(acc), rows[:, 3], rows[:, 4], activity)
            return Recording(np.hstack([acc, gyro]), per_sample, int(user), f"exp{experiment:02d}")

        return map_files(recording, np.unique(labels[:, :2], axis=0))
