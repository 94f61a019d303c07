"""split = "time": the end of every recording is tested, with a gap of one window before it."""

import numpy as np
import pandas as pd
import pytest

from harkit import HarkitError
from harkit.datasets import PrepareConfig, SubjectSplit, prepare
from harkit.datasets.base import Recording
from harkit.datasets.time_split import DROPPED, TEST, TRAIN, VAL, time_parts
from harkit.datasets.windows import plan_windows


def plan(lengths, window=10, step=5):
    recordings = [
        Recording(np.zeros((n, 1), np.float32), np.zeros(n, np.int64), 1, f"r{i}") for i, n in enumerate(lengths)
    ]
    return plan_windows(recordings, window, step)


def test_parts_never_overlap_and_keep_a_window_apart():
    windows = plan([200, 120])
    parts = time_parts(windows, test_fraction=0.25, val_fraction=0.2)
    for recording in (0, 1):
        mine = windows.recording == recording
        first = windows.start[mine]
        last = first + windows.window
        part = parts[mine]
        # every test window is later than every validation window, which is later than every training window,
        # and at least one window apart
        assert last[part == TRAIN].max() + windows.window <= first[part == VAL].min()
        assert last[part == VAL].max() + windows.window <= first[part == TEST].min()
    # recording 0: 200 samples -> test from 150, gap to 140, validation from 140 - 28 = 112, gap to 102
    zero = windows.recording == 0
    assert windows.start[zero & (parts == TEST)].tolist() == list(range(150, 191, 5))
    assert windows.start[zero & (parts == VAL)].tolist() == [115, 120, 125, 130]
    assert windows.start[zero & (parts == TRAIN)].max() == 90
    assert (parts[zero] == DROPPED).sum() == len(windows.start[zero]) - 9 - 4 - 19
    # no validation: training runs up to the gap
    parts = time_parts(windows, test_fraction=0.25, val_fraction=0.0)
    assert windows.start[zero & (parts == TRAIN)].max() == 130 and not (parts == VAL).any()


def write_one_subject(folder, extra=""):
    folder.mkdir()
    (folder / "harkit.toml").write_text(
        'sampling_rate = 10\nchannels = ["a"]\nlabel_column = "label"\nwindow = 10\noverlap = 0.5\n'
        'split = "time"\n' + extra
    )
    for day in (1, 2):
        n = 200
        labels = np.where((np.arange(n) // 25) % 2 == 0, "walk", "sit")
        pd.DataFrame({"a": np.arange(n) + 1000 * day, "label": labels}).to_csv(folder / f"day{day}.csv", index=False)
    return folder


def test_one_subject_split_in_time(tmp_path):
    folder = write_one_subject(tmp_path / "me", "test_fraction = 0.3\n")
    prepared = prepare(str(folder), PrepareConfig(val_fraction=0.2, normalize=False), use_cache=False)
    assert prepared.meta["subjects"] == {"train": [1], "val": [1], "test": [1]}
    for name in ("train", "val", "test"):
        assert len(prepared.part(name)) > 0
    # the sample numbers written into channel `a` tell where each window lies: test starts at 140, after a gap
    for day in (1, 2):

        def starts(part, day=day):
            x = prepared.part(part).x[:, 0, 0]
            return x[(x >= 1000 * day) & (x < 1000 * day + 1000)] - 1000 * day

        assert starts("test").min() >= 140
        assert starts("val").max() + 10 <= 130 and starts("val").min() >= starts("train").max() + 20
    # a split by subject still refuses a single subject
    with pytest.raises(HarkitError, match="one subject only"):
        prepare(str(folder), PrepareConfig(split=SubjectSplit("loso")), use_cache=False)


def test_time_split_settings_are_checked(tmp_path):
    from harkit.datasets import get_dataset

    folder = write_one_subject(tmp_path / "bad", "test_fraction = 1.5\n")
    with pytest.raises(HarkitError, match=r"test_fraction must be in \(0, 1\), got 1\.5"):
        get_dataset(str(folder))
    (folder / "harkit.toml").write_text(
        (folder / "harkit.toml").read_text().replace("1.5", "0.3") + "test_subjects = [1]\n"
    )
    with pytest.raises(HarkitError, match='test_subjects is for a split by subject; with split = "time" remove it'):
        get_dataset(str(folder))
    short = write_one_subject(tmp_path / "short", "test_fraction = 0.05\n")  # the last 10 samples: no window of 20
    (short / "harkit.toml").write_text((short / "harkit.toml").read_text().replace("window = 10", "window = 20"))
    with pytest.raises(HarkitError, match="leaves no test window"):
        prepare(str(short), use_cache=False)
