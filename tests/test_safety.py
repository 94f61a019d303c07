"""Runs are loaded without running code: a planted checkpoint is refused by every command that reads a run."""

import errno
import pathlib
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from harkit import HarkitError
from harkit.cli import app
from harkit.training.checkpoint import load_checkpoint, save_checkpoint

runner = CliRunner()
TRAIN = ["--dataset", "hapt", "--model", "sann", "--window", 32, "--epochs", 1, "--batch-size", 8, "--width", 0.125]
TRAIN += ["--no-progress"]


def invoke(*args, env=None):
    env = {"COLUMNS": "200", **{k: str(v) for k, v in (env or {}).items()}}
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, env=env)


class Planted:
    """An object whose unpickling creates a file: what a malicious checkpoint would do, harmlessly."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def plant(path: pathlib.Path, marker: pathlib.Path) -> None:
    """Overwrite a checkpoint with one that looks like harkit's but runs code when unpickled."""
    payload = torch.load(path, weights_only=True)
    payload["epoch"] = Planted(marker)
    torch.save(payload, path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real one-epoch run on the HAPT fixture, trained and evaluated by the CLI, shared by this module."""
    from tests.fixtures import raw

    base = tmp_path_factory.mktemp("safety")
    hapt = raw.write_hapt(base / "hapt")
    result = invoke(
        "train", *TRAIN, "--data-dir", hapt, "--out", base / "run", env={"HARKIT_CACHE_DIR": base / "cache"}
    )
    assert result.exit_code == 0, result.output
    return base / "run", hapt


@pytest.fixture
def planted_run(trained, tmp_path):
    run, hapt = trained
    copy = tmp_path / "planted"
    shutil.copytree(run, copy)
    marker = tmp_path / "pwned"
    plant(copy / "best.pt", marker)
    plant(copy / "last.pt", marker)
    return copy, hapt, marker


def recording(path: pathlib.Path, n: int = 200, rate: float = 50.0) -> pathlib.Path:
    channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(n, 6)), columns=channels)
    frame.insert(0, "timestamp", np.arange(n) / rate)
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("command", ["predict", "evaluate", "explain", "export", "init-from", "resume"])
def test_a_planted_checkpoint_runs_no_code(command, planted_run, tmp_path):
    run, hapt, marker = planted_run
    if command == "predict":
        result = invoke("predict", run, recording(tmp_path / "rec.csv"), "--out", tmp_path / "pred")
    elif command == "evaluate":
        result = invoke("evaluate", run)
    elif command == "explain":
        result = invoke("explain", run, "--out", tmp_path / "attention")
    elif command == "export":
        result = invoke("export", run)
    elif command == "init-from":
        result = invoke("train", *TRAIN, "--data-dir", hapt, "--init-from", run, "--out", tmp_path / "new")
    else:
        (run / "metrics.json").unlink()
        result = invoke("train", *TRAIN, "--data-dir", hapt, "--resume", "--out", run)
    assert not marker.exists(), f"`harkit {command}` ran code from a planted checkpoint"
    assert result.exit_code == 2, result.output
    assert "not a harkit checkpoint" in result.output and "Traceback" not in result.output


def test_a_planted_checkpoint_names_what_it_refused(planted_run):
    run, _, marker = planted_run
    with pytest.raises(HarkitError, match=r"best\.pt.*(Path\.touch|pathlib)"):
        load_checkpoint(run / "best.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checkpoint at all", pickle.dumps({"a": 1}), b"PK\x03\x04 truncated zip"],
    ids=["empty", "text", "plain-pickle", "broken-zip"],
)
def test_a_file_that_is_not_a_checkpoint_is_refused_clearly(content, tmp_path):
    path = tmp_path / "best.pt"
    path.write_bytes(content)
    with pytest.raises(HarkitError, match=r"best\.pt is not a harkit checkpoint"):
        load_checkpoint(path)


def test_a_torch_file_of_something_else_is_refused(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(HarkitError, match=r"not a harkit checkpoint.*lacks"):
        load_checkpoint(path)


def test_checkpoints_written_by_earlier_versions_still_load(trained, tmp_path):
    """The main branch before this change wrote plain torch.save payloads, some values as NumPy arrays."""
    run, _ = trained
    payload = torch.load(run / "best.pt", weights_only=True)
    payload["mean"] = np.asarray(payload["mean"])  # NumPy values, as a caller could have left them
    payload["best_score"] = np.float64(0.5)
    path = tmp_path / "old.pt"
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded["mean"] == pytest.approx(list(payload["mean"]))
    assert loaded["best_score"] == 0.5 and type(loaded["best_score"]) is float


def test_numpy_values_are_saved_as_plain_data(tmp_path, trained):
    run, _ = trained
    payload = torch.load(run / "best.pt", weights_only=True)
    payload["std"] = np.asarray(payload["std"], np.float32)
    save_checkpoint(tmp_path / "best.pt", payload)
    # Plain torch.load with weights_only and no extra allow-list: no NumPy object is left in the file.
    assert isinstance(torch.load(tmp_path / "best.pt", weights_only=True)["std"], list)


def test_a_full_disk_keeps_the_previous_checkpoint_whole(trained, tmp_path, monkeypatch):
    run, _ = trained
    path = tmp_path / "last.pt"
    shutil.copy(run / "last.pt", path)
    before = path.read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # part of the file reaches the disk, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(HarkitError, match=rf"disk is full.*{tmp_path}"):
        save_checkpoint(path, torch.load(run / "best.pt", weights_only=True))
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


def test_a_killed_runs_leftovers_are_cleaned_up_on_resume(trained, tmp_path):
    run, hapt = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "metrics.json").unlink()
    (copy / "last.tmp").write_bytes(b"half a checkpoint")
    (copy / "history.csv.tmp").write_text("epoch\n")
    result = invoke("train", *TRAIN, "--data-dir", hapt, "--resume", "--out", copy)
    assert result.exit_code == 0, result.output
    assert not list(copy.glob("*.tmp"))
    assert load_checkpoint(copy / "last.pt")["epoch"] == 1 and (copy / "metrics.json").is_file()


def test_a_run_another_process_trains_is_refused_and_left_as_it_is(trained, tmp_path):
    from harkit.runs import run_lock

    run, hapt = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "last.tmp").write_bytes(b"being written by the other process")
    before = sorted(p.name for p in copy.iterdir())
    with run_lock(copy):  # the other process
        for flag in ("--resume", "--overwrite"):
            result = invoke("train", *TRAIN, "--data-dir", hapt, flag, "--out", copy)
            assert result.exit_code == 2, result.output
            assert "being trained by another process (pid" in result.output and "another --out" in result.output
        assert sorted(p.name for p in copy.iterdir()) == before
    result = invoke("train", *TRAIN, "--data-dir", hapt, "--overwrite", "--out", copy)
    assert result.exit_code == 0, result.output
    assert not (copy / "last.tmp").exists()


def test_cross_validation_leaves_a_fold_another_process_trains_to_it(tiny_config, tmp_path):
    from dataclasses import replace

    from harkit.runs import run_lock
    from harkit.training.crossval import cross_validate

    lines = []
    with run_lock(tmp_path / "cv" / "fold-01"):
        summary = cross_validate(replace(tiny_config, epochs=1), tmp_path / "cv", "2", progress=False, say=lines.append)
    assert summary["covered_folds"] == [0] and not summary["complete"]
    assert lines[-1] == "[2 of 2] fold 1 of 2: being trained by another process, skipped"
    assert not (tmp_path / "cv" / "fold-01" / "config.json").exists()


def test_a_full_disk_while_writing_metrics_keeps_the_old_file(tmp_path, monkeypatch):
    from harkit.training.checkpoint import write_text_whole

    path = tmp_path / "metrics.json"
    path.write_text('{"accuracy": 0.9}')
    real_write = pathlib.Path.write_text

    def full_disk(self, text, *args, **kwargs):
        real_write(self, text[:3], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    with pytest.raises(HarkitError, match=rf"disk is full: could not write {path}"):
        write_text_whole(path, '{"accuracy": 0.5}')
    monkeypatch.undo()
    assert path.read_text() == '{"accuracy": 0.9}' and not list(tmp_path.glob("*.tmp"))
