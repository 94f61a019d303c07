"""PAMAP2 Physical Activity Monitoring (id 231): 54 space-separated columns at 100 Hz, NaN gaps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np

from harkit.datasets.base import UNLABELLED, Dataset, DefaultSplit, Recording, Source
from harkit.datasets.parsing import map_files, read_space_separated

# activityID -> class name, the 12 protocol activities; 0 (transient) and the rest are unlabelled.
ACTIVITIES = {
    1: "lying",
    2: "sitting",
    3: "standing",
    4: "walking",
    5: "running",
    6: "cycling",
    7: "Nordic walking",
    12: "ascending stairs",
    13: "descending stairs",
    16: "vacuum cleaning",
    17: "ironing",
    24: "rope jumping",
}
# Every activityID the dataset's readme lists: 0 (transient), the protocol and the optional activities.
PUBLISHED_IDS = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 24)
log = logging.getLogger(__name__)
IMUS = {"hand": 3, "chest": 20, "ankle": 37}
# Within one IMU's 17 columns: acc16 (1-3), acc6 (4-6), gyro (7-9), magnetometer (10-12).
SENSORS = {"acc16": 1, "acc6": 4, "gyro": 7, "mag": 10}


class PAMAP2(Dataset):
    """Down-sampled from 100 Hz to 33.3 Hz by keeping every third sample."""

    key = "pamap2"
    title = "PAMAP2 Physical Activity Monitoring (UCI 231)"
    source = Source(
        "https://archive.ics.uci.edu/static/public/231/pamap2+physical+activity+monitoring.zip",
        "pamap2+physical+activity+monitoring.zip",
    )
    archive_names = ("PAMAP2_Dataset.zip",)
    marker = "Protocol/subject101.dat"
    sampling_rate = 100.0
    downsample = 3
    window = 171
    overlap = 0.5
    default_split = DefaultSplit(test_subjects=(105,))
    devices: ClassVar[dict[str, list[str]]] = {
        imu: [f"{imu}_{sensor}_{axis}" for sensor in SENSORS for axis in "xyz"] for imu in IMUS
    }
    nan_policy = (
        "Wireless drop-outs (NaN) are linearly interpolated per channel within each subject's recording, "
        "at 100 Hz, before down-sampling; heart rate and orientation are not used."
    )

    def __init__(self, optional: bool = False) -> None:
        self.optional = optional
        self.columns = [IMUS[imu] + SENSORS[sensor] + axis for imu in IMUS for sensor in SENSORS for axis in range(3)]
        self.channels = [f"{imu}_{sensor}_{axis}" for imu in IMUS for sensor in SENSORS for axis in "xyz"]
        self.classes = list(ACTIVITIES.values())

    @property
    def options(self) -> dict:
        return {"optional": self.optional}

    def read(self, root: Path) -> list[Recording]:
        lookup = np.full(max(ACTIVITIES) + 1, UNLABELLED, np.int64)
        lookup[list(ACTIVITIES)] = np.arange(len(ACTIVITIES))
        folders = ["Protocol", "Optional"] if self.optional else ["Protocol"]

        def recording(path: Path) -> Recording:
            table = read_space_separated(path, columns=54)
            activity = np.nan_to_num(table[:, 1], nan=-1).astype(np.int64)
            unknown = ~np.isin(activity, PUBLISHED_IDS)
            if unknown.any():
                log.warning(
                    "%s: %d rows have activityIDs PAMAP2 does not publish (%s); they are left unlabelled",
                    path,
                    int(unknown.sum()),
                    ", ".join(map(str, np.unique(activity[unknown]).tolist())),
                )
            inside = (activity >= 0) & (activity < len(lookup))
            labels = np.where(inside, lookup[np.clip(activity, 0, len(lookup) - 1)], UNLABELLED)
            subject = int(path.stem.removeprefix("subject"))
            return Recording(table[:, self.columns], labels, subject, path.parent.name.lower())

        return map_files(recording, [path for f in folders for path in sorted((root / f).glob("subject1*.dat"))])
