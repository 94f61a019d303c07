import copy
import shutil
import sysconfig
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters
from torch._inductor.utils import fresh_cache

from harkit import HarkitError
from harkit.models import create_model
from harkit.training import compile as lowering

aten = torch.ops.aten

# (in, out, kernel, stride, padding, length, width, bias): SANN's stages and attention, other kernels and
# strides, and lengths whose last rows no output reads.
CASES = [
    (6, 8, 3, 2, 1, 13, 5, True),
    (16, 4, 3, 2, 1, 16, 6, False),
    (4, 4, 2, 1, 0, 20, 3, True),
    (1, 1, 3, 1, 1, 9, 6, True),
    (1, 1, 5, 1, 0, 9, 2, False),
    (3, 5, 4, 3, 2, 17, 2, True),
]


@pytest.mark.parametrize(("cin", "cout", "kernel", "stride", "padding", "length", "width", "bias"), CASES)
def test_lowered_convolution_and_gradients_equal_the_convolution(
    cin, cout, kernel, stride, padding, length, width, bias
):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, cin, length, width, generator=generator, dtype=torch.float64)
    weight = torch.randn(cout, cin, kernel, 1, generator=generator, dtype=torch.float64)
    b = torch.randn(cout, generator=generator, dtype=torch.float64) if bias else None
    geometry = ([stride, 1], [padding, 0], [1, 1], False, [0, 0], 1)
    expected = aten.convolution(x, weight, b, *geometry)
    lowered = lowering._convolution(x, weight, b, *geometry)
    assert lowered.shape == expected.shape
    torch.testing.assert_close(lowered, expected)

    grad = torch.randn(expected.shape, generator=generator, dtype=torch.float64)
    bias_sizes = [cout] if bias else None
    mask = [True, True, bias]
    expected_grads = aten.convolution_backward(grad, x, weight, bias_sizes, *geometry, mask)
    lowered_grads = lowering._convolution_backward(grad, x, weight, bias_sizes, *geometry, mask)
    for got, want in zip(lowered_grads, expected_grads, strict=True):
        if want is None:
            assert got is None
        else:
            assert got.shape == want.shape
            torch.testing.assert_close(got, want)
    weight_only = lowering._convolution_backward(grad, x, weight, bias_sizes, *geometry, [False, True, False])
    assert weight_only[0] is None and weight_only[2] is None
    torch.testing.assert_close(weight_only[1], expected_grads[1])


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "stride", "groups"),
    [
        (1, 64, (3, 1), [2, 1], 1),  # one plane in, many out
        (4, 4, (5, 1), [1, 1], 1),  # columns five times the input
        (4, 4, (3, 3), [1, 1], 1),  # not along time only
        (4, 4, (3, 1), [1, 2], 1),
        (4, 4, (3, 1), [1, 1], 2),
    ],
)
def test_other_convolutions_are_left_to_the_backend(cin, cout, kernel, stride, groups):
    x = torch.randn(2, cin, 8, 6)
    weight = torch.randn(cout, cin // groups, *kernel)
    result = lowering._convolution(x, weight, None, stride, [1, 0], [1, 1], False, [0, 0], groups)
    assert result is NotImplemented


@pytest.mark.parametrize(("length", "width"), [(8, 6), (7, 3), (1, 2)])
def test_pooling_over_time_backward_equals_the_pool(length, width):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, length, width, generator=generator, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last)  # as the lowered convolutions leave their outputs
    grad = torch.randn(3, 5, 1, width, generator=generator, dtype=torch.float64)
    expected = aten._adaptive_avg_pool2d_backward(grad, x)
    lowered = lowering._pooling_over_time_backward(grad, x)
    assert lowered.shape == expected.shape and lowered.dtype == expected.dtype
    torch.testing.assert_close(lowered, expected)


@pytest.mark.parametrize("output", [(2, 6), (1, 3), (4, 2)])
def test_other_poolings_are_left_to_the_backend(output):
    x = torch.randn(2, 4, 8, 6)
    assert lowering._pooling_over_time_backward(torch.randn(2, 4, *output), x) is NotImplemented


