"""The command line: a thin layer, checked for its output, files and exit codes."""

import json

import numpy as np
from typer.testing import CliRunner

from harkit.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})


def train_args(hapt_dir, run, model):
    """A one-epoch training command on the HAPT fixture with a narrow model."""
    return [
        "train",
        "--dataset",
        "hapt",
        "--model",
        model,
        "--data-dir",
        hapt_dir,
        "--window",
        32,
        "--epochs",
        1,
        "--batch-size",
        8,
        "--width",
        0.125,
        "--out",
        run,
        "--no-progress",
    ]


def test_datasets_lists_all_six():
    result = invoke("datasets")
    assert result.exit_code == 0
    for key in ("uci-har", "wisdm", "pamap2", "opportunity", "dsads", "hapt"):
        assert key in result.output


def test_prepare_prints_counts_and_exports_arrays(hapt_dir, tmp_path):
    out = tmp_path / "export"
    result = invoke("prepare", "hapt", "--data-dir", hapt_dir, "--window", 64, "--val-fraction", 0, "--export", out)
    assert result.exit_code == 0, result.output
    assert "WALKING" in result.output and "train (16, 64, 6)" in result.output
    x = np.load(out / "x_train.npy")
    assert x.dtype == np.float32 and x.shape == (16, 64, 6)
    assert np.load(out / "y_train.npy").dtype == np.int64
    assert np.load(out / "subject_test.npy").tolist() == [2] * 8
    meta = json.loads((out / "meta.json").read_text())
    for key in ("dataset", "channels", "classes", "window", "overlap", "sampling_rate", "split", "mean", "std"):
        assert key in meta


def test_errors_are_one_line_and_exit_2(hapt_dir):
    result = invoke("prepare", "hapd")
    assert result.exit_code == 2 and "valid names" in result.output
    result = invoke("prepare", "hapt", "--data-dir", hapt_dir, "--window", 5000)
    assert result.exit_code == 2 and "use a window of at most" in result.output
    result = invoke("prepare", "hapt", "--data-dir", hapt_dir / "missing", "--no-download")
    assert result.exit_code == 2 and "not found in" in result.output
    result = invoke("train", "--dataset", "hapt", "--model", "resnet")
    assert result.exit_code == 2 and "valid names: cnn" in result.output


def test_models_lists_parameter_counts():
    result = invoke("models", "--dataset", "uci-har")
    assert result.exit_code == 0 and "546,838" in result.output


def test_train_evaluate_and_report(hapt_dir, tmp_path, monkeypatch):
    run = tmp_path / "run"
    args = train_args(hapt_dir, run, "cnn")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "macro F1" in result.output and "LAYING" in result.output
    assert invoke(*args).exit_code == 2  # a finished run is not overwritten
    result = invoke("evaluate", run)
    assert result.exit_code == 0 and "accuracy" in result.output
    threads = []  # recorded, not applied: the test process keeps its own
    monkeypatch.setattr("torch.set_num_threads", threads.append)
    assert invoke("evaluate", run, "--threads", 1).exit_code == 0 and threads == [1]
    result = invoke("evaluate", run, "--threads", 0)
    assert result.exit_code == 2 and "--threads must be at least 1, got 0" in result.output
    assert invoke("report", tmp_path / "nothing").exit_code == 2


