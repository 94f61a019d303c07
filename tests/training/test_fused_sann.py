import copy
import json
import logging
import statistics
from dataclasses import replace

import pytest
import torch

from harkit.hardware import has_compiler, machine_facts
from harkit.models import create_model
from harkit.training import fused_sann
from harkit.training.compile import compile_model

RUNS = pytest.mark.skipif(
    fused_sann.library() is None, reason="SANN's fused kernels need a CPU with AVX-512 and bf16 and a C compiler"
)
BUILDS = pytest.mark.skipif(fused_sann._compiler() is None, reason="no C compiler")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b).norm() / b.norm().clamp_min(1e-30))


def _step(model, forward, x, y):
    """Logits, parameter gradients and buffers after one training step's forward and backward."""
    model.zero_grad()
    logits = forward(x)
    torch.nn.functional.cross_entropy(logits.float(), y).backward()
    gradients = {name: p.grad.double() for name, p in model.named_parameters()}
    return logits.detach().double(), gradients, {name: b.double() for name, b in model.named_buffers()}


def _autocast(forward):
    def run(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(x)

    return run


@RUNS
@pytest.mark.parametrize(
    ("window", "channels", "width"),
    [(64, 3, 0.5), (100, 1, 0.25)],  # 100: lengths 50, 25, 13, 7, odd ones whose last tap reads padding; 16 channels
)
def test_a_fused_step_is_as_close_to_float64_as_eager_bf16_autocast(window, channels, width):
    torch.manual_seed(0)
    model = create_model("sann", window, channels, 5, width=width).train()
    x = torch.randn(16, window, channels) * 2 + 0.5
    y = torch.randint(0, 5, (16,))
    reference = copy.deepcopy(model).double()
    want_logits, want_gradients, want_buffers = _step(reference, reference, x.double(), y)
    eager, fused = copy.deepcopy(model), copy.deepcopy(model)
    eager_logits, eager_gradients, eager_buffers = _step(eager, _autocast(eager), x, y)
    fused_logits, fused_gradients, fused_buffers = _step(
        fused, _autocast(lambda v: fused_sann.fused_forward(fused, v)), x, y
    )
    assert _relative(fused_logits, want_logits) <= 1.5 * _relative(eager_logits, want_logits) + 1e-3
    cancelling = {"fused": [], "eager": []}
    for name, want in want_gradients.items():
        error, eager_error = _relative(fused_gradients[name], want), _relative(eager_gradients[name], want)
        # The attention's and the convolutions' biases (ahead of batch norm): sums over every row that nearly
        # cancel, so their relative error in bf16 is large and erratic either way. Judged together.
        if ".1.conv." in name or name.endswith(".0.bias"):
            cancelling["fused"].append(error)
            cancelling["eager"].append(eager_error)
        else:
            assert error <= 1.5 * eager_error + 2e-3, (name, error, eager_error)
    assert statistics.median(cancelling["fused"]) <= 1.5 * statistics.median(cancelling["eager"])
    for name, want in want_buffers.items():  # running statistics, and the count of batches
        assert _relative(fused_buffers[name], want) <= 1.5 * _relative(eager_buffers[name], want) + 1e-5, name


@RUNS
def test_training_with_fused_kernels_learns_what_eager_training_learns():
    torch.manual_seed(0)
    x = torch.randn(64, 32, 3)
    y = torch.arange(64) % 4
    x[torch.arange(64), :, y % 3] += torch.sin((y.float()[:, None] + 1) * torch.arange(32.0) / 3)
    accuracies = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = create_model("sann", 32, 3, 4, width=0.5).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        forward = _autocast((lambda v, m=model: fused_sann.fused_forward(m, v)) if fused else model)
        for _ in range(25):
            loss = torch.nn.functional.cross_entropy(forward(x).float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracies.append(float((model.eval()(x).argmax(1) == y).float().mean()))
    assert accuracies[1] >= 0.9
    assert accuracies[1] >= accuracies[0] - 0.05


@RUNS
def test_channels_the_kernels_cannot_take_are_refused_not_overrun():
    model = create_model("sann", 32, 3, 4, width=0.3).train()  # 19 channels in the first stage
    with pytest.raises(ValueError, match="multiple of 16"):
        _autocast(lambda v: fused_sann.fused_forward(model, v))(torch.randn(2, 32, 3))


@RUNS
def test_a_nan_in_the_input_reaches_the_logits_as_it_does_eagerly():
    torch.manual_seed(0)
    model = create_model("sann", 32, 3, 4, width=0.5).train()
    x = torch.randn(4, 32, 3)
    x[1, 5, 0] = float("nan")
    logits = _autocast(lambda v: fused_sann.fused_forward(model, v))(x)
    assert torch.isnan(logits).any()  # a ReLU that turned NaN into 0 would hide it


@RUNS
def test_the_fused_path_is_taken_only_for_bf16_training_on_the_cpu():
    calls = []
    model = create_model("sann", 32, 3, 4, width=0.5)

    def other(x):
        calls.append(x.shape)
        return model(x)

    forward = fused_sann.FusedTraining(model, other)
    x = torch.randn(8, 32, 3)
    model.train()
    forward(x)  # no autocast: fp32 goes to Inductor
    _autocast(forward)(x)
    assert len(calls) == 1
    model.eval()
    _autocast(forward)(x)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("name", "options", "fits"),
    [
        ("sann", {}, True),
        ("sann", {"width": 0.25}, True),  # 16 channels in the first stage: one vector
        ("sann", {"width": 0.3}, False),  # 19 channels: not a multiple of the kernels' vector of 16
        ("cnn", {}, False),  # no attention
        ("deepconvlstm", {}, False),
    ],
)
def test_which_models_the_kernels_fit(name, options, fits):
    assert fused_sann._stages_fit(create_model(name, 64, 3, 4, **options)) is fits


@pytest.mark.skipif(not has_compiler(), reason="compile_model needs Inductor's C++ compiler")
def test_compile_model_hands_sann_to_the_kernels_where_this_cpu_runs_them():
    machine = machine_facts()
    assert fused_sann.native_bf16() is (machine.capability == "AVX512" and machine.avx512_bf16)
    wrapped = compile_model(create_model("sann", 64, 3, 4))
    assert isinstance(wrapped, fused_sann.FusedTraining) is (fused_sann.library() is not None)
    assert not isinstance(compile_model(create_model("cnn", 64, 3, 4)), fused_sann.FusedTraining)
    assert not isinstance(compile_model(create_model("sann", 64, 3, 4), fused=False), fused_sann.FusedTraining)


@BUILDS
def test_the_kernels_are_built_once_into_the_given_folder(tmp_path):
    first = fused_sann._build(tmp_path / "kernels")
    built = first.stat().st_mtime_ns
    assert first.parent == tmp_path / "kernels" and first.suffix == ".so"
    assert fused_sann._build(tmp_path / "kernels") == first
    assert first.stat().st_mtime_ns == built
    assert [p.name for p in (tmp_path / "kernels").iterdir()] == [first.name]  # no staging left behind


def test_without_a_c_compiler_inductor_compiles_instead(monkeypatch, caplog):
    monkeypatch.setattr(fused_sann, "_compiler", lambda: None)
    monkeypatch.setattr(fused_sann, "native_bf16", lambda: True)  # as on a CPU that could run them
    monkeypatch.setattr(fused_sann, "_LIBRARY", [])
    monkeypatch.setenv("HARKIT_CACHE_DIR", "/nonexistent/harkit-cache")
    with caplog.at_level(logging.WARNING, logger="harkit.training.fused_sann"):
        assert fused_sann.library() is None
        assert not fused_sann.applies(create_model("sann", 64, 3, 4))
    assert "no C compiler" in caplog.text and "Inductor compiles the model instead" in caplog.text


@RUNS
def test_a_compiled_bf16_run_trains_every_batch_through_the_kernels(tiny_config, tmp_path, monkeypatch):
    from harkit.datasets import prepare
    from harkit.training.engine import train

    batches = []
    fused_forward = fused_sann.fused_forward

    def counting(model, x):
        batches.append(len(x))
        return fused_forward(model, x)

    monkeypatch.setattr(fused_sann, "fused_forward", counting)
    config = replace(
        tiny_config, epochs=1, precision="bf16", compile=True, model_options={"width": 0.25}, val_fraction=0.0
    )
    run = train(config, tmp_path / "run", progress=False)
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert (resolved["precision"], resolved["compile"]) == ("bf16", True)
    windows = len(prepare("hapt", config.prepare_config(), data_dir=config.data_dir).train)
    assert sum(batches) == windows and max(batches) == config.batch_size
    assert windows % config.batch_size == 0 or batches[-1] == windows % config.batch_size  # the last, smaller one too


def test_a_cpu_without_avx512_bf16_never_loads_the_kernels(monkeypatch):
    monkeypatch.setattr(fused_sann, "native_bf16", lambda: False)
    monkeypatch.setattr(fused_sann, "_LIBRARY", [])
    assert fused_sann.library() is None
    model = create_model("sann", 32, 3, 4, width=0.5).train()
    assert not fused_sann.applies(model)
    with pytest.raises(ValueError, match="AVX-512 and bf16"):  # not an illegal instruction
        _autocast(lambda v: fused_sann.fused_forward(model, v))(torch.randn(2, 32, 3))