INDUCTOR_BUILDS = (
    any(shutil.which(name) for name in ("g++", "clang++", "c++"))
    and (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()
)


@pytest.mark.skipif(not INDUCTOR_BUILDS, reason="Inductor needs a C++ compiler and Python's headers")
def test_compiled_training_step_matches_eager_and_uses_the_lowering(monkeypatch):
    lowered_channels = []
    convolution = lowering._convolution

    def counting(input, *args):
        result = convolution(input, *args)
        if result is not NotImplemented:
            lowered_channels.append(input.shape[1])
        return result

    monkeypatch.setattr(lowering, "_convolution", counting)
    pooled = []
    pooling = lowering._pooling_over_time_backward

    def counting_pool(grad_output, input):
        result = pooling(grad_output, input)
        pooled.append(result is not NotImplemented)
        return result

    monkeypatch.setattr(lowering, "_pooling_over_time_backward", counting_pool)
    torch.manual_seed(0)
    model = create_model("sann", 32, 3, 4, width=0.125)
    x, y = torch.randn(16, 32, 3), torch.randint(0, 4, (16,))

    def step(module):
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(module(x), y)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    eager_loss, eager_grads = step(model)
    with fresh_cache():  # a cached graph would skip the lowering this test counts
        compiled_loss, compiled_grads = step(lowering.compile_model(model))
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
    for got, want in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # Three stages with several input channels, and the attention of all four stages.
    assert sorted(lowered_channels) == [1, 1, 1, 1, 8, 16, 32]
    assert pooled == [True]  # the pooling over time before the head, in the backward pass


@pytest.mark.skipif(not INDUCTOR_BUILDS, reason="Inductor needs a C++ compiler and Python's headers")
def test_a_compiled_graph_is_cached_for_later_processes_apart_from_plain_compile(monkeypatch):
    torch.manual_seed(0)
    model = create_model("sann", 32, 3, 4, width=0.125)
    x = torch.randn(16, 32, 3)

    def cache_hits(compile):
        torch._dynamo.reset()  # as a new process: only Inductor's cache on disk remains
        counters.clear()
        out = compile(copy.deepcopy(model))(x)
        out.sum().backward()
        return counters["aot_autograd"]["autograd_cache_hit"], out.detach()

    def plain(module):
        return torch.compile(module, dynamic=False)

    with fresh_cache():
        runs = [cache_hits(compile) for compile in (plain, lowering.compile_model, lowering.compile_model, plain)]
        monkeypatch.setattr(lowering, "_SOURCE_HASH", "an edited lowering")
        edited_hits, _ = cache_hits(lowering.compile_model)
    # harkit's graph is not served plain torch.compile's, nor the other way round; each is served its own, and an
    # edited lowering compiles afresh.
    assert [hits for hits, _ in runs] + [edited_hits] == [0, 0, 1, 1, 0]
    torch.testing.assert_close(runs[2][1], runs[1][1])


def test_compile_without_a_cpp_compiler_says_what_to_install(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    # config.patch, not monkeypatch: undoing a monkeypatch on Inductor's config proxy deletes the setting for good
    with (
        torch._inductor.config.patch({"cpp.cxx": ("no-such-compiler-harkit",)}),
        pytest.raises(HarkitError, match="needs a C\\+\\+ compiler"),
    ):
        lowering.compile_model(create_model("cnn", 32, 3, 4, width=0.125))
    assert torch._inductor.config.cpp.cxx != ("no-such-compiler-harkit",)


@pytest.mark.parametrize(("dtype", "patched"), [(torch.bfloat16, True), (torch.float16, False), (None, False)])
def test_the_bf16_fusion_setting_applies_under_bf16_autocast_only(monkeypatch, dtype, patched):
    seen = {}

    def compile_fx(graph, example_inputs, decompositions, config_patches):
        seen.update(config_patches)

    monkeypatch.setattr(lowering, "compile_fx", compile_fx)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        lowering._inductor_with_time_convolutions(None, [])
    assert "post_grad_custom_pre_pass" in seen
    assert all(seen.get(key) == value for key, value in lowering.BF16_CONFIG.items()) is patched
