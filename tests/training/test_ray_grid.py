"""A benchmark grid on a local 2-CPU Ray instance: one task per run, finished runs skipped, failures recorded."""

import json
import os
from dataclasses import replace

import pytest

from harkit import HarkitError
from harkit.evaluation.report import run_dir

ray = pytest.importorskip("ray")


@pytest.fixture
def local_ray(isolated_dirs):
    """A 2-CPU Ray instance whose workers see this test's cache, data and config folders."""
    names = ("HARKIT_CACHE_DIR", "HARKIT_DATA_DIR", "XDG_CONFIG_HOME")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024**2,
        log_to_driver=False,
        runtime_env={"env_vars": {name: os.environ[name] for name in names}},
    )
    yield
    ray.shutdown()


def test_grid_on_ray_trains_skips_and_records_failures(tiny_config, tmp_path, local_ray):
    from harkit.training.grid import run_grid

    # In the worker processes the pinned probe of conftest does not hold: fp32 and eager, explicitly.
    base = replace(tiny_config, epochs=1, precision="fp32", compile=False, threads=1)
    root = tmp_path / "bench"
    sann, cnn = run_dir(root, "hapt", "sann", 0), run_dir(root, "hapt", "cnn", 0)
    cnn.mkdir(parents=True)
    (cnn / "last.pt").write_bytes(b"not a checkpoint")  # its resume fails inside the Ray task
    lines = []
    run_grid(root, ["hapt"], ["sann", "cnn"], [0], base, progress=False, say=lines.append, ray=True)
    assert json.loads((sann / "metrics.json").read_text())["accuracy"] >= 0
    assert (cnn / "error.txt").is_file()
    assert not (cnn / "metrics.json").exists()
    assert any("sann" in line and "finished" in line for line in lines)
    assert any("cnn" in line and "failed" in line for line in lines)
    # Again: the finished run is skipped without a task; the failed one is tried again and fails again
    lines.clear()
    trained = (sann / "metrics.json").stat().st_mtime_ns
    run_grid(root, ["hapt"], ["sann", "cnn"], [0], base, progress=False, say=lines.append, ray=True)
    assert any("sann" in line and "skipped" in line for line in lines)
    assert any("cnn" in line and "failed" in line for line in lines)
    assert (sann / "metrics.json").stat().st_mtime_ns == trained

    # Each run asks Ray for the CPUs of its threads: two of the instance's two are granted
    from harkit.training.ray_grid import run_on_ray

    seen = []
    statuses = run_on_ray(
        [(replace(base, threads=2), tmp_path / "two-threads")], lambda c, p, s: seen.append((c.threads, s))
    )
    assert seen == [(2, "finished")]
    assert statuses == {tmp_path / "two-threads": "finished"}


def test_folds_on_ray_train_each_fold_as_a_task_and_match_the_local_ones(tiny_config, tmp_path, local_ray):
    from harkit.training.crossval import cross_validate

    base = replace(tiny_config, epochs=1, precision="fp32", compile=False, threads=1, val_fraction=0.0)
    local = cross_validate(base, tmp_path / "local", "2", progress=False)
    broken = tmp_path / "ray" / "fold-01"
    broken.mkdir(parents=True)
    (broken / "last.pt").write_bytes(b"not a checkpoint")  # this fold's resume fails inside its task
    lines = []
    summary = cross_validate(base, tmp_path / "ray", "2", say=lines.append, ray=True)
    assert [row["fold"] for row in summary["folds"]] == [0] and not summary["complete"]
    assert (broken / "error.txt").is_file()
    assert any("fold 0" in line and "finished" in line for line in lines)
    assert any("fold 1" in line and "failed" in line for line in lines)
    (broken / "last.pt").unlink()
    summary = cross_validate(base, tmp_path / "ray", "2", say=lines.append, ray=True)
    assert summary["complete"]
    # the same seed and folds give the same scores as training the folds one after another here
    for here, there in zip(local["folds"], summary["folds"], strict=True):
        assert here["accuracy"] == pytest.approx(there["accuracy"]) and here["fold"] == there["fold"]


def test_without_ray_installed_the_message_says_how(monkeypatch):
    import builtins

    from harkit.training import ray_grid

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(HarkitError, match=r"harkit\[ray\]"):
        ray_grid.connect()


def test_a_run_another_process_trains_is_left_alone_on_ray(tiny_config, tmp_path, local_ray):
    from harkit.runs import run_lock
    from harkit.training.grid import run_grid

    base = replace(tiny_config, epochs=1, precision="fp32", compile=False, threads=1)
    root = tmp_path / "bench"
    sann = run_dir(root, "hapt", "sann", 0)
    sann.mkdir(parents=True)
    (sann / "history.csv").write_text("the other process's history\n")
    lines = []
    with run_lock(sann):  # this process trains it; the Ray worker must not
        run_grid(root, ["hapt"], ["sann"], [0], base, progress=False, say=lines.append, ray=True)
    assert [line.split(": ", 1)[1] for line in lines] == ["being trained by another process, skipped"]
    assert sorted(path.name for path in sann.iterdir()) == [".lock", "history.csv"]
    assert (sann / "history.csv").read_text() == "the other process's history\n"
