"""`torch.compile` for training, with time-only convolutions lowered to matrix products on the CPU.

SANN and its relatives convolve along time only (kernels `(k, 1)`). oneDNN runs these narrow convolutions
at about three quarters of the CPU's matrix-multiply speed, plus layout conversions around each one. Written as
one matrix product over the `k` time-shifted views of a channels-last input, they run at GEMM speed, and Inductor
fuses the gathering of the views (and its reverse in the backward pass) into the element-wise kernels
around them. This is done by decompositions of `aten.convolution` and its backward handed to Inductor: the model
keeps its `nn.Conv2d` layers and parameters, only the compiled graph changes, and its outputs and gradients equal
the convolution's up to float rounding (`tests/training/test_compile.py`). The pooling over time before SANN's head
gets the same treatment in its backward pass (`_pooling_over_time_backward`). Whether it pays depends on the CPU:
a SANN training step on HAPT's windows took 145 ms against 202-216 ms eager and 161-166 ms with plain
`torch.compile` on a 2-core Intel Xeon with AVX-512 and no bf16, but compiled epochs were slower than eager ones on
a 2-core AMD EPYC with native bf16 (issue 16). So `--compile auto` measures it on the machine at hand
(`harkit/hardware.py`); `benchmarks/compile_speed.py` compares steps, `benchmarks/train_speed.py` whole epochs.
Compiled graphs go to Inductor's caches on disk, keyed apart from plain `torch.compile`'s, so a model is compiled
once per shape and machine and later runs load it. SANN's bf16 training on CPUs with native bf16 goes through
hand-fused kernels instead (`fused_sann.py`), faster than any graph Inductor made of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch._inductor.compile_fx import compile_fx
from torch._inductor.cpp_builder import get_cpp_compiler
from torch._inductor.custom_graph_pass import CustomGraphPass
from torch._inductor.decomposition import select_decomp_table
from torch._inductor.exc import InvalidCxxCompiler

from harkit import HarkitError

aten = torch.ops.aten


def _lowers(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    transposed: bool,
    groups: int,
) -> bool:
    """Whether this convolution runs along time only, and is one of the shapes that gain from lowering.

    One channel in and one out (the attention's convolution): a `k`-tap filter, which Inductor fuses with its
    neighbours. Many channels in: a matrix product over columns that hold `k / stride` times the input, worth
    its copy only up to twice the input (SANN's `3 / 2`; DeepConvLSTM's `5 / 1` ran 0.6x as fast as oneDNN).
    One channel in and many out (SANN's first stage) has too few columns for a fast matrix product.
    """
    time_only = (
        input.device.type == "cpu"
        and input.dim() == 4
        and weight.shape[3] == 1
        and not transposed
        and groups == 1
        and list(dilation) == [1, 1]
        and stride[1] == 1
        and padding[1] == 0
    )
    in_channels, out_channels, kernel = input.shape[1], weight.shape[0], weight.shape[2]
    if in_channels == 1:
        return time_only and out_channels == 1
    return time_only and kernel <= 2 * stride[0]


def _taps(x: torch.Tensor, kernel: int, stride: int, padding: int, out_length: int) -> list[torch.Tensor]:
    """The rows each kernel tap reads: `kernel` views `[batch, out_length, width, channels]` of `x` `[B, C, T, W]`."""
    padded = aten.constant_pad_nd(x.permute(0, 2, 3, 1), [0, 0, 0, 0, padding, padding])
    return [padded[:, tap : tap + stride * (out_length - 1) + 1 : stride] for tap in range(kernel)]


def _columns(taps: list[torch.Tensor]) -> torch.Tensor:
    """The taps side by side, one row per output position: `[batch x out_length x width, k x channels]`."""
    return torch.cat(taps, dim=-1).flatten(0, 2)


def _weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """`[out, in, k, 1]` -> `[out, k * in]`, tap-major like the concatenated taps."""
    out_channels, in_channels, kernel, _ = weight.shape
    return weight[..., 0].permute(0, 2, 1).reshape(out_channels, kernel * in_channels)


def _convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    if not _lowers(input, weight, stride, padding, dilation, transposed, groups):
        return NotImplemented
    batch, in_channels, length, width = input.shape
    out_channels, _, kernel, _ = weight.shape
    out_length = (length + 2 * padding[0] - kernel) // stride[0] + 1
    taps = _taps(input, kernel, stride[0], padding[0], out_length)
    if in_channels == 1:
        out = taps[0] * weight[0, 0, 0, 0]
        for tap in range(1, kernel):
            out = out + taps[tap] * weight[0, 0, tap, 0]
    else:
        out = (_columns(taps) @ _weight_matrix(weight).t()).view(batch, out_length, width, out_channels)
    if bias is not None:
        out = out + bias
    return out.permute(0, 3, 1, 2)


def _convolution_backward(
    grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed, output_padding, groups, output_mask
):
    if not _lowers(input, weight, stride, padding, dilation, transposed, groups):
        return NotImplemented
    batch, in_channels, length, width = input.shape
    out_channels, _, kernel, _ = weight.shape
    out_length = grad_output.shape[2]
    grad = grad_output.permute(0, 2, 3, 1)
    grad_input = grad_weight = grad_bias = None
    if output_mask[2]:
        grad_bias = grad.sum((0, 1, 2))
    if output_mask[1]:
        taps = _taps(input, kernel, stride[0], padding[0], out_length)
        if in_channels == 1:
            grad_weight = torch.stack([(grad * tap).sum((0, 1, 2)) for tap in taps], dim=1).view(1, 1, kernel, 1)
        else:
            grad_weight = (grad.reshape(-1, out_channels).t() @ _columns(taps)).view(out_channels, kernel, in_channels)
            grad_weight = grad_weight.permute(0, 2, 1).unsqueeze(-1).contiguous()
    if output_mask[0]:
        if in_channels == 1:
            parts = [grad * weight[0, 0, tap, 0] for tap in range(kernel)]
        else:
            columns = grad.reshape(-1, out_channels) @ _weight_matrix(weight)
            parts = columns.view(batch, out_length, width, kernel, in_channels).unbind(3)
        zeros = grad.new_zeros(batch, length + 2 * padding[0], width, in_channels)
        padded = None
        for tap, part in enumerate(parts):
            end = tap + stride[0] * (out_length - 1) + 1
            scattered = aten.slice_scatter(zeros, part, 1, tap, end, stride[0])
            padded = scattered if padded is None else padded + scattered
        grad_input = padded[:, padding[0] : padding[0] + length].permute(0, 3, 1, 2)
    return grad_input, grad_weight, grad_bias


@torch.library.custom_op("harkit::channels_last_copy", mutates_args=())
def _channels_last_copy(x: torch.Tensor) -> torch.Tensor:
    """`[B, C, H, W]` -> a contiguous `[B, H, W, C]`, as an op Inductor cannot fuse: it writes the copy once."""
    return x.permute(0, 2, 3, 1).contiguous()


@_channels_last_copy.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(x.shape[0], x.shape[2], x.shape[3], x.shape[1])


def _pooling_over_time_backward(grad_output: torch.Tensor, input: torch.Tensor):
    """The gradient of `AdaptiveAvgPool2d((1, width))`, a mean over time, as a broadcast over time.

    Inductor leaves the pool's backward to ATen, whose kernel took 7 % of a SANN training step (2 threads, bf16).
    The gradient arrives from the head in `[B, C, 1, W]` order, the activations are channels-last: broadcast
    straight from it, Inductor's fused kernel read channels at a stride and ran slower than ATen. Copied first
    into `[B, 1, W, C]` (a small tensor), it fuses into the batch norm's backward as a contiguous read.
    """
    length, width = input.shape[-2:]
    if input.device.type != "cpu" or input.dim() != 4 or tuple(grad_output.shape[-2:]) != (1, width):
        return NotImplemented
    batch, channels = grad_output.shape[:2]
    grad = _channels_last_copy(grad_output).expand(batch, length, width, channels) / length
    return grad.permute(0, 3, 1, 2).to(input.dtype)


class _Decompositions(dict):
    """Inductor's decompositions plus the lowering above; pickled by reference into Inductor's cache keys.

    The FX graph cache pickles the table into its key, and some of Inductor's own entries cannot be pickled, so
    without this no graph compiled here was ever cached: every run compiled afresh (about 12 s for SANN on HAPT,
    against 2 s served from the cache).
    """

    def __reduce__(self):
        return _decompositions, ()


def _decompositions() -> _Decompositions:
    return _Decompositions(
        {
            **select_decomp_table(),
            aten.convolution.default: _convolution,
            aten.convolution_backward.default: _convolution_backward,
            aten._adaptive_avg_pool2d_backward.default: _pooling_over_time_backward,
        }
    )


class _LoweringInCacheKey(CustomGraphPass):
    """A pass that changes nothing: its uuid, this module's source, enters Inductor's cache keys.

    The caches key a graph by its code and Inductor's config, not by its decompositions; without this a graph
    compiled by plain `torch.compile` would be served here (and the other way round), or one from an older lowering.
    """

    def __call__(self, graph: torch.fx.Graph) -> None:
        return None

    def uuid(self) -> str:
        return _SOURCE_HASH


_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


# Inductor writes a fused expression out to memory once this many loads read it (its default is 4). With bf16
# activations, 8 fuses more of SANN's batch norms and attention into one pass: a compiled SANN step on HAPT's windows
# ran 3.5-4.7 % faster (sann-lstm 5 %; cnn, tiny and deepconvlstm within 1 %), but fp32 steps ran 3-5 % slower
# (2-core AMD EPYC with avx512_bf16; `tests/training/test_compile.py` checks where it applies).
BF16_CONFIG = {"realize_reads_threshold": 8}


def _inductor_with_time_convolutions(graph: torch.fx.GraphModule, example_inputs: list) -> object:
    patches = {"post_grad_custom_pre_pass": _LoweringInCacheKey()}
    # Dynamo compiles inside the caller's autocast, and recompiles if it changes.
    if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
        patches |= BF16_CONFIG
    return compile_fx(graph, example_inputs, decompositions=_decompositions(), config_patches=patches)


def compile_model(model: nn.Module, fused: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """`torch.compile(model)` for fixed-shape training; on the CPU with time-only convolutions as GEMMs.

    With `fused`, SANN's bf16 training steps on CPUs with native bf16 go through hand-fused kernels instead
    (`fused_sann.py`).
    """
    on_cpu = all(parameter.device.type == "cpu" for parameter in model.parameters())
    if on_cpu:
        try:  # Inductor would fail at the first batch, deep in its stack
            get_cpp_compiler()
        except InvalidCxxCompiler:
            raise HarkitError(
                "--compile on the CPU needs a C++ compiler (g++, or the one $CXX names); "
                "install one or train without --compile"
            ) from None
    backend = _inductor_with_time_convolutions if on_cpu else "inductor"
    compiled = torch.compile(model, dynamic=False, backend=backend)  # compiles at its first call, if any
    if on_cpu and fused:
        from harkit.training import fused_sann

        if fused_sann.applies(model):
            return fused_sann.FusedTraining(model, compiled)
    return compiled
