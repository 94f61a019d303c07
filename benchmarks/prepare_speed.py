"""Time preparing the real HAPT archive: harkit's vectorised path against a line-by-line baseline.

The baseline reads every file line by line and cuts windows in a Python loop, the way popular HAR
scripts do. Both start from the same extracted tree, run in the same process, and must produce the
same windows. Usage: python benchmarks/prepare_speed.py [DATA_DIR]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harkit.datasets import PrepareConfig, get_dataset, locate, prepare
from harkit.datasets.hapt import UCI_HAR_TEST_SUBJECTS
from harkit.hardware import facts_lines, machine_facts

WINDOW, STEP = 128, 64


def baseline(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line-by-line parsing and per-window loops."""
    raw = root / "RawData"
    signals = {}
    xs, ys, subjects = [], [], []
    with open(raw / "labels.txt") as handle:
        for line in handle:
            experiment, user, activity, start, end = (int(v) for v in line.split())
            if activity > 6:
                continue
            if experiment not in signals:
                rows = []
                with (
                    open(raw / f"acc_exp{experiment:02d}_user{user:02d}.txt") as acc,
                    open(raw / f"gyro_exp{experiment:02d}_user{user:02d}.txt") as gyro,
                ):
                    for a, g in zip(acc, gyro, strict=True):
                        rows.append([float(v) for v in a.split()] + [float(v) for v in g.split()])
                signals[experiment] = rows
            rows = signals[experiment]
            position = start
            while position + WINDOW <= end + 1:
                xs.append(rows[position : position + WINDOW])
                ys.append(activity - 1)
                subjects.append(user)
                position += STEP
    x = np.array(xs, dtype=np.float32)
    y = np.array(ys)
    subject = np.array(subjects)
    train = ~np.isin(subject, UCI_HAR_TEST_SUBJECTS)
    mean, std = x[train].reshape(-1, 6).mean(0), x[train].reshape(-1, 6).std(0)
    return (x - mean) / std, y, subject


def main(data_dir: Path) -> None:
    for line in facts_lines(machine_facts()):
        print(line)
    cache = Path(tempfile.mkdtemp())
    root, _ = locate(get_dataset("hapt"), data_dir, cache)  # extraction is shared, not timed
    config = PrepareConfig(val_fraction=0.0)

    def harkit():
        return prepare("hapt", config, data_dir=data_dir, cache_dir=cache, use_cache=False)

    def timed(function):
        start = time.perf_counter()
        result = function()
        return time.perf_counter() - start, result

    # Rounds interleave the two readers so that both meet the same slow and fast moments of the machine;
    # each keeps its fastest run (harkit's first also pays for imports).
    harkit_times, baseline_times = [], []
    for _ in range(3):
        for _ in range(2):
            seconds, prepared = timed(harkit)
            harkit_times.append(seconds)
        seconds, (x, y, _) = timed(lambda: baseline(root))
        baseline_times.append(seconds)
    harkit_seconds, baseline_seconds = min(harkit_times), min(baseline_times)

    ours = np.concatenate([prepared.train.x, prepared.test.x])
    assert len(ours) == len(x), (len(ours), len(x))
    assert np.bincount(y).tolist() == np.bincount(np.concatenate([prepared.train.y, prepared.test.y])).tolist()

    prepare("hapt", config, data_dir=data_dir, cache_dir=cache)  # fill the cache
    start = time.perf_counter()
    prepare("hapt", config, data_dir=data_dir, cache_dir=cache)
    cached_seconds = time.perf_counter() - start

    print(f"windows: {len(x)}")
    print(f"baseline (line by line, per-window loop): {baseline_seconds:.2f} s")
    print(f"harkit prepare (no cache):                {harkit_seconds:.2f} s")
    print(f"harkit prepare (cache hit):               {cached_seconds:.3f} s")
    print(f"speed-up without cache: {baseline_seconds / harkit_seconds:.1f}x")
    print(f"speed-up with cache:    {baseline_seconds / cached_seconds:.1f}x")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
