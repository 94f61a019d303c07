"""OPPORTUNITY Activity Recognition (id 226): 250 space-separated columns at 30 Hz, NaN gaps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np

from harkit import HarkitError
from harkit.datasets.base import UNLABELLED, Dataset, DefaultSplit, Recording, Source
from harkit.datasets.parsing import map_files, read_space_separated

GESTURES = {
    406516: "Open Door 1",
    406517: "Open Door 2",
    404516: "Close Door 1",
    404517: "Close Door 2",
    406520: "Open Fridge",
    404520: "Close Fridge",
    406505: "Open Dishwasher",
    404505: "Close Dishwasher",
    406519: "Open Drawer 1",
    404519: "Close Drawer 1",
    406511: "Open Drawer 2",
    404511: "Close Drawer 2",
    406508: "Open Drawer 3",
    404508: "Close Drawer 3",
    408512: "Clean Table",
    407521: "Drink from Cup",
    405506: "Toggle Switch",
}
LOCOMOTION = {1: "Stand", 2: "Walk", 4: "Sit", 5: "Lie"}
LABEL_COLUMN = {"gestures": 249, "locomotion": 243}
log = logging.getLogger(__name__)
SESSIONS = ["ADL1", "ADL2", "ADL3", "ADL4", "ADL5", "Drill"]

ACCELEROMETERS = ["RKN^", "HIP", "LUA^", "RUA_", "LH", "BACK", "RKN_", "RWR", "RUA^", "LUA_", "LWR", "RH"]
IMUS = {"BACK": 37, "RUA": 50, "RLA": 63, "LUA": 76, "LLA": 89}
SHOE_SIGNALS = [
    "Eu_x",
    "Eu_y",
    "Eu_z",
    "Nav_A_x",
    "Nav_A_y",
    "Nav_A_z",
    "Body_A_x",
    "Body_A_y",
    "Body_A_z",
    "AngVelBodyFrame_x",
    "AngVelBodyFrame_y",
    "AngVelBodyFrame_z",
    "AngVelNavFrame_x",
    "AngVelNavFrame_y",
    "AngVelNavFrame_z",
    "Compass",
]

SHOE_FRAME = ("Body_A", "AngVelBodyFrame")  # the shoe signals that are vectors in the shoe's own frame


def body_worn_channels() -> tuple[list[int], list[str]]:
    """The 113 body-worn channels of the challenge: 0-based columns and names."""
    columns, names = list(range(1, 37)), [f"acc_{s}_{a}" for s in ACCELEROMETERS for a in "xyz"]
    for imu, first in IMUS.items():
        columns += list(range(first, first + 9))
        names += [f"imu_{imu}_{kind}_{a}" for kind in ("acc", "gyro", "mag") for a in "xyz"]
    for shoe, first in (("L-SHOE", 102), ("R-SHOE", 118)):
        columns += list(range(first, first + 16))
        names += [f"imu_{shoe}_{signal}" for signal in SHOE_SIGNALS]
    return columns, names


def body_worn_devices() -> dict[str, list[str]]:
    """Channels in each device's own frame: every accelerometer, every IMU, and of the shoes only the body-frame
    acceleration and angular velocity (their Euler angles, navigation-frame signals and compass are not vectors
    in the shoe's frame, so rotation leaves them alone).
    """
    devices = {f"acc_{s}": [f"acc_{s}_{a}" for a in "xyz"] for s in ACCELEROMETERS}
    for imu in IMUS:
        devices[f"imu_{imu}"] = [f"imu_{imu}_{kind}_{a}" for kind in ("acc", "gyro", "mag") for a in "xyz"]
    for shoe in ("L-SHOE", "R-SHOE"):
        devices[f"imu_{shoe}"] = [f"imu_{shoe}_{signal}" for signal in SHOE_SIGNALS if signal[:-2] in SHOE_FRAME]
    return devices


class Opportunity(Dataset):
    """The 17 mid-level gestures (or the 4 locomotion modes) from the 113 body-worn channels."""

    key = "opportunity"
    title = "OPPORTUNITY Activity Recognition (UCI 226)"
    source = Source(
        "https://archive.ics.uci.edu/static/public/226/opportunity+activity+recognition.zip",
        "opportunity+activity+recognition.zip",
    )
    archive_names = ("OpportunityUCIDataset.zip",)
    marker = "dataset/S1-ADL1.dat"
    sampling_rate = 30.0
    window = 30
    overlap = 0.5
    devices: ClassVar[dict[str, list[str]]] = body_worn_devices()
    default_split = DefaultSplit(
        test_sessions=tuple((subject, session) for subject in (2, 3) for session in ("ADL4", "ADL5"))
    )
    nan_policy = (
        "NaN gaps are linearly interpolated per channel within each recording; a channel missing for a "
        "whole recording is set to the training mean (0 after normalisation)."
    )

    def __init__(self, task: str = "gestures", null_class: bool = False) -> None:
        if task not in LABEL_COLUMN:
            raise HarkitError(f"unknown OPPORTUNITY task {task!r}; use gestures or locomotion")
        self.task, self.null_class = task, null_class
        self.columns, self.channels = body_worn_channels()
        codes = GESTURES if task == "gestures" else LOCOMOTION
        self.codes = ([0] if null_class else []) + list(codes)
        self.classes = (["Null"] if null_class else []) + list(codes.values())

    @property
    def options(self) -> dict:
        return {"task": self.task, "null_class": self.null_class}

    def read(self, root: Path) -> list[Recording]:
        def recording(path: Path) -> Recording:
            subject, session = path.stem.split("-", 1)
            table = read_space_separated(path, columns=250)
            codes = np.nan_to_num(table[:, LABEL_COLUMN[self.task]], nan=-1).astype(np.int64)
            published = [0, *(GESTURES if self.task == "gestures" else LOCOMOTION)]  # 0 is Null
            unknown = ~np.isin(codes, published)
            if unknown.any():
                log.warning(
                    "%s: %d rows have %s labels OPPORTUNITY does not publish (%s); they are left unlabelled",
                    path,
                    int(unknown.sum()),
                    self.task,
                    ", ".join(map(str, np.unique(codes[unknown]).tolist())),
                )
            labels = np.full(len(codes), UNLABELLED, np.int64)
            for index, code in enumerate(self.codes):
                labels[codes == code] = index
            return Recording(table[:, self.columns], labels, int(subject[1:]), session)

        paths = sorted((root / "dataset").glob("S*-*.dat"))
        return map_files(recording, [path for path in paths if path.stem.split("-", 1)[1] in SESSIONS])
