"""Mistakes that used to give a quiet wrong answer: each is now one clear error, before any data is read."""

import json
import logging
import re
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from harkit import HarkitError
from harkit.cli import app, parse_options
from harkit.datasets import PrepareConfig, SubjectSplit, get_dataset, locate, prepare
from harkit.training.engine import TrainConfig

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.fixture
def no_reading(monkeypatch):
    """Fail the test if any reader is asked to read: range checks must come first."""
    from harkit.datasets import hapt

    def read(self, root):
        raise AssertionError("data was read before the options were checked")

    monkeypatch.setattr(hapt.HAPT, "read", read)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window", 0, r"window must be at least 2 .*got 0"),
        ("window", -5, "window must be at least 2"),
        ("window", 2.5, "window must be a whole number"),
        ("overlap", 1.0, r"overlap must be in \[0, 1\)"),
        ("overlap", -0.1, r"overlap must be in \[0, 1\)"),
        ("val_fraction", 1.0, r"val_fraction must be in \[0, 1\)"),
        ("val_fraction", -0.2, r"val_fraction must be in \[0, 1\)"),
        ("val_fraction", float("nan"), r"val_fraction must be in \[0, 1\)"),
        ("seed", -1, "seed must be at least 0"),
        ("channels", (), "channels must name at least one channel"),
        ("channels", ("acc_x", "acc_x"), "channels lists acc_x twice"),
        ("train_subjects", (), "train_subjects must name at least one subject"),
    ],
)
def test_prepare_config_ranges(field, value, message):
    with pytest.raises(HarkitError, match=message):
        PrepareConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be at least 1"),
        ("epochs", -3, "epochs must be at least 1"),
        ("batch_size", 0, "batch_size must be at least 1"),
        ("lr", 0.0, "lr must be a number above 0"),
        ("lr", -1e-3, "lr must be a number above 0"),
        ("lr", float("inf"), "lr must be a number above 0"),
        ("weight_decay", -1.0, "weight_decay must be at least 0"),
        ("patience", -1, "patience must be at least 0"),
        ("threads", 0, "threads must be at least 1"),
        ("threads", -2, "threads must be at least 1"),
        ("label_smoothing", 1.0, r"label_smoothing must be in \[0, 1\)"),
        ("l1", -1.0, "l1 must be at least 0"),
        ("gamma", 0.0, "gamma must be a number above 0"),
        ("step_size", 0, "step_size must be at least 1"),
        ("precision", "fp8", "unknown precision 'fp8'"),
        ("window", 0, "window must be at least 2"),
        ("overlap", 1.5, r"overlap must be in \[0, 1\)"),
        ("val_fraction", 1.0, r"val_fraction must be in \[0, 1\)"),
        ("epochs", True, "epochs must be a whole number"),
    ],
)
def test_train_config_ranges(field, value, message):
    with pytest.raises(HarkitError, match=message):
        TrainConfig(dataset="hapt", model="sann", **{field: value})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", 0], "--window must be at least 2"),
        (["--overlap", 1.0], r"--overlap must be in \[0, 1\)"),
        (["--val-fraction", 1.0], r"--val-fraction must be in \[0, 1\)"),
        (["--batch-size", 0], "--batch-size must be at least 1"),
        (["--epochs", -1], "--epochs must be at least 1"),
        (["--patience", -1], "--patience must be at least 0"),
        (["--threads", -1], "--threads must be at least 1"),
        (["--lr", 0], "--lr must be a number above 0"),
        (["--split", "s:a"], r"cannot read test subjects 'a' in --split s:a"),
        (["--split", "s:"], "needs at least one test subject"),
        (["--split", "1"], "k-fold needs at least 2 folds"),
        (["--fold", -1], "--fold must be at least 0"),
        (["--train-subjects", "1,x"], r"--train-subjects: 'x' is not a subject number"),
        (
            ["--option", "transitions=no"],
            r"transitions=no is not understood; use transitions=true or transitions=false",
        ),
        (
            ["--option", "transition=true"],
            r"no option 'transition'; did you mean 'transitions'\? its options are: transitions",
        ),
    ],
)
def test_train_command_refuses_bad_values_before_reading(args, message, hapt_dir, tmp_path, no_reading):
    result = invoke(
        "train", "--dataset", "hapt", "--data-dir", hapt_dir, "--out", tmp_path / "run", "--no-progress", *args
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("prepare", ["hapt", "--window", 0], "--window must be at least 2"),
        ("prepare", ["hapt", "--overlap", 2], r"--overlap must be in \[0, 1\)"),
        ("prepare", ["hapt", "--option", "transitions=1"], "transitions=1 is not understood"),
        ("benchmark", ["--datasets", "hapt", "--epochs", 0], "--epochs must be at least 1"),
        ("benchmark", ["--datasets", "hapt", "--seeds", "0,a"], r"--seeds: 'a' is not a whole number"),
        ("benchmark", ["--datasets", "hapt", "--workers", 0], "--workers must be at least 1"),
        ("tune", ["--dataset", "hapt", "--trials", 0], "--trials must be at least 1"),
        ("tune", ["--dataset", "hapt", "--window", 0], "--window must be at least 2"),
    ],
)
def test_other_commands_share_the_checks(command, args, message, hapt_dir, tmp_path, no_reading):
    out = [] if command == "prepare" else ["--out", tmp_path / "out"]
    result = invoke(command, *args, "--data-dir", hapt_dir, *out)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert re.search(message, result.output), result.output