def test_a_folder_of_recordings_is_a_dataset(tmp_path):
    folder = tmp_path / "mine"
    result = invoke("datasets", "--template", folder)
    assert result.exit_code == 0 and (folder / "harkit.toml").is_file()
    result = invoke("datasets", "--describe", folder)
    assert result.exit_code == 0 and "3 recordings, 3 subjects" in result.output and "walking" in result.output
    result = invoke("prepare", folder)
    assert result.exit_code == 0 and "test (20, 128, 6)" in result.output
    assert invoke("datasets", "--template", folder).exit_code == 2  # never overwrites a description
    out = tmp_path / "bench"
    result = invoke(
        "benchmark",
        "--datasets",
        folder,
        "--models",
        "cnn",
        "--seeds",
        "0",
        "--epochs",
        1,
        "--out",
        out,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert report.count("| cnn | 1/1 |") == 1
    # the headline table is a Rich table, not raw Markdown; the runs are counted "x of N"
    assert "|---" not in result.output and "┃ dataset" in result.output and "│ cnn " in result.output
    assert "[1 of 1] dataset " in result.output and "model cnn (1 of 1), seed 0 (1 of 1): finished" in result.output


def test_export_predict_explain_and_tune_commands(hapt_dir, tmp_path):
    run = tmp_path / "run"
    args = train_args(hapt_dir, run, "sann")
    assert invoke(*args).exit_code == 0
    result = invoke("export", run, "--format", "onnx")
    assert result.exit_code == 0 and "largest difference from PyTorch" in result.output
    assert invoke("export", run, "--format", "tflite").exit_code == 2
    frame = np.random.default_rng(0).normal(size=(100, 6))
    columns = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    import pandas as pd

    pd.DataFrame(frame, columns=columns).to_csv(tmp_path / "rec.csv", index=False)
    result = invoke("predict", run, tmp_path / "rec.csv", "--out", tmp_path / "pred")
    assert result.exit_code == 0 and "(onnxruntime)" in result.output
    assert (tmp_path / "pred" / "timeline.csv").is_file()
    result = invoke("predict", run, tmp_path / "rec.csv", "--rate", 100)
    assert result.exit_code == 2 and "--resample" in result.output
    result = invoke("explain", run, "--out", tmp_path / "attention", "--per-class", 1)
    assert result.exit_code == 0 and "figures" in result.output
    result = invoke(
        "tune",
        "--dataset",
        "hapt",
        "--data-dir",
        hapt_dir,
        "--window",
        32,
        "--trials",
        1,
        "--epochs",
        1,
        "--val-fraction",
        0.5,
        "--out",
        tmp_path / "tune",
        "--no-final",
    )
    assert result.exit_code == 0 and '"trials": 1' in result.output


def test_train_with_subject_folds(hapt_dir, tmp_path):
    args = [*train_args(hapt_dir, tmp_path / "cv", "cnn"), "--folds", "loso", "--val-fraction", 0]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "loso cross-validation" in result.output and "mean ± std" in result.output
    assert sorted(p.name for p in (tmp_path / "cv").glob("fold-*")) == ["fold-00", "fold-01", "fold-02"]


def all_commands(command=None, path=()):
    """Every (sub)command of the CLI as its argument path, e.g. ("config", "set")."""
    import typer.main

    command = command or typer.main.get_command(app)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from all_commands(sub, (*path, name))


def test_help_is_readable_at_80_columns():
    paths = list(all_commands())
    assert ("train",) in paths and ("config", "set") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
        long_lines = [line for line in result.output.splitlines() if len(line) > 80]
        assert not long_lines, (path, long_lines)
        # descriptions start left of the middle of the screen, not squeezed into a narrow right-hand column
        indents = [len(line) - len(line.lstrip()) for line in result.output.splitlines() if line.startswith("    ")]
        assert max(indents, default=0) <= 40, (path, result.output)
    train_help = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "80"}).output
    assert "[model default]" in train_help and "[runs/<dataset>-<model>-<time>]" in train_help
    assert "[env HARKIT_DATA_DIR]" in " ".join(train_help.split())


def test_train_ends_with_run_folder_plots_and_next_commands(hapt_dir, tmp_path):
    run = tmp_path / "run"
    result = invoke(*train_args(hapt_dir, run, "cnn"))
    assert result.exit_code == 0, result.output
    assert f"run folder: {run}" in result.output
    assert str(run / "plots" / "confusion.png") in result.output
    for command in (f"harkit evaluate {run}", f"harkit export {run}", "harkit benchmark --datasets hapt"):
        assert command in result.output


def test_train_without_a_model_says_which_it_chose_from_the_data(hapt_dir, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", "--dataset", "hapt", "--data-dir", hapt_dir, "--window", 32, "--out", run, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "model auto: minirocket" in result.output  # shown without --verbose
    assert json.loads((run / "config.json").read_text())["model"] == "minirocket"


def test_train_recipe_option_and_adaptive_defaults(hapt_dir, tmp_path):
    def args(run, *extra):
        return [a for a in train_args(hapt_dir, run, "sann") if a not in ("--batch-size", 8, "--epochs", 1)] + [
            "--epochs",
            3,
            *extra,
        ]

    result = invoke(*args(tmp_path / "article", "--recipe", "article", "--batch-size", 8, "--lr", 0.005))
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "article" / "config.json").read_text())
    assert saved["recipe"] == "article" and (saved["batch_size"], saved["lr"], saved["epochs"]) == (8, 0.005, 3)
    assert [saved[k] for k in ("weight_decay", "schedule", "label_smoothing", "patience")] == [1e-3, "step", 0, 10]
    result = invoke(*args(tmp_path / "harkit"))
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "harkit" / "config.json").read_text())
    assert saved["recipe"] == "harkit" and saved["batch_size"] == 8 and saved["schedule"] == "cosine"
    assert {"batch_size", "lr"} <= set(saved["resolved"]["recipe"]["auto"]) and saved["epochs"] == 3
    result = runner.invoke(app, ["train", "--dataset", "hapt", "--recipe", "paper", "--data-dir", str(hapt_dir)])
    assert result.exit_code != 0 and "unknown recipe 'paper'" in result.output


def test_mistyped_names_get_the_closest_valid_one(hapt_dir):
    result = invoke("prepare", "hpat")
    assert result.exit_code == 2 and "did you mean 'hapt'?" in result.output
    result = invoke("train", "--dataset", "hapt", "--model", "san", "--data-dir", hapt_dir)
    assert result.exit_code == 2 and "did you mean 'sann'?" in result.output
    result = invoke("prepare", "hapt", "--data-dir", hapt_dir, "--option", "transition=true")
    assert result.exit_code == 2 and "did you mean 'transitions'?" in result.output
    result = invoke("train", "--dataset", "hapt", "--epoch", 1)
    assert result.exit_code == 2 and "--epochs" in result.output  # click's own suggestion for options
