"""Resampling with an anti-aliasing filter (contracts #3)."""

import numpy as np
import pandas as pd
import pytest

from harkit import HarkitError
from harkit.datasets.resample import rate_ratio, resample_signals


def tone(frequency, rate, seconds=4.0):
    t = np.arange(int(seconds * rate)) / rate
    return np.sin(2 * np.pi * frequency * t)[:, None].astype(np.float32)


def middle_rms(x):
    return float(np.sqrt(np.mean(x[len(x) // 8 : -len(x) // 8] ** 2)))


def test_a_tone_above_the_new_nyquist_is_removed_not_aliased():
    high = tone(15.0, 100.0)  # 100 Hz -> 20 Hz: the new Nyquist frequency is 10 Hz
    out = resample_signals(high, 100.0, 20.0)
    assert out.shape == (80, 1) and out.dtype == np.float32
    assert middle_rms(out) < 0.02  # a sine of amplitude 1 has RMS 0.707
    # plain interpolation keeps it, folded to 5 Hz at full strength
    t_new = np.arange(80) / 20.0
    aliased = np.interp(t_new, np.arange(400) / 100.0, high[:, 0])
    assert middle_rms(aliased) > 0.6


def test_content_below_the_nyquist_is_kept():
    low = np.hstack([tone(2.0, 100.0), 0.5 * tone(1.0, 100.0) + 3.0])
    out = resample_signals(low, 100.0, 20.0)
    expected = np.hstack([tone(2.0, 20.0), 0.5 * tone(1.0, 20.0) + 3.0])
    error = np.abs(out - expected)
    assert error[4:-4].max() < 0.02 and error.max() < 0.08
    assert error[:, 1].max() < 0.03  # the offset of 3 holds to the ends: padded along the trend, not with zeros
    up = resample_signals(tone(2.0, 50.0), 50.0, 51.2)  # 125 -> 128
    assert rate_ratio(50.0, 51.2) == (128, 125) and len(up) == 205
    assert np.abs(up[4:200] - tone(2.0, 51.2)[4:200]).max() < 0.02


def test_resample_checks_its_input():
    with pytest.raises(HarkitError, match="source_rate must be a positive number"):
        resample_signals(np.zeros((10, 1)), 0, 20)
    with pytest.raises(HarkitError, match="missing or infinite values"):
        resample_signals(np.full((10, 1), np.nan), 50, 20)
    same = np.arange(6, dtype=np.float64).reshape(3, 2)
    assert np.array_equal(resample_signals(same, 50, 50), same)


def test_folder_resampling_filters_and_never_windows_a_gap(tmp_path):
    from harkit.datasets import get_dataset

    folder = tmp_path / "hz"
    folder.mkdir()
    (folder / "harkit.toml").write_text(
        'sampling_rate = 20\nchannels = ["a"]\nlabel_column = "label"\nsplit = "time"\n'
        'timestamp_column = "t"\nresample = true\nwindow = 10\n'
    )
    t = np.arange(400) / 100.0
    t[200:] += 2.0  # a gap of 2 s
    a = np.sin(2 * np.pi * 15.0 * t)  # all above the new Nyquist frequency
    pd.DataFrame({"t": t, "a": a, "label": "walk"}).to_csv(folder / "r.csv", index=False)
    (recording,) = get_dataset(str(folder)).read(folder)
    assert len(recording.signals) == 120  # 5.99 s at 20 Hz
    seconds = np.arange(120) / 20
    in_gap = (seconds > 1.99) & (seconds < 4.0)  # between the samples at 1.99 s and 4 s
    assert (recording.labels[in_gap] == -1).all() and (recording.labels[~in_gap] == 0).all()
    assert middle_rms(recording.signals[~in_gap][5:-5]) < 0.05
