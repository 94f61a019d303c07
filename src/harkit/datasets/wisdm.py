"""WISDM Activity Prediction v1.1: one text file of `user,activity,timestamp,x,y,z;` records at 20 Hz."""

from __future__ import annotations

import io
import itertools
import logging
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from harkit import HarkitError
from harkit.datasets.base import UNLABELLED, Dataset, DefaultSplit, Recording, Source

ACTIVITIES = ["Walking", "Jogging", "Upstairs", "Downstairs", "Sitting", "Standing"]
FIELDS = ["user", "activity", "timestamp", "x", "y", "z"]
log = logging.getLogger(__name__)


def parse_wisdm(path: Path) -> pd.DataFrame:
    """The raw file as a clean frame, one row a record, in file order.

    The published file has lines holding several `;`-terminated records, records ending in `,;`,
    records lacking the z value, empty lines and timestamps of 0. Records are split on `;`, trailing
    commas dropped, and records with a missing or non-numeric field or a zero timestamp are removed.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r",*\s*;\s*|\s*\n\s*", "\n", text)
    frame = pd.read_csv(
        io.StringIO(text),
        header=None,
        names=FIELDS,
        usecols=range(6),
        dtype=str,
        on_bad_lines="skip",
        engine="c",
    )
    for column in ("user", "timestamp", "x", "y", "z"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna()
    frame = frame[frame["timestamp"] != 0]
    return frame.reset_index(drop=True)


class WISDM(Dataset):
    """One recording per contiguous run of one user in the file; dropped records simply shorten it."""

    key = "wisdm"
    title = "WISDM Activity Prediction v1.1"
    source = Source(
        "https://www.cis.fordham.edu/wisdm/includes/datasets/latest/WISDM_ar_latest.tar.gz",
        "WISDM_ar_latest.tar.gz",
    )
    archive_names = ("WISDM_ar_v1.1.tar.gz",)
    marker = "WISDM_ar_v1.1_raw.txt"
    sampling_rate = 20.0
    window = 200
    overlap = 0.5
    default_split = DefaultSplit(test_subjects=(31, 32, 33, 34, 35, 36))
    devices: ClassVar[dict[str, list[str]]] = {"phone": ["acc_x", "acc_y", "acc_z"]}
    nan_policy = "Malformed records (missing or non-numeric fields, zero timestamps) are dropped."

    def __init__(self) -> None:
        self.channels = ["acc_x", "acc_y", "acc_z"]
        self.classes = list(ACTIVITIES)

    def read(self, root: Path) -> list[Recording]:
        frame = parse_wisdm(root / self.marker)
        if frame.empty:
            raise HarkitError(f"{root / self.marker} holds no valid records")
        users = frame["user"].to_numpy(np.int64)
        activity = frame["activity"].str.strip().map({name: i for i, name in enumerate(ACTIVITIES)})
        unknown = activity.isna()
        if unknown.any():
            log.warning(
                "%s: %d records have activities WISDM does not publish (%s); they are left unlabelled",
                root / self.marker,
                int(unknown.sum()),
                ", ".join(sorted(frame.loc[unknown, "activity"].str.strip().unique())),
            )
        labels = activity.fillna(UNLABELLED).to_numpy(np.int64)
        signals = frame[["x", "y", "z"]].to_numpy(np.float32)
        infinite = np.isinf(signals).any(axis=1)
        if infinite.any():  # 1e400 parses to infinity: name the record, which its timestamp identifies
            record = frame.iloc[int(np.argmax(infinite))]
            raise HarkitError(
                f"{root / self.marker}: the record of user {record['user']:.0f} at timestamp "
                f"{record['timestamp']:.0f} holds a value that is not a finite number ({int(infinite.sum())} such "
                "records); fix or remove them"
            )
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(users)) + 1, [len(users)]])
        return [
            Recording(signals[a:b], labels[a:b], int(users[a]), f"run{i:03d}")
            for i, (a, b) in enumerate(itertools.pairwise(bounds))
        ]
