"""`tiny` (TinyHAR): its budget on a HAPT window and the published structure."""

import torch
from torch import nn

from harkit.evaluation.cost import count_macs
from harkit.models import count_parameters, create_model, list_models


def test_tiny_fits_the_budget_on_a_hapt_window():
    model = create_model("tiny", 128, 6, 6)
    parameters, macs = count_parameters(model), count_macs(model, 128, 6)
    assert parameters <= 100_000 and macs <= 5_000_000
    assert (parameters, macs) == (42_391, 4_628_256)  # pinned: a change of design shows here
    assert "tiny" in list_models()


def test_tiny_follows_tinyhar():
    model = create_model("tiny", 128, 6, 6)
    convs = [m for m in model.convs if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 1)] * 4
    assert [c.stride for c in convs] == [(1, 1), (2, 1), (1, 1), (2, 1)]  # time / 4
    assert [type(m).__name__ for m in model.convs[:3]] == ["Conv2d", "ReLU", "BatchNorm2d"]
    features = model.convs(torch.randn(2, 1, 128, 6))
    assert features.shape == (2, 24, 32, 6)  # every sensor channel keeps its own column
    assert model.fusion[0].in_features == 6 * 24 and model.lstm.hidden_size == 48
    assert model.aggregate.gamma.item() == 0.0  # starts as the last LSTM step alone, as published


def test_the_convolutions_run_channels_last_with_the_same_results():
    torch.manual_seed(0)
    model = create_model("tiny", 128, 6, 6).eval()
    x = torch.randn(4, 128, 6)
    features = model.convs(x.unsqueeze(1))
    assert features.is_contiguous(memory_format=torch.channels_last)  # oneDNN's fast layout for these kernels
    plain = create_model("tiny", 128, 6, 6).eval()
    plain.convs.to(memory_format=torch.contiguous_format)
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(plain.convs(x.unsqueeze(1)), features)
    torch.testing.assert_close(plain(x), model(x))


def test_channels_interact_only_in_the_transformer_layer():
    torch.manual_seed(0)
    model = create_model("tiny", 64, 4, 3).eval()
    x = torch.randn(1, 64, 4)
    base = model.convs(x.unsqueeze(1))
    y = x.clone()
    y[0, :, 2] += 1.0
    moved = (model.convs(y.unsqueeze(1)) - base).abs().sum((0, 1, 2))
    assert moved[[0, 1, 3]].sum() == 0 and moved[2] > 0
    out = model(y) - model(x)
    assert out.abs().sum() > 0


def test_a_trained_tiny_run_exports_to_onnx(tiny_config, tmp_path):
    from dataclasses import replace

    from harkit.export import export_onnx
    from harkit.training.engine import train

    run = train(replace(tiny_config, model="tiny", model_options={}, epochs=1), tmp_path / "run", progress=False)
    assert export_onnx(run, check_windows=9)["max_abs_difference"] < 1e-3
