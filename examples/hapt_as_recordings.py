"""Write HAPT's raw recordings as a folder of "own" recordings: one CSV per session, as a phone app would.

Each of the 61 sessions becomes `userNN/expMM.csv` with a millisecond timestamp, the six raw channels and an
`activity` column (empty where HAPT labels nothing or a postural transition), plus a `harkit.toml` that
describes them, with HAPT's usual test subjects. The README's own-recordings walkthrough starts here.

    python examples/hapt_as_recordings.py ../shared/datasets my-recordings

The first argument is the folder holding `HAPT Data Set.zip` (or the archive extracted), or the archive itself.
"""

from __future__ import annotations

import argparse
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

ACTIVITIES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING")
RATE = 50  # Hz
START_MS = 1_700_000_000_000  # a made-up wall-clock start, so the timestamps look like a phone's
TOML = """name = "my-recordings"
files = "**/*.csv"
sampling_rate = 50.0
channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
devices = {{phone = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]}}
label_column = "activity"
classes = [{classes}]
subject_pattern = "user(\\\\d+)"
timestamp_column = "timestamp"
timestamp_unit = "ms"
window = 128
overlap = 0.5
test_subjects = [2, 4, 9, 10, 12, 13, 18, 20, 24]
"""


def raw_files(source: Path) -> Callable[[str], IO[bytes]]:
    """An opener of HAPT's RawData files by name, from the archive or from an extracted copy."""
    archive = source if source.is_file() else source / "HAPT Data Set.zip"
    if archive.is_file():
        opened = zipfile.ZipFile(archive)
        names = {name.split("/")[-1]: name for name in opened.namelist() if "RawData" in name}
        return lambda name: opened.open(names[name])
    folders = [p.parent for p in source.rglob("labels.txt") if p.parent.name == "RawData"]
    if not folders:
        raise SystemExit(f"no HAPT Data Set.zip and no extracted RawData folder in {source}")
    return lambda name: open(folders[0] / name, "rb")


def write_recordings(source: Path, out: Path) -> int:
    """Write the folder; returns the number of recordings."""
    out.mkdir(parents=True, exist_ok=True)
    open_raw = raw_files(source)
    labels = pd.read_csv(
        open_raw("labels.txt"), sep=" ", header=None, names=["exp", "user", "activity", "start", "end"]
    )
    sessions = labels[["exp", "user"]].drop_duplicates().itertuples(index=False)
    for experiment, user in sessions:
        stem = f"exp{experiment:02d}_user{user:02d}.txt"
        acc = pd.read_csv(open_raw(f"acc_{stem}"), sep=" ", header=None).to_numpy()
        gyro = pd.read_csv(open_raw(f"gyro_{stem}"), sep=" ", header=None).to_numpy()
        activity = np.full(len(acc), "", dtype=object)
        mine = labels[(labels.exp == experiment) & (labels.user == user) & (labels.activity <= len(ACTIVITIES))]
        for row in mine.itertuples(index=False):  # labels.txt gives 0-based inclusive sample ranges
            activity[row.start : row.end + 1] = ACTIVITIES[row.activity - 1]
        frame = pd.DataFrame(np.hstack([acc, gyro]), columns=["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"])
        frame.insert(0, "timestamp", START_MS + np.arange(len(frame)) * 1000 // RATE)
        frame["activity"] = activity
        (out / f"user{user:02d}").mkdir(exist_ok=True)
        frame.to_csv(out / f"user{user:02d}" / f"exp{experiment:02d}.csv", index=False, float_format="%.8g")
    classes = ", ".join(f'"{name}"' for name in ACTIVITIES)
    (out / "harkit.toml").write_text(TOML.format(classes=classes))
    return len(list(out.glob("user*/exp*.csv")))


def main() -> None:
    """The command line: archive and output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding HAPT Data Set.zip (or extracted), or the archive")
    parser.add_argument("out", type=Path, help="folder to write (created)")
    args = parser.parse_args()
    print(f"{write_recordings(args.source, args.out)} recordings written to {args.out}")


if __name__ == "__main__":
    main()
