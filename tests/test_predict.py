"""Prediction on new recordings: per-sample labels, smoothing, scoring, plots and clear refusals."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harkit import HarkitError
from harkit.datasets.resample import resample_signals
from harkit.predict import merge_windows, predict_recording, smooth_labels, window_starts
from tests.fixtures import raw

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small trained SANN run (HAPT fixture, window 32, step 16, 50 Hz) shared by this module."""
    from harkit.training.engine import TrainConfig, train

    root = tmp_path_factory.mktemp("predict-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARKIT_CACHE_DIR", str(root / "cache"))
        config = TrainConfig(
            dataset="hapt",
            model="sann",
            epochs=1,
            batch_size=8,
            model_options={"width": 0.125},
            data_dir=str(raw.write_hapt(root / "hapt")),
            window=32,
            overlap=0.5,
            val_fraction=0.5,
            patience=None,
            threads=1,
        )
        return train(replace(config), root / "run", progress=False)


def recording(path, n=200, rate=50.0, channels=CHANNELS, timestamps=True, seed=0):
    frame = pd.DataFrame(np.random.default_rng(seed).normal(size=(n, len(channels))), columns=list(channels))
    if timestamps:
        frame.insert(0, "timestamp", np.arange(n) / rate)
    frame.to_csv(path, index=False)
    return path


def edit(path, row, column, value):
    """Put `value` (any type) in one cell of a CSV file."""
    frame = pd.read_csv(path)
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("value", ["1e400", "inf", "-inf"])
def test_a_non_finite_value_names_the_file_row_and_column(run, tmp_path, value):
    path = edit(recording(tmp_path / "rec.csv"), 6, "gyro_x", value)
    with pytest.raises(HarkitError, match=r"rec.csv: non-finite value .* in column 'gyro_x' at data row 7"):
        predict_recording(run, path)


def test_a_value_beyond_float32_is_refused_rather_than_made_infinite(run, tmp_path):
    path = edit(recording(tmp_path / "rec.csv"), 3, "acc_z", "1e39")
    with pytest.raises(HarkitError, match=r"value 1e\+39 in column 'acc_z' at data row 4 is too large for float32"):
        predict_recording(run, path)


@pytest.mark.parametrize(("value", "problem"), [("12:00:01", "not a number"), (np.nan, "empty")])
def test_a_timestamp_that_is_text_or_missing_is_refused(run, tmp_path, value, problem):
    path = edit(recording(tmp_path / "rec.csv"), 9, "timestamp", value)
    with pytest.raises(HarkitError, match=rf"rec.csv: timestamp .*{problem}.* at data row 10"):
        predict_recording(run, path)


def test_an_unreadable_onnx_model_is_a_clear_error(run, tmp_path):
    (run / "model.onnx").write_bytes(b"not an onnx model")
    try:
        with pytest.raises(HarkitError, match=r"cannot read .*model.onnx.*harkit export"):
            predict_recording(run, recording(tmp_path / "rec.csv"))
    finally:
        (run / "model.onnx").unlink()


def copy_run(run, tmp_path):
    """A private copy of the shared run, for tests that write into it (model.onnx)."""
    import shutil

    return Path(shutil.copytree(run, tmp_path / "run"))


def probabilities_of(frame):
    return frame[[c for c in frame if c.startswith("p_")]].to_numpy()


# ---- merging windows into samples -------------------------------------------------------------------------------


def test_window_starts_cover_the_tail_with_one_window_aligned_to_the_end():
    assert window_starts(200, 32, 16).tolist() == [*range(0, 161, 16), 168]
    assert window_starts(192, 32, 16).tolist() == list(range(0, 161, 16))  # the last regular window ends at 192
    assert window_starts(32, 32, 16).tolist() == [0]