def test_parse_options_understands_only_true_and_false_for_switches():
    assert parse_options(["transitions=true", "task=locomotion"]) == {"transitions": True, "task": "locomotion"}
    assert parse_options(["null-class=False"]) == {"null_class": False}
    for bad in ("transitions=no", "transitions=1", "transitions=yes", "transitions="):
        with pytest.raises(HarkitError, match="not understood"):
            get_dataset("hapt", **parse_options([bad]))
    with pytest.raises(HarkitError, match="is not KEY=VALUE"):
        parse_options(["transitions"])


def test_reader_options_are_checked_by_name_and_value():
    with pytest.raises(HarkitError, match=r"opportunity has no option 'nul_class'; .*options are: task, null_class"):
        get_dataset("opportunity", nul_class=True)
    with pytest.raises(HarkitError, match="wisdm takes no options"):
        get_dataset("wisdm", transitions=True)
    with pytest.raises(HarkitError, match="unknown OPPORTUNITY task 'gesture'; use gestures or locomotion"):
        get_dataset("opportunity", task="gesture")
    with pytest.raises(HarkitError, match="optional=on is not understood"):
        get_dataset("pamap2", optional="on")
    assert get_dataset("hapt", transitions=True).transitions is True


def test_split_text_is_read_strictly():
    assert SubjectSplit.parse("s:2,4").test_subjects == (2, 4)
    for text in ("s:a", "s:1,,x", "s:1.5"):
        with pytest.raises(HarkitError, match="cannot read test subjects"):
            SubjectSplit.parse(text)
    with pytest.raises(HarkitError, match="fold must be at least 0"):
        SubjectSplit.parse("loso", fold=-1)
    with pytest.raises(HarkitError, match="cannot read split"):
        SubjectSplit.parse("lso")


def test_train_subjects_say_where_each_subject_went(hapt_dir, caplog):
    caplog.set_level(logging.INFO, logger="harkit")
    prepared = prepare(
        "hapt",
        PrepareConfig(window=64, val_fraction=0.5, train_subjects=(1, 3)),
        data_dir=hapt_dir,
    )
    val = prepared.meta["subjects"]["val"]
    assert len(val) == 1 and len(prepared.meta["subjects"]["train"]) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"validation takes subject {val[0]}" in m and "--val-fraction 0" in m for m in warnings), warnings
    infos = [r.getMessage() for r in caplog.records]
    assert any("train subjects" in m and "test subjects [2]" in m for m in infos), infos


def test_train_subjects_not_in_the_training_part_are_refused(hapt_dir):
    with pytest.raises(HarkitError, match=r"training subjects \[99\] are not in the data"):
        prepare("hapt", PrepareConfig(window=64, train_subjects=(1, 99)), data_dir=hapt_dir)
    with pytest.raises(HarkitError, match=r"training subjects \[2\] are test subjects"):
        prepare("hapt", PrepareConfig(window=64, train_subjects=(1, 2)), data_dir=hapt_dir)


def test_a_mistyped_data_dir_is_never_created(tmp_path, monkeypatch):
    typo = tmp_path / "dta"
    with pytest.raises(HarkitError, match=r"dta does not exist"):
        locate(get_dataset("hapt"), typo, tmp_path / "cache")
    assert not typo.exists()
    result = invoke("prepare", "hapt", "--data-dir", typo)
    assert result.exit_code == 2 and "does not exist" in result.output and "--data-dir" in result.output
    assert not typo.exists()
    # the environment variable is the user's choice too: never created either
    monkeypatch.setenv("HARKIT_DATA_DIR", str(typo))
    with pytest.raises(HarkitError, match=r"dta does not exist \(set by HARKIT_DATA_DIR\)"):
        locate(get_dataset("hapt"), None, tmp_path / "cache")
    assert not typo.exists()


