"""A run directory as one object, and runs that travel: any working directory, data that moved, folds."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from harkit import HarkitError
from harkit.cli import app
from harkit.datasets.folder import write_template
from harkit.evaluation.evaluate import evaluate_run
from harkit.export import deployment_meta
from harkit.runs import Run, mark_failed
from harkit.training.engine import TrainConfig, train

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.fixture
def run(tiny_config, tmp_path):
    return train(replace(tiny_config, epochs=1), tmp_path / "run", progress=False)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(HarkitError, match="does not exist"):
        Run(tmp_path / "nowhere")
    with pytest.raises(HarkitError, match=r"not a harkit run directory: it has no config\.json"):
        Run(tmp_path)
    (tmp_path / "fold-00").mkdir()
    (tmp_path / "fold-00" / "config.json").write_text("{}")
    with pytest.raises(HarkitError, match="1 cross-validation folds"):
        Run(tmp_path)


def test_a_run_opens_config_metrics_checkpoint_model_and_info(run):
    opened = Run(run)
    assert opened.config["model"] == "sann" and opened.status == "finished"
    assert opened.metrics["samples"] > 0
    checkpoint = opened.checkpoint("last")
    assert checkpoint["epoch"] == 1 and "optimizer" in checkpoint
    model = opened.model()
    assert not model.training
    info = opened.info
    assert set(info) == {
        "dataset",
        "model",
        "channels",
        "classes",
        "window",
        "step",
        "sampling_rate",
        "mean",
        "std",
    }
    assert info["window"] == 32 and info["step"] == 16 and info["classes"][0] == "WALKING"
    assert len(info["mean"]) == len(info["channels"]) == 6 and info["sampling_rate"] == 50
    assert deployment_meta(run).items() >= info.items()


def test_status_follows_the_run(run):
    (run / "metrics.json").unlink()
    assert Run(run).status == "interrupted" and Run(run).metrics is None
    mark_failed(run, "the training loss became nan")
    assert Run(run).status == "failed"


def test_a_run_without_best_checkpoint_says_how_to_continue(run):
    (run / "best.pt").unlink()
    with pytest.raises(HarkitError, match=r"holds no trained model.*--resume"):
        Run(run).model()


@pytest.fixture
def folder_run(tmp_path, monkeypatch):
    """A cnn run on a folder dataset named by a relative path, as a user in that folder would train it."""
    home = tmp_path / "home"
    write_template(home / "data")
    monkeypatch.chdir(home)
    config = TrainConfig(
        dataset="data",
        model="cnn",
        epochs=1,
        batch_size=8,
        window=64,
        model_options={"width": 0.125},
        patience=None,
        threads=1,
    )
    return train(config, "run", progress=False).resolve(), home / "data"


def test_a_run_records_where_its_data_is(folder_run):
    run, data = folder_run
    source = json.loads((run / "source.json").read_text())
    assert source["dataset_path"] == str(data.resolve())
    assert source["fingerprint"].startswith("files:")  # the recordings harkit read, not the whole folder
    assert (run / "harkit.toml").read_text() == (data / "harkit.toml").read_text()


def test_a_run_evaluates_from_anywhere_and_after_its_data_moved(folder_run, tmp_path, monkeypatch):
    run, data = folder_run
    reference = json.loads((run / "metrics.json").read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert evaluate_run(run, plots=False, latency_repeats=1)["accuracy"] == reference["accuracy"]

    moved = tmp_path / "moved"
    shutil.move(data, moved)
    # The prepared arrays cached at training still answer, with a warning.
    assert evaluate_run(run, plots=False, latency_repeats=1)["accuracy"] == reference["accuracy"]
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(HarkitError, match=r"not found: data was read from .*home/data.*--data-dir"):
        evaluate_run(run, plots=False, latency_repeats=1)
    with pytest.raises(HarkitError, match=r"holds no harkit\.toml"):
        evaluate_run(run, plots=False, latency_repeats=1, data_dir=tmp_path)
    with pytest.raises(HarkitError, match="does not exist"):
        evaluate_run(run, plots=False, latency_repeats=1, data_dir=tmp_path / "typo")
    again = evaluate_run(run, plots=False, latency_repeats=1, data_dir=moved)
    assert again["accuracy"] == reference["accuracy"] and again["macro_f1"] == reference["macro_f1"]


@pytest.mark.parametrize("kind", ["ts", "npz"])
def test_runs_of_ts_and_npz_data_find_it_after_it_moved(kind, tmp_path, monkeypatch, caplog):
    from tests.datasets.test_formats import random_rows, ts_file

    rng = np.random.default_rng(0)
    home = tmp_path / "home"
    if kind == "ts":
        data = home / "toy"
        data.mkdir(parents=True)
        ts_file(data / "Toy_TRAIN.ts", random_rows(rng, 40, (16,)))
        ts_file(data / "Toy_TEST.ts", random_rows(rng, 12, (16,)))
    else:
        home.mkdir()
        data = home / "toy.npz"
        np.savez(data, x=rng.normal(size=(60, 16, 2)), y=np.arange(60) % 3, subject=np.arange(60) % 6 + 1)
    monkeypatch.chdir(home)
    config = TrainConfig(
        dataset=data.name, model="cnn", epochs=1, batch_size=8, model_options={"width": 0.125}, threads=1
    )
    run = train(config, "run", progress=False).resolve()
    assert json.loads((run / "source.json").read_text())["dataset_path"] == str(data.resolve())
    reference = json.loads((run / "metrics.json").read_text())["accuracy"]
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(data, moved / data.name)
    shutil.rmtree(tmp_path / "cache")  # no cached arrays to fall back on: the data itself must be found
    with pytest.raises(HarkitError, match="is not found"):
        evaluate_run(run, plots=False, latency_repeats=1)
    with pytest.raises(HarkitError, match=r"holds no harkit\.toml, no NAME_TRAIN\.ts"):
        evaluate_run(run, plots=False, latency_repeats=1, data_dir=tmp_path)
    caplog.clear()
    # the folder it moved into, or the dataset itself
    for place in (moved, moved / data.name):
        assert evaluate_run(run, plots=False, latency_repeats=1, data_dir=place)["accuracy"] == reference
    assert not any("differ from those the run was trained on" in message for message in caplog.messages)


def test_predict_works_from_anywhere(folder_run, tmp_path, monkeypatch):
    run, data = folder_run
    recording = tmp_path / "rec.csv"
    shutil.copy(data / "subject3_session1.csv", recording)
    shutil.move(data, tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    result = invoke("predict", run, recording, "--out", tmp_path / "pred")
    assert result.exit_code == 0, result.output


def test_predict_reads_time_as_the_training_recordings_write_it(tmp_path, monkeypatch):
    import pandas as pd

    data = tmp_path / "data"
    write_template(data)
    for csv in data.glob("*.csv"):  # epoch milliseconds, as a phone app writes them
        frame = pd.read_csv(csv)
        frame["timestamp"] = (1_700_000_000 + frame["timestamp"]) * 1000
        frame.to_csv(csv, index=False)
    toml = data / "harkit.toml"
    toml.write_text(
        toml.read_text().replace(
            'timestamp_column = "timestamp"', 'timestamp_column = "timestamp"\ntimestamp_unit = "ms"', 1
        )
    )
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(dataset="data", model="cnn", epochs=1, batch_size=8, window=64, model_options={"width": 0.125})
    run = train(config, "run", progress=False)
    from harkit.predict import predict_recording

    recording = next(iter(sorted(data.glob("*.csv"))))
    result = predict_recording(run, recording, plot=False)
    assert result["rate_source"] == "timestamps" and result["rate"] == pytest.approx(50, rel=1e-3)
    assert result["timeline"]["start_s"].iloc[0] == pytest.approx(pd.read_csv(recording)["timestamp"].iloc[0] / 1000)


def test_evaluate_on_a_cross_validation_folder_evaluates_every_fold(hapt_dir, tmp_path):
    out = tmp_path / "cv"
    args = ["--dataset", "hapt", "--model", "cnn", "--data-dir", hapt_dir, "--window", 32, "--epochs", 1]
    args += ["--batch-size", 8, "--width", 0.125, "--out", out, "--no-progress", "--folds", 2]
    assert invoke("train", *args, "--val-fraction", 0).exit_code == 0
    trained = json.loads((out / "crossval.json").read_text())
    (out / "crossval.json").unlink()
    result = invoke("evaluate", out)
    assert result.exit_code == 0, result.output
    assert "2 cross-validation" in result.output and "mean ± std" in result.output
    summary = json.loads((out / "crossval.json").read_text())
    assert [row["fold"] for row in summary["folds"]] == [0, 1] and summary["complete"]
    assert summary["mean"]["accuracy"] == pytest.approx(trained["mean"]["accuracy"])
    assert summary["scheme"] == "2"


def test_models_for_a_folder_dataset_count_its_real_classes(tmp_path):
    import warnings

    write_template(tmp_path / "data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke("models", "--dataset", tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert "2 classes" in result.output
    assert not [w for w in caught if "torch" in w.filename], [str(w.message) for w in caught]
