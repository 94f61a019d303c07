import numpy as np

from harkit.datasets.pipeline import _channel_statistics


def test_channel_statistics_match_float64_over_blocks_and_leave_nan_out():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(37, 11, 3)) * [1.0, 50.0, 0.01] + [9.81, -1000.0, 0.5]).astype(np.float32)
    x[5:9, :, 2] = np.nan  # a channel missing for some windows
    x[:, :, 0][x[:, :, 0] > 10.5] = np.nan  # scattered gaps
    reference = x.reshape(-1, 3).astype(np.float64)
    for rows in (7, 100, 1 << 14):  # blocks that split windows, and one block
        mean, std = _channel_statistics(x, rows=rows)
        np.testing.assert_allclose(mean, np.nanmean(reference, axis=0), rtol=1e-6)
        np.testing.assert_allclose(std, np.nanstd(reference, axis=0), rtol=1e-5)

    missing = np.full((4, 5, 1), np.nan, np.float32)
    mean, std = _channel_statistics(missing)
    assert mean.tolist() == [0.0] and std.tolist() == [0.0]  # normalisation then uses std 1 and mean 0
