"""Export writes one self-contained ONNX file and says nothing irrelevant."""

import logging
from dataclasses import replace

import onnx

from harkit.export import export_onnx
from harkit.training.engine import train


def test_export_writes_one_onnx_file_without_torchvision_chatter(tiny_config, tmp_path, capfd, caplog):
    run = train(replace(tiny_config, epochs=1), tmp_path / "run", progress=False, evaluate=False)
    before = {p.name for p in run.iterdir()}
    capfd.readouterr()
    with caplog.at_level(logging.WARNING):
        result = export_onnx(run, check_windows=4)
    out, err = capfd.readouterr()
    assert "torchvision" not in out + err + caplog.text
    assert {p.name for p in run.iterdir()} - before == {"model.onnx", "model.json"}  # no model.onnx.data
    model = onnx.load(str(run / "model.onnx"), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert result["max_abs_difference"] < 1e-4