def test_merged_probabilities_are_the_mean_over_the_covering_windows():
    rng = np.random.default_rng(1)
    samples, window, step = 103, 20, 7
    starts = window_starts(samples, window, step)
    probabilities = rng.dirichlet(np.ones(4), size=len(starts))
    merged, counts = merge_windows(probabilities, starts, window, samples)
    for sample in (0, 6, 7, 19, 20, 50, 82, 83, 102):  # the same, written out for a few samples
        covering = (starts <= sample) & (sample < starts + window)
        assert counts[sample] == covering.sum() > 0
        assert np.allclose(merged[sample], probabilities[covering].mean(0), atol=1e-12)
    assert counts.min() >= 1 and np.allclose(merged.sum(1), 1)


def test_smoothing_merges_short_segments_into_the_more_likely_neighbour():
    # 10 Hz: A 5 s, B 0.3 s, A 5 s, C 0.5 s, B 4 s; minimum 1 s
    labels = np.repeat([0, 1, 0, 2, 1], [50, 3, 50, 5, 40])
    probabilities = np.full((len(labels), 3), 0.1)
    probabilities[np.arange(len(labels)), labels] = 0.8
    probabilities[103:108, 1] = 0.15  # inside the C segment, B (right) is likelier than A (left)
    edges = np.arange(len(labels) + 1) / 10
    smoothed = smooth_labels(labels, probabilities, edges, minimum=1.0)
    assert smoothed.tolist() == np.repeat([0, 1], [103, 45]).tolist()
    assert (
        smooth_labels(labels, probabilities, edges, minimum=0.4).tolist() == np.repeat([0, 2, 1], [103, 5, 40]).tolist()
    )
    assert set(smooth_labels(labels, probabilities, edges, minimum=60.0).tolist()) == {0}  # all one segment


def test_timeline_segments_are_back_to_back_and_never_overlap(run, tmp_path):
    for name, kwargs in [("plain", {}), ("smoothed", {"smooth": 1.0})]:
        path = recording(tmp_path / f"{name}.csv", n=700, seed=3)
        result = predict_recording(run, path, **kwargs)
        segments, samples = result["timeline"], result["samples"]
        assert (segments["start_s"].to_numpy()[1:] == segments["end_s"].to_numpy()[:-1]).all()
        assert (segments["duration_s"] > 0).all() and segments["samples"].sum() == len(samples) == 700
        assert segments["start_s"].iloc[0] == 0 and np.isclose(segments["end_s"].iloc[-1], 700 / 50)
        # each segment is a run of one label in the per-sample table
        expanded = np.repeat(segments["label"].to_numpy(), segments["samples"].to_numpy())
        assert (expanded == samples["label"].to_numpy()).all()
        if kwargs:
            assert len(segments) == 1 or segments["duration_s"].min() >= 1.0


def test_per_sample_labels_from_the_pytorch_and_onnx_backends_agree(run, tmp_path):
    from harkit.export import export_onnx

    csv = recording(tmp_path / "rec.csv")
    torch_result = predict_recording(run, csv, tmp_path / "pred-torch")
    assert torch_result["backend"] == "pytorch"
    predictions = torch_result["predictions"]
    # 200 samples, window 32, step 16: 11 regular windows and one aligned to the end
    assert predictions["start_sample"].tolist() == [*range(0, 161, 16), 168]
    assert np.allclose(probabilities_of(predictions).sum(1), 1, atol=1e-5)
    samples = torch_result["samples"]
    assert len(samples) == 200 and samples["windows"].tolist()[:16] == [1] * 16
    expected = probabilities_of(predictions)[[0, 1]].mean(0)  # sample 20: windows 0 and 1
    assert np.allclose(probabilities_of(samples)[20], expected, atol=1e-6)
    for name in ("predictions.csv", "samples.csv", "timeline.csv", "timeline.png"):
        assert (tmp_path / "pred-torch" / name).stat().st_size > 100

    private = copy_run(run, tmp_path)
    export_onnx(private)
    onnx_result = predict_recording(private, csv)
    assert onnx_result["backend"] == "onnxruntime"
    assert np.allclose(probabilities_of(onnx_result["samples"]), probabilities_of(samples), atol=1e-4)


