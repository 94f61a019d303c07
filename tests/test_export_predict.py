"""ONNX export of every model family and prediction on new recordings."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from harkit import HarkitError
from harkit.export import export_onnx
from harkit.predict import predict_recording
from harkit.training.engine import train

SMALL = {
    "sann": {"width": 0.125},
    "cnn": {"width": 0.125},
    "lstm": {"hidden": 16},
    "deepconvlstm": {"filters": 8, "hidden": 16},
    "transformer": {"dim": 16},
    "sann-transformer": {"width": 0.125, "dim": 16},
    "sann-lstm": {"width": 0.125, "dim": 16},
}


@pytest.fixture
def sann_run(tiny_config, tmp_path):
    return train(replace(tiny_config, epochs=1), tmp_path / "run", progress=False)


@pytest.mark.parametrize("model", ["sann", "lstm", "transformer", "sann-lstm"])
def test_onnx_export_matches_pytorch(model, tiny_config, tmp_path):
    config = replace(tiny_config, model=model, epochs=1, model_options=SMALL[model])
    run = train(config, tmp_path / model, progress=False, evaluate=False)
    result = export_onnx(run, check_windows=9)
    assert result["max_abs_difference"] < 1e-4
    assert (run / "model.onnx").stat().st_size > 1000
    import json

    meta = json.loads((run / "model.json").read_text())
    assert meta["classes"][0] == "WALKING" and len(meta["mean"]) == 6 and meta["window"] == 32


def recording(path, n=200, rate=50.0, channels=("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, len(channels))), columns=list(channels))
    frame.insert(0, "timestamp", np.arange(n) / rate)
    frame.to_csv(path, index=False)
    return path


def test_predict_with_pytorch_and_onnx_agree(sann_run, tmp_path):
    csv = recording(tmp_path / "rec.csv")
    torch_result = predict_recording(sann_run, csv, tmp_path / "pred-torch")
    assert torch_result["backend"] == "pytorch"
    predictions = torch_result["predictions"]
    # 200 samples, window 32, step 16: 11 windows
    assert len(predictions) == 11 and predictions["start_sample"].tolist() == list(range(0, 161, 16))
    probabilities = predictions[[c for c in predictions if c.startswith("p_")]].to_numpy()
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    timeline = torch_result["timeline"]
    assert timeline["windows"].sum() == 11 and timeline["start_s"].iloc[0] == 0
    assert (tmp_path / "pred-torch" / "timeline.csv").is_file()

    export_onnx(sann_run)
    onnx_result = predict_recording(sann_run, csv, tmp_path / "pred-onnx")
    assert onnx_result["backend"] == "onnxruntime"
    assert (onnx_result["predictions"]["label"] == predictions["label"]).all()


def test_predict_refuses_bad_recordings_clearly(sann_run, tmp_path):
    with pytest.raises(HarkitError, match=r"lacks the columns \['gyro_z'\]"):
        predict_recording(
            sann_run, recording(tmp_path / "a.csv", channels=("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y"))
        )
    with pytest.raises(HarkitError, match="sampled at 100 Hz but the model expects 50 Hz"):
        predict_recording(sann_run, recording(tmp_path / "b.csv", rate=100.0))
    resampled = predict_recording(sann_run, recording(tmp_path / "c.csv", n=400, rate=100.0), resample=True)
    assert len(resampled["predictions"]) == 11
    path = recording(tmp_path / "d.csv")
    frame = pd.read_csv(path)
    frame.loc[5, "acc_y"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(HarkitError, match=r"missing values in 1 rows .*data row 6"):
        predict_recording(sann_run, path)
    assert len(predict_recording(sann_run, path, fill_gaps=True)["predictions"]) == 11
    with pytest.raises(HarkitError, match="fewer than one window"):
        predict_recording(sann_run, recording(tmp_path / "e.csv", n=20))
    frame["acc_y"] = frame["acc_y"].astype(object)
    frame.loc[5, "acc_y"] = "oops"
    frame.to_csv(path, index=False)
    with pytest.raises(HarkitError, match="non-numeric value 'oops' in column 'acc_y' at data row 6"):
        predict_recording(sann_run, path)


def test_prediction_equals_the_model_on_the_same_windows(sann_run, tmp_path):
    from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint

    csv = recording(tmp_path / "rec.csv", n=64)
    result = predict_recording(sann_run, csv)
    checkpoint = load_checkpoint(sann_run / "best.pt")
    model = model_from_checkpoint(checkpoint)
    raw = pd.read_csv(csv).iloc[:32, 1:].to_numpy(np.float32)
    x = (raw - np.array(checkpoint["mean"], np.float32)) / np.array(checkpoint["std"], np.float32)
    with torch.inference_mode():
        expected = torch.softmax(model(torch.from_numpy(x[None])), 1)[0].numpy()
    got = result["predictions"].filter(like="p_").to_numpy()[0]
    assert np.allclose(got, expected, atol=1e-5)
