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


def test_train_evaluate_and_report(hapt_dir, tmp_path):
    run = tmp_path / "run"
    args = train_args(hapt_dir, run, "cnn")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "macro F1" in result.output and "LAYING" in result.output
    assert invoke(*args).exit_code == 2  # a finished run is not overwritten
    result = invoke("evaluate", run)
    assert result.exit_code == 0 and "accuracy" in result.output
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