def test_resume_with_other_options_is_refused(tiny_config, tmp_path):
    from harkit.training.engine import train

    run = tmp_path / "run"
    config = replace(tiny_config, epochs=1)
    train(config, run, progress=False, evaluate=False)
    (run / "metrics.json").unlink(missing_ok=True)
    refused = r"batch_size: the run has 8, now 4; lr: the run has [0-9.e-]+, now 0.1\. Give the run's options"
    with pytest.raises(HarkitError, match=refused):
        train(replace(config, lr=0.1, batch_size=4, epochs=2), run, resume=True, progress=False, evaluate=False)
    # more epochs is the one change a resume accepts
    train(replace(config, epochs=2), run, resume=True, progress=False, evaluate=False)
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_a_resume_takes_the_threads_and_data_dir_given_now(tiny_config, tmp_path):
    """They may differ from the run's (data moved, another machine) and change nothing in the result."""
    from harkit.training.resume import resume_config

    run = tmp_path / "run"
    run.mkdir()
    started = replace(tiny_config, threads=1)
    (run / "config.json").write_text(json.dumps(started.to_json()))
    moved = tmp_path / "moved"
    resumed = resume_config(run, replace(started, threads=2, data_dir=str(moved)))
    assert (resumed.threads, resumed.data_dir) == (2, str(moved))
    assert json.loads((run / "config.json").read_text())["data_dir"] == str(moved)
    # left unset now, the run's own stand
    resumed = resume_config(run, replace(started, threads=None, data_dir=None))
    assert (resumed.threads, resumed.data_dir) == (2, str(moved))


def test_a_run_that_diverges_fails_loudly_and_keeps_its_files(tiny_config, tmp_path):
    from harkit.training.engine import train

    run = tmp_path / "run"
    with pytest.raises(
        HarkitError, match=r"the run diverged: after \d+ steps its training loss ended at .*Lower --lr \(now 1000\)"
    ):
        train(replace(tiny_config, lr=1000.0), run, progress=False)
    for name in ("config.json", "history.csv", "best.pt", "last.pt"):
        assert (run / name).is_file(), name
    assert "diverged" in json.loads((run / "failed.json").read_text())["error"]
    assert not (run / "metrics.json").exists()


def test_a_short_run_that_learned_is_not_called_diverged(tiny_config, tmp_path):
    from harkit.training.engine import train

    # validation here is another subject doing other activities: macro F1 at chance, but the loss fell
    train(replace(tiny_config, epochs=1), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_the_divergence_rule():
    from harkit.training.divergence import constant_answer_macro_f1, diverged

    val = np.array([0, 0, 0, 1])  # answering 0 always: F1 0.857 for class 0, 0 for class 1
    assert constant_answer_macro_f1(val) == pytest.approx(2 * 0.75 / 1.75 / 2)
    train = np.array([0, 1])
    blown = [{"train_loss": 2e6, "train_accuracy": 0.3, "val_macro_f1": 0.2}]
    assert "diverged" in diverged(blown, 6, train, val, steps=4)  # confidently wrong: however short the run
    learning = [{"train_loss": 1.2, "train_accuracy": 0.5, "val_macro_f1": 0.0}]
    assert diverged(learning, 6, train, val, steps=1000) is None  # below ln 6: it learned something
    stuck = [{"train_loss": 1.9, "train_accuracy": 0.5, "val_macro_f1": 0.3}]
    assert diverged(stuck, 6, train, val, steps=10) is None  # a few steps near ln 6: too early to judge
    assert "after 500 steps" in diverged(stuck, 6, train, val, steps=500)  # hundreds of steps: learned nothing
    above_chance = [{"train_loss": 2e6, "train_accuracy": 0.3, "val_macro_f1": 0.9}]
    assert diverged(above_chance, 6, train, val, steps=500) is None
    no_val = [{"train_loss": 5.0, "train_accuracy": 0.5, "val_macro_f1": ""}]
    assert "training accuracy" in diverged(no_val, 6, np.array([0, 0, 1, 1]), np.array([], np.int64), steps=500)


def test_a_non_finite_loss_marks_the_run_failed(tiny_config, tmp_path):
    from harkit.datasets import prepare as prepare_arrays
    from harkit.training.divergence import TrainingDiverged
    from harkit.training.engine import train

    prepared = prepare_arrays("hapt", tiny_config.prepare_config(), data_dir=tiny_config.data_dir)
    prepared.train.x = np.array(prepared.train.x)
    prepared.train.x[0, 0, 0] = np.inf
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="the training loss became nan at epoch 1"):
        train(tiny_config, run, progress=False, prepared=prepared)
    assert "became nan" in json.loads((run / "failed.json").read_text())["error"]