def test_prediction_equals_the_model_on_the_same_windows(run, tmp_path):
    from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint

    csv = recording(tmp_path / "rec.csv", n=64)
    result = predict_recording(run, csv)
    checkpoint = load_checkpoint(run / "best.pt")
    model = model_from_checkpoint(checkpoint)
    raw_values = pd.read_csv(csv).iloc[:32, 1:].to_numpy(np.float32)
    x = (raw_values - np.array(checkpoint["mean"], np.float32)) / np.array(checkpoint["std"], np.float32)
    with torch.inference_mode():
        expected = torch.softmax(model(torch.from_numpy(x[None])), 1)[0].numpy()
    assert np.allclose(probabilities_of(result["predictions"])[0], expected, atol=1e-5)
    # samples 0-15 are covered by window 0 alone
    assert np.allclose(probabilities_of(result["samples"])[:16], expected, atol=1e-5)


# ---- scoring a labelled recording -------------------------------------------------------------------------------


def test_a_labelled_recording_is_scored_per_sample(run, tmp_path):
    from sklearn.metrics import accuracy_score, f1_score

    path = recording(tmp_path / "rec.csv", n=400, seed=5)
    predicted = predict_recording(run, path)["samples"]["label"].to_numpy()
    classes = deployment_classes(run)
    # truth: the prediction, except 60 samples set to another class, 20 to a label the model does not
    # know and 10 left empty
    truth = predicted.astype(object).copy()
    truth[:60] = [classes[(classes.index(p) + 1) % len(classes)] for p in predicted[:60]]
    truth[100:120] = "STAND_TO_SIT"
    truth[200:210] = None
    frame = pd.read_csv(path)
    frame["activity"] = truth
    frame.to_csv(path, index=False)

    result = predict_recording(run, path, tmp_path / "out", label_column="activity")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    scored = np.r_[0:100, 120:200, 210:400]
    assert metrics["samples_scored"] == len(scored) == 370 and metrics["samples_unlabelled"] == 10
    assert metrics["labels_not_in_model"] == {"STAND_TO_SIT": 20}
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth[scored], predicted[scored])) == 310 / 370
    index = {c: i for i, c in enumerate(classes)}
    t, p = [index[v] for v in truth[scored]], [index[v] for v in predicted[scored]]
    assert metrics["macro_f1_all_classes"] == pytest.approx(
        f1_score(t, p, labels=range(len(classes)), average="macro", zero_division=0)
    )
    confusion = pd.read_csv(tmp_path / "out" / "confusion_matrix.csv", index_col=0)
    assert confusion.shape == (len(classes), len(classes)) and confusion.to_numpy().sum() == 370
    assert np.trace(confusion.to_numpy()) == 310
    assert (tmp_path / "out" / "confusion_matrix.png").stat().st_size > 1000
    assert result["samples"]["true_label"].iloc[100] == "STAND_TO_SIT"
    assert any("STAND_TO_SIT (20)" in note for note in result["notes"])
    assert "10 samples have no label in 'activity' and are not scored" in result["notes"]


def deployment_classes(run):
    from harkit.export import deployment_meta

    return deployment_meta(run)["classes"]


def test_label_codes_read_integer_classes_blanks_and_unknown_labels():
    from harkit.predict import _label_codes

    # a column of integer classes with a gap is read by pandas as floats: 3.0 must still be class "3"
    codes, text = _label_codes(pd.Series([1.0, np.nan, 3.0, 7.0, 3.0]), ["1", "3"])
    assert codes.tolist() == [0, -2, 1, -1, 1] and text[3] == "7"
    codes, text = _label_codes(pd.Series(["sit", " ", None, "walk", "run"]), ["walk", "sit"])
    assert codes.tolist() == [1, -2, -2, 0, -1] and text[4] == "run"


