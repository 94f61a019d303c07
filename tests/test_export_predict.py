"""ONNX export of every model family (prediction on new recordings: tests/test_predict.py)."""

from dataclasses import replace

import pytest

from harkit.export import export_onnx
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
