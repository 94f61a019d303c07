"""Write HAPT's raw recordings as a folder of "own" recordings: one CSV per session, as a phone app would.

Each of the 61 sessions becomes `userNN/expMM.csv` with a millisecond timestamp, the six raw channels and an
`activity` column (empty where HAPT labels nothing or a postural transition), plus a `harkit.toml` that
describes them, with HAPT's usual test subjects. The README's own-recordings walkthrough starts here.

    python examples/hapt_as_recordings.py "../shared/datasets/HAPT Data Set.zip" my-recordings
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

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


def write_recordings(archive_path: Path, out: Path) -> int:
    """Write the folder; returns the number of recordings."""
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive_path) as archive:
        names = {name.split("/")[-1]: name for name in archive.namelist() if "RawData" in name}
        labels = pd.read_csv(
            archive.open(names["labels.txt"]), sep=" ", header=None, names=["exp", "user", "activity", "start", "end"]
        )
        sessions = labels[["exp", "user"]].drop_duplicates().itertuples(index=False)
        for experiment, user in sessions:
            stem = f"exp{experiment:02d}_user{user:02d}.txt"
            acc = pd.read_csv(archive.open(names[f"acc_{stem}"]), sep=" ", header=None).to_numpy()
            gyro = pd.read_csv(archive.open(names[f"gyro_{stem}"]), sep=" ", header=None).to_numpy()
            activity = np.full(len(acc), "", dtype=object)
            mine = labels[(labels.exp == experiment) & (labels.user == user) & (labels.activity <= len(ACTIVITIES))]
            for row in mine.itertuples(index=False):  # labels.txt gives inclusive sample ranges, from 1
                activity[row.start - 1 : row.end] = ACTIVITIES[row.activity - 1]
            frame = pd.DataFrame(
                np.hstack([acc, gyro]), columns=["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
            )
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
    parser.add_argument("archive", type=Path, help="HAPT Data Set.zip")
    parser.add_argument("out", type=Path, help="folder to write (created)")
    args = parser.parse_args()
    print(f"{write_recordings(args.archive, args.out)} recordings written to {args.out}")


if __name__ == "__main__":
    main()