def test_a_label_column_that_is_missing_or_matches_no_class_is_refused(run, tmp_path):
    path = recording(tmp_path / "rec.csv")
    with pytest.raises(HarkitError, match="has no column 'activity' for --label-column"):
        predict_recording(run, path, label_column="activity")
    frame = pd.read_csv(path)
    frame["activity"] = "DANCING"
    frame.to_csv(path, index=False)
    with pytest.raises(HarkitError, match="no sample of the recording has one of the model's labels"):
        predict_recording(run, path, label_column="activity")


# ---- sampling rate ------------------------------------------------------------------------------------------------


def test_without_timestamps_the_rate_is_the_models_and_the_result_says_so(run, tmp_path):
    path = recording(tmp_path / "rec.csv", timestamps=False)
    result = predict_recording(run, path)
    assert result["rate_source"] == "model" and result["rate"] == 50
    assert "no timestamp column: assumed the model's rate, 50 Hz" in result["notes"][0]
    assert np.isclose(result["timeline"]["end_s"].iloc[-1], 4.0)
    with pytest.raises(HarkitError, match="sampled at 100 Hz but the model expects 50 Hz; pass --resample"):
        predict_recording(run, path, rate=100)
    overridden = predict_recording(run, path, rate=100, resample=True)
    assert overridden["rate_source"] == "--rate" and len(overridden["samples"]) == 100
    assert not any("no timestamp" in note for note in overridden["notes"])
    with pytest.raises(HarkitError, match="--rate must be a positive number of Hz, got -5"):
        predict_recording(run, path, rate=-5)
    with pytest.raises(HarkitError, match="timestamps say 50 Hz but --rate says 100 Hz"):
        predict_recording(run, recording(tmp_path / "stamped.csv"), rate=100)


def test_a_jump_in_the_timestamps_is_said(run, tmp_path):
    path = recording(tmp_path / "rec.csv", n=300)
    pd.read_csv(path).drop(index=range(100, 120)).to_csv(path, index=False)  # 0.4 s missing after row 100
    result = predict_recording(run, path)
    assert "the timestamps jump 1 times (the largest by 0.42 s, the first after data row 100)" in result["notes"][0]
    # the output keeps the recording's own times: the segment boundaries fall on its timestamps
    assert np.isin(result["timeline"]["start_s"], pd.read_csv(path)["timestamp"]).all()


def test_resampling_is_polyphase_and_carries_the_labels(run, tmp_path, monkeypatch):
    import harkit.predict

    calls = []

    def spy(signals, source_rate, target_rate):
        calls.append((signals.shape, source_rate, target_rate))
        return resample_signals(signals, source_rate, target_rate)

    monkeypatch.setattr(harkit.predict, "resample_signals", spy)
    path = recording(tmp_path / "rec.csv", n=400, rate=100.0)
    frame = pd.read_csv(path)
    frame["activity"] = np.repeat(deployment_classes(run)[:2], 200)
    frame.to_csv(path, index=False)
    result = predict_recording(run, path, resample=True, label_column="activity")
    assert calls == [((400, 6), pytest.approx(100.0), 50)]
    samples = result["samples"]
    assert len(samples) == 200 and np.allclose(samples["time_s"].to_numpy(), np.arange(200) / 50)
    assert (samples["true_label"].to_numpy() == np.repeat(deployment_classes(run)[:2], 100)).all()
    assert result["metrics"]["samples_scored"] == 200


# ---- pretrained models ----------------------------------------------------------------------------------------------


@pytest.fixture
def fake_pretrained(run, monkeypatch):
    """A `harkit.pretrained` module (contracts #2) whose `run-tiny` is the shared run, for the CLI and predict."""
    from harkit.export import deployment_meta
    from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint

    def load_pretrained(name):
        if name != "run-tiny":
            raise AssertionError(name)
        return model_from_checkpoint(load_checkpoint(run / "best.pt")), deployment_meta(run)

    def example_recording(dest):
        return recording(Path(dest), n=300, seed=7)

    module = types.ModuleType("harkit.pretrained")
    module.PRETRAINED_NAMES = ("run-tiny",)
    module.load_pretrained, module.example_recording = load_pretrained, example_recording
    monkeypatch.setitem(sys.modules, "harkit.pretrained", module)
    return module


