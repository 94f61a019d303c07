"""Generic checks run against every registered model and every dataset's window shape."""

import pytest
import torch

from harkit import HarkitError
from harkit.datasets import get_dataset, list_datasets
from harkit.models import (
    SpatialAttentionModule,
    count_parameters,
    create_model,
    list_models,
    model_options,
)

# (window, channels, classes) of every dataset's default protocol
SHAPES = {key: (d.window, len(d.channels), len(d.classes)) for key, d in ((k, get_dataset(k)) for k in list_datasets())}


def build(name: str, window: int, channels: int, classes: int):
    """A model as `harkit train` hands it on: closed-form models (minirocket) fitted on a few windows first."""
    model = create_model(name, window, channels, classes)
    if callable(getattr(model, "fit", None)):
        g = torch.Generator().manual_seed(0)
        model.fit(torch.randn(6, window, channels, generator=g), torch.arange(6) % classes)
    return model


def test_registry_lists_every_family():
    assert list_models() == [
        "cnn",
        "deepconvlstm",
        "lstm",
        "minirocket",
        "sann",
        "sann-lstm",
        "sann-transformer",
        "tiny",
        "transformer",
    ]
    assert list_models("sann*") == ["sann", "sann-lstm", "sann-transformer"]


@pytest.mark.parametrize(
    ("channels", "classes", "expected"),
    [(9, 6, 546_838), (6, 6, 537_622), (3, 6, 528_406), (36, 12, 740_380), (45, 19, 956_963), (113, 17, 1_502_753)],
)
def test_sann_parameter_counts_match_the_paper(channels, classes, expected):
    assert count_parameters(create_model("sann", 128, channels, classes)) == expected


def test_sann_layers_exactly_as_specified():
    model = create_model("sann", 128, 9, 6)
    convs = [stage[0] for stage in model.stages]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 64), (64, 128), (128, 256), (256, 512)]
    for conv in convs:
        assert conv.kernel_size == (3, 1) and conv.stride == (2, 1) and conv.padding == (1, 0)
    for stage in model.stages:
        kinds = [type(m).__name__ for m in stage]
        assert kinds == ["Conv2d", "SpatialAttentionModule", "BatchNorm2d", "ReLU"]
    attention = model.attention_modules()[0].conv
    assert (attention.in_channels, attention.out_channels, attention.kernel_size) == (1, 1, (3, 1))
    assert attention.stride == (1, 1) and attention.padding == (1, 0)
    assert model.pool.output_size == (1, 9)
    assert (model.head.in_features, model.head.out_features) == (512 * 9, 6)


def test_cnn_is_sann_without_attention():
    cnn = create_model("cnn", 128, 9, 6)
    assert not any(isinstance(m, SpatialAttentionModule) for m in cnn.modules())
    assert count_parameters(create_model("sann", 128, 9, 6)) - count_parameters(cnn) == 4 * 4


def test_attention_weights_in_unit_interval_and_local_in_time_only():
    torch.manual_seed(0)
    module = SpatialAttentionModule()
    module.keep_attention = True
    x = torch.randn(2, 8, 20, 5)
    module(x)
    base = module.attention.clone()
    assert base.shape == (2, 1, 20, 5)
    assert (base > 0).all() and (base < 1).all()
    y = x.clone()
    y[:, :, 10, 2] += 5.0  # change one time step of one channel
    module(y)
    changed = (module.attention != base).squeeze(1)
    # only channel 2 and only time steps 9..11 move: the kernel spans time, never channels
    assert changed[:, :, [0, 1, 3, 4]].sum() == 0
    assert changed[:, :, 2].nonzero()[:, 1].unique().tolist() == [9, 10, 11]
    # and the module rescales its input by those weights
    assert torch.allclose(module(x), x * base)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("dataset", list(SHAPES))
def test_every_model_on_every_dataset_shape(name, dataset):
    window, channels, classes = SHAPES[dataset]
    torch.manual_seed(0)
    model = build(name, window, channels, classes)
    x = torch.randn(4, window, channels)
    out = model(x)
    assert out.shape == (4, classes)
    assert torch.isfinite(out).all()
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


@pytest.mark.parametrize("name", list_models())
def test_state_dict_round_trip_and_seeded_determinism(name):
    torch.manual_seed(1)
    a = build(name, 64, 6, 5).eval()
    torch.manual_seed(1)
    b = build(name, 64, 6, 5).eval()
    x = torch.randn(3, 64, 6)
    assert torch.equal(a(x), b(x))
    torch.manual_seed(2)
    c = create_model(name, 64, 6, 5).eval()
    c.load_state_dict(a.state_dict())
    assert torch.equal(a(x), c(x))


@pytest.mark.parametrize("name", list_models())
def test_reset_classifier_changes_only_the_head(name):
    model = build(name, 64, 6, 5)
    model.reset_classifier(3)
    assert model(torch.randn(2, 64, 6)).shape == (2, 3)


def test_errors_list_valid_names_and_options():
    with pytest.raises(HarkitError, match="valid names: cnn, deepconvlstm"):
        create_model("resnet", 128, 6, 6)
    with pytest.raises(HarkitError, match="takes no options"):
        create_model("sann", 128, 6, 6, heads=3)
    with pytest.raises(HarkitError, match="at least 17 samples"):
        create_model("deepconvlstm", 12, 6, 6)


def test_none_options_keep_defaults_and_width_scales():
    assert count_parameters(create_model("sann", 128, 6, 6, dropout=None, width=None)) == 537_622
    narrow = create_model("sann", 128, 6, 6, width=0.5)
    assert count_parameters(narrow) < 537_622 / 3
    assert "dropout" in model_options("transformer")
