import numpy as np
import pytest

from harkit.datasets import UNLABELLED, Recording
from harkit.datasets.windows import (
    fill_gaps,
    labels_from_segments,
    plan_windows,
    segments,
    sliding_windows,
    window_starts,
    window_step,
)


def test_window_step_rounds_and_rejects_bad_overlap():
    assert window_step(128, 0.5) == 64
    assert window_step(125, 0.4) == 75
    assert window_step(10, 0.99) == 1
    with pytest.raises(ValueError):
        window_step(10, 1.0)


def test_labels_from_segments_inclusive_ends():
    labels = labels_from_segments(10, np.array([1, 6]), np.array([3, 12]), np.array([4, 2]))
    assert labels.tolist() == [-1, 4, 4, 4, -1, -1, 2, 2, 2, 2]


def test_segments_skip_unlabelled_runs():
    starts, ends, values = segments(np.array([-1, 0, 0, 1, 1, 1, -1, 0]))
    assert starts.tolist() == [1, 3, 7]
    assert ends.tolist() == [3, 6, 8]
    assert values.tolist() == [0, 1, 0]


def test_window_starts_only_whole_windows_from_segment_start():
    starts = window_starts(np.array([0, 100]), np.array([50, 105]), window=20, step=10)
    assert starts.tolist() == [0, 10, 20, 30]  # the 5-sample segment has none


def test_sliding_windows_never_straddle_segments():
    n = 300
    labels = np.repeat([0, 1, UNLABELLED, 2], [100, 90, 20, 90])
    signals = np.stack([np.arange(n), labels], axis=1).astype(np.float32)
    windows = sliding_windows(Recording(signals, labels, subject=7, session="a"), window=40, step=20)
    # segment lengths 100, 90, 90 -> 4, 3, 3 windows
    assert len(windows) == 10
    assert windows.x.shape == (10, 40, 2)
    # every sample of a window carries the window's label, so it lies in one segment
    assert (windows.x[:, :, 1] == windows.y[:, None]).all()
    assert windows.x[:, 0, 0].tolist() == [0, 20, 40, 60, 100, 120, 140, 210, 230, 250]
    assert (windows.subject == 7).all() and (windows.session == "a").all()


def test_window_plan_joins_recordings_in_order_and_takes_any_selection():
    first = Recording(np.arange(50, dtype=np.float64)[:, None], np.zeros(50, np.int64), subject=1, session="a")
    short = Recording(np.full((5, 1), 99.0), np.ones(5, np.int64), subject=2, session="b")
    last = Recording(100 + np.arange(30, dtype=np.float32)[:, None], np.full(30, 3), subject=3, session="c")
    plan = plan_windows([first, short, last], window=20, step=10)
    assert len(plan) == 6 and plan.subject.tolist() == [1, 1, 1, 1, 3, 3]
    windows = plan.take(slice(None))
    assert windows.x.dtype == np.float32 and windows.x.shape == (6, 20, 1)
    assert windows.x[:, 0, 0].tolist() == [0, 10, 20, 30, 100, 110]
    assert (windows.x[:, :, 0] == windows.x[:, :1, 0] + np.arange(20)).all()
    assert windows.y.tolist() == [0, 0, 0, 0, 3, 3]
    assert windows.session.tolist() == ["a", "a", "a", "a", "c", "c"]
    # any order, any mix of recordings: each window is the one the plan says
    picked = plan.take(np.array([5, 0, 4, 2]))
    assert picked.x[:, 0, 0].tolist() == [110, 0, 100, 20] and picked.subject.tolist() == [3, 1, 3, 1]
    assert plan.take(plan.subject == 3).x[:, 0, 0].tolist() == [100, 110]
    assert plan.take(np.array([], np.int64)).x.shape == (0, 20, 1)
    assert len(plan_windows([short], window=20, step=10)) == 0


def test_fill_gaps_interpolates_inside_one_recording():
    signals = np.array([[np.nan, 1.0], [1.0, np.nan], [np.nan, np.nan], [3.0, 4.0]], np.float32)
    filled = fill_gaps(signals)
    assert filled[:, 0].tolist() == [1.0, 1.0, 2.0, 3.0]
    assert filled[:, 1].tolist() == [1.0, 2.0, 3.0, 4.0]
    all_missing = fill_gaps(np.array([[np.nan, 1.0], [np.nan, 2.0]], np.float32))
    assert np.isnan(all_missing[:, 0]).all()