def test_a_pretrained_model_predicts_like_its_run(run, fake_pretrained, tmp_path):
    path = recording(tmp_path / "rec.csv")
    from_run = predict_recording(run, path)
    from_name = predict_recording(None, path, pretrained="run-tiny")
    assert from_name["backend"] == "pytorch"
    assert np.allclose(probabilities_of(from_name["samples"]), probabilities_of(from_run["samples"]), atol=1e-6)
    with pytest.raises(HarkitError, match="no pretrained model 'nope'; harkit ships run-tiny"):
        predict_recording(None, path, pretrained="nope")
    with pytest.raises(HarkitError, match="either a run directory or --pretrained NAME"):
        predict_recording(run, path, pretrained="run-tiny")


def test_cli_example_then_pretrained_prediction(fake_pretrained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("datasets", "--example", "example.csv")
    assert result.exit_code == 0, result.output
    assert "example.csv" in result.output and len(pd.read_csv(tmp_path / "example.csv")) == 300
    result = invoke("predict", "--pretrained", "run-tiny", "example.csv", "--out", "pred", "--smooth", "0.5")
    assert result.exit_code == 0, result.output
    assert "pretrained run-tiny" in result.output and "300 samples" in result.output
    for name in ("samples.csv", "timeline.csv", "timeline.png"):
        assert (tmp_path / "pred" / name).is_file()
    assert invoke("predict", "--pretrained", "run-tiny", "a.csv", "b.csv").exit_code == 2
    result = invoke("predict", "--pretrained", "nope", "example.csv")
    assert result.exit_code == 2 and "harkit ships run-tiny" in result.output


def test_cli_scores_a_labelled_recording_and_says_where_the_rate_came_from(run, tmp_path):
    path = recording(tmp_path / "rec.csv", timestamps=False)
    frame = pd.read_csv(path)
    frame["activity"] = deployment_classes(run)[0]
    frame.to_csv(path, index=False)
    result = invoke("predict", run, path, "--out", tmp_path / "pred", "--label-column", "activity")
    assert result.exit_code == 0, result.output
    assert "assumed the model's rate, 50 Hz" in result.output
    metrics = json.loads((tmp_path / "pred" / "metrics.json").read_text())
    assert (
        f"accuracy {metrics['accuracy']:.3f}" in result.output and "metrics.json, confusion_matrix.csv" in result.output
    )
    result = invoke("predict", run, path, "--smooth", -1)
    assert result.exit_code == 2 and "--smooth" in result.output
    assert invoke("predict", run).exit_code == 2


def invoke(*args):
    from typer.testing import CliRunner

    from harkit.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _shipped(name):
    from importlib import resources

    try:
        return (resources.files("harkit.pretrained") / name / "model.safetensors").is_file()
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not _shipped("hapt-tiny"), reason="hapt-tiny's weights are not in this tree yet")
def test_the_shipped_pretrained_model_predicts_its_example_without_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("datasets", "--example", "example.csv")
    assert result.exit_code == 0, result.output
    assert "harkit predict --pretrained hapt-tiny example.csv" in result.output
    assert invoke("datasets", "--example", "example.csv").exit_code == 2  # never overwritten
    result = invoke(
        "predict", "--pretrained", "hapt-tiny", "example.csv", "--out", "pred", "--label-column", "activity"
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "pred" / "metrics.json").read_text())
    # a channel swapped or normalised wrongly scores far below this on HAPT's six activities
    assert metrics["accuracy"] >= 0.8 and metrics["samples_scored"] > 1000
    assert (tmp_path / "pred" / "timeline.png").stat().st_size > 10_000
