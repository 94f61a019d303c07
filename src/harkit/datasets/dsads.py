"""Daily and Sports Activities (id 256): 125 x 45 comma-separated values per 5-second file, 25 Hz."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from harkit import HarkitError
from harkit.datasets.base import Dataset, DefaultSplit, Recording, Source
from harkit.datasets.parsing import map_files

ACTIVITIES = [
    "sitting",
    "standing",
    "lying on back",
    "lying on right side",
    "ascending stairs",
    "descending stairs",
    "standing in an elevator",
    "moving around in an elevator",
    "walking in a parking lot",
    "walking on a treadmill flat",
    "walking on a treadmill inclined",
    "running on a treadmill",
    "exercising on a stepper",
    "exercising on a cross trainer",
    "cycling horizontal",
    "cycling vertical",
    "rowing",
    "jumping",
    "playing basketball",
]
UNITS = ["torso", "right_arm", "left_arm", "right_leg", "left_leg"]
SEGMENT_SAMPLES = 125
log = logging.getLogger(__name__)


class DSADS(Dataset):
    """The 60 five-second files of one activity and subject are consecutive, so they are joined into one
    recording of 5 minutes; windows may cross file boundaries but never activities or subjects.
    """

    key = "dsads"
    title = "Daily and Sports Activities (UCI 256)"
    source = Source(
        "https://archive.ics.uci.edu/static/public/256/daily+and+sports+activities.zip",
        "daily+and+sports+activities.zip",
    )
    archive_names = ("data.zip",)
    marker = "data/a01/p1/s01.txt"
    sampling_rate = 25.0
    window = 125
    overlap = 0.4
    default_split = DefaultSplit(test_subjects=(7, 8))
    devices: ClassVar[dict[str, list[str]]] = {
        unit: [f"{unit}_{sensor}_{axis}" for sensor in ("acc", "gyro", "mag") for axis in "xyz"] for unit in UNITS
    }

    def __init__(self) -> None:
        self.channels = [
            f"{unit}_{sensor}_{axis}" for unit in UNITS for sensor in ("acc", "gyro", "mag") for axis in "xyz"
        ]
        self.classes = list(ACTIVITIES)

    def read(self, root: Path) -> list[Recording]:
        def recording(subject_dir: Path) -> Recording:
            files = sorted(subject_dir.glob("s[0-9][0-9].txt"))
            # One parse over the joined files: far faster than one parser call per 5-second file.
            text = b"".join(f.read_bytes().rstrip(b"\r\n") + b"\n" for f in files)
            frame = pd.read_csv(io.BytesIO(text), header=None, dtype=np.float32, engine="c")
            if frame.shape[1] != len(self.channels) or len(frame) != SEGMENT_SAMPLES * len(files):
                raise HarkitError(
                    f"{subject_dir}: expected {len(files)} files of {SEGMENT_SAMPLES} x {len(self.channels)} "
                    f"values, read {frame.shape[0]} x {frame.shape[1]}"
                )
            values = frame.to_numpy()
            if np.isinf(values).any():  # 1e400 parses to infinity: name the file and line it came from
                row, column = np.argwhere(np.isinf(values))[0]
                raise HarkitError(
                    f"{files[row // SEGMENT_SAMPLES]}, line {row % SEGMENT_SAMPLES + 1}, column {column + 1}: the "
                    "value is not a finite number (too large for 32-bit floats); fix that line"
                )
            activity = int(subject_dir.parent.name[1:]) - 1
            labels = np.full(len(frame), activity, np.int64)
            return Recording(values, labels, int(subject_dir.name[1:]), subject_dir.parent.name)

        activity_dirs = sorted((root / "data").glob("a[0-9][0-9]"))
        unknown = [a for a in activity_dirs if not 1 <= int(a.name[1:]) <= len(ACTIVITIES)]
        if unknown:
            log.warning(
                "%s: folders %s are not among DSADS's %d published activities (a01-a%02d); they are skipped",
                root / "data",
                ", ".join(a.name for a in unknown),
                len(ACTIVITIES),
                len(ACTIVITIES),
            )
            activity_dirs = [a for a in activity_dirs if a not in unknown]
        return map_files(recording, [folder for a in activity_dirs for folder in sorted(a.glob("p[0-9]*"))])
