"""SANN's bf16 training step on the CPU through hand-fused kernels (`fused_sann.c`) instead of Inductor's.

A SANN stage is a `(3, 1)` convolution with stride 2, then spatial attention, batch norm and ReLU. Here the
convolution is one bf16 matrix product over the stage's input columns (its three taps side by side, as
`compile.py` lowers it) and everything after it is two C kernel passes over the batch: the attention's mean
over channels, its 3-tap convolution and the batch's statistics, then the normalized, rectified output written
straight into the next stage's columns (or averaged over time for the head). The backward pass folds the next
stage's column gradients back, masks them, and runs batch norm's and the attention's gradients in two passes.
Values are stored in bf16 and computed in fp32; against the model in float64 the gradients are about as close
as eager bf16 autocast's, closer for most parameters (`tests/training/test_fused_sann.py`).

Against Inductor's graph of the same step (`compile.py`) on a 2-core AMD EPYC with avx512_bf16, batch 128 of
HAPT's windows: 91.5 ms a step against 107.1 ms, and 173.0 ms eager (`python benchmarks/compile_speed.py
--models sann --precision bf16`); whole epochs 2.85x and 2.91x the article's recipe against 2.29-2.56x
(`benchmarks/train_speed.py`). Of an 80 ms step, the matrix products take about 66 ms, the kernels 12 ms, and
Python, autograd and the optimizer under 3 ms.
It applies where PyTorch runs AVX-512 kernels and the CPU has avx512_bf16, to SANN with the published stage
shapes and channel counts that are multiples of 16, in training mode under bf16 autocast; `compile_model`
hands everything else to Inductor. The kernels are built once with the C compiler (`$CC`, else `cc`) into
harkit's cache folder.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.autograd.function import once_differentiable

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("fused_sann.c")
# The instruction sets named, not -march=native: a build in a cache shared between machines runs on each that
# has them (and `applies` checks that this one does). As fast as -march=native on an AMD EPYC with AVX-512.
FLAGS = (
    "-O3",
    "-mavx512f",
    "-mavx512bw",
    "-mavx512vl",
    "-mavx512dq",
    "-mavx512bf16",
    "-mfma",
    "-fopenmp",
    "-fPIC",
    "-shared",
)
BLOCK = 16  # channels per AVX-512 vector in the kernels: every stage's channels must be a multiple
_bf16 = torch.bfloat16


class _Stage(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in ("batch", "length", "width", "channels", "in_length")] + [
        (name, ctypes.c_void_p) for name in ("y", "x", "taps", "bias", "att", "scale", "shift", "mean", "a", "s")
    ]


def _pointer(tensor: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if tensor is None else tensor.data_ptr())


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")


def _build(folder: Path) -> Path:
    """The kernels' shared library in `folder`, compiled for this machine unless it is there already."""
    compiler = _compiler()
    if compiler is None:
        raise OSError("no C compiler ($CC, cc or gcc)")
    key = hashlib.sha256(SOURCE.read_bytes() + f"{compiler}|{FLAGS}".encode()).hexdigest()[:16]
    path = folder / f"fused_sann-{key}.so"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as staging:  # another process may build it at the same time
            built = Path(staging) / path.name
            command = [compiler, *FLAGS, "-o", str(built), str(SOURCE)]
            subprocess.run(command, check=True, capture_output=True, text=True)
            os.replace(built, path)
    return path


_LIBRARY: list = []  # [the loaded library, or None where it could not be built]


def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None where this CPU cannot run them or they cannot be built (logged once)."""
    if not _LIBRARY and not native_bf16():
        _LIBRARY.append(None)  # AVX-512 code would stop the process with an illegal instruction
    if not _LIBRARY:
        from harkit.datasets.download import default_cache_dir

        try:
            lib = ctypes.CDLL(str(_build(default_cache_dir() / "kernels")))
            pointers = {"stage_statistics": 2, "stage_output": 2, "stage_gradient_sums": 4, "stage_input_gradient": 8}
            for name, count in pointers.items():  # checked calls: (Stage, pointers..., threads) -> status
                function = getattr(lib, name)
                function.argtypes = [_Stage, *[ctypes.c_void_p] * count, ctypes.c_int]
                function.restype = None if name == "stage_output" else ctypes.c_int
            _LIBRARY.append(lib)
        except (OSError, AttributeError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or error
            log.warning("SANN's fused kernels could not be built (%s); Inductor compiles the model instead", detail)
            _LIBRARY.append(None)
    return _LIBRARY[0]


def _check(status: int) -> None:
    if status:
        raise MemoryError("SANN's fused kernels could not allocate their working memory")


def _stage_struct(geometry, source, taps, bias, att, scale=None, shift=None, mean=None, a=None, s=None) -> _Stage:
    first = source.dtype != _bf16
    y, x = (None, source) if first else (source, None)
    pointers = (y, x, taps, bias, att, scale, shift, mean, a, s)
    return _Stage(*geometry, *(None if t is None else t.data_ptr() for t in pointers))


class _StageTail(torch.autograd.Function):
    """Bias, attention, batch norm (training) and ReLU of one stage; out: next columns or the mean over time."""

    @staticmethod
    def forward(ctx, source, weight, bias, att, gamma, beta, norm, geometry, last):
        lib, threads = library(), torch.get_num_threads()
        batch, length, width, channels, _ = geometry
        if channels % BLOCK or lib is None:  # the kernels would run past the rows, or stop the process
            raise ValueError(
                f"SANN's fused kernels need a CPU with AVX-512 and bf16, a build, and a multiple of {BLOCK} channels"
            )
        first = source.dtype != _bf16
        taps = weight.detach().reshape(channels, 3).t().contiguous() if first else None
        bias, att, gamma, beta = (t.detach().float().contiguous() for t in (bias, att, gamma, beta))
        rows = batch * length * width
        a = torch.empty(rows)
        s = torch.empty(rows)
        mean, var = torch.empty(channels), torch.empty(channels)
        stage = _stage_struct(geometry, source, taps, bias, att, a=a, s=s)
        _check(lib.stage_statistics(stage, _pointer(mean), _pointer(var), threads))
        invstd = torch.rsqrt(var + norm.eps)
        scale = gamma * invstd
        shift = beta - mean * scale
        stage = _stage_struct(geometry, source, taps, bias, att, scale, shift, mean, a, s)
        if last:
            out = torch.empty(batch, width, channels)
            lib.stage_output(stage, None, _pointer(out), threads)
        else:
            out = torch.empty(batch * ((length - 1) // 2 + 1) * width, 3 * channels, dtype=_bf16)
            lib.stage_output(stage, _pointer(out), None, threads)
        with torch.no_grad():  # as nn.BatchNorm2d: the unbiased variance goes into the running one
            norm.running_mean.lerp_(mean, norm.momentum)
            norm.running_var.lerp_(var * (rows / max(rows - 1, 1)), norm.momentum)
            norm.num_batches_tracked.add_(1)
        ctx.save_for_backward(source, taps, bias, att, a, s, mean, invstd, scale, shift)
        ctx.geometry, ctx.last = geometry, last
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        source, taps, bias, att, a, s, mean, invstd, scale, shift = ctx.saved_tensors
        lib, threads = library(), torch.get_num_threads()
        batch, length, width, channels, _ = ctx.geometry
        first = source.dtype != _bf16
        stage = _stage_struct(ctx.geometry, source, taps, bias, att, scale, shift, mean, a, s)
        dcolumns = None if ctx.last else grad.to(_bf16).contiguous()
        dpooled = grad.float().contiguous() if ctx.last else None
        sum_g, sum_gd = torch.empty(channels), torch.empty(channels)
        gradient = (_pointer(dcolumns), _pointer(dpooled))
        _check(lib.stage_gradient_sums(stage, *gradient, _pointer(sum_g), _pointer(sum_gd), threads))
        rows = batch * length * width
        k1 = scale * invstd * invstd * sum_gd / rows
        k0 = -scale * sum_g / rows
        dy = None if first else torch.empty_like(source)
        dtaps = torch.empty(3, channels) if first else None
        dbias, datt = torch.empty(channels), torch.empty(4)
        outputs = (_pointer(dy), _pointer(dtaps), _pointer(dbias), _pointer(datt))
        _check(lib.stage_input_gradient(stage, *gradient, _pointer(k1), _pointer(k0), *outputs, threads))
        dweight = dtaps.t().reshape(channels, 1, 3, 1) if first else None
        return dy, dweight, dbias, datt, invstd * sum_gd, sum_g, None, None, None


class _StageMatmul(torch.autograd.Function):
    """A stage's convolution on its input columns: `columns @ W.T`, W as `[out, 3 * in]` (tap-major), in bf16."""

    @staticmethod
    def forward(ctx, columns, weight):
        out_channels, in_channels = weight.shape[:2]
        # Converted first, then reordered: the reordering reads at a stride, half as many bytes in bf16.
        matrix = weight.detach().to(_bf16)[..., 0].permute(0, 2, 1).contiguous().view(out_channels, 3 * in_channels)
        ctx.save_for_backward(columns, matrix)
        return torch.mm(columns, matrix.t())

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        columns, matrix = ctx.saved_tensors
        out_channels, width = matrix.shape
        # The weight's gradient first, while dy is in cache, then the columns' (as Inductor orders them).
        dweight = torch.mm(dy.t(), columns).float().view(out_channels, 3, width // 3).permute(0, 2, 1)
        dweight = dweight.contiguous().unsqueeze(-1)  # contiguous, so that the weight's .grad takes it as it is
        return torch.mm(dy, matrix), dweight


def _stages_fit(model: nn.Module) -> bool:
    from harkit.models.sann import ConvStage, SpatialAttentionModule, SpatialAttentionNeuralNetwork

    if type(model) is not SpatialAttentionNeuralNetwork:
        return False
    for index, stage in enumerate(model.stages):
        if not (isinstance(stage, ConvStage) and len(stage) == 4 and isinstance(stage[1], SpatialAttentionModule)):
            return False
        conv, attention, norm = stage[0], stage[1], stage[2]
        if (
            conv.kernel_size != (3, 1)
            or conv.stride != (2, 1)
            or conv.padding != (1, 0)
            or conv.bias is None
            or conv.out_channels % BLOCK
            or (index == 0) != (conv.in_channels == 1)
            or attention.conv.kernel_size != (3, 1)
            or attention.conv.padding != (1, 0)
            or attention.conv.stride != (1, 1)
            or not (norm.affine and norm.track_running_stats and norm.momentum is not None)
        ):
            return False
    return True


def applies(model: nn.Module) -> bool:
    """Whether SANN's fused kernels can train `model` here: its shape, a CPU with native bf16, and a build."""
    on_cpu = all(parameter.device.type == "cpu" for parameter in model.parameters())
    return on_cpu and _stages_fit(model) and library() is not None


def native_bf16() -> bool:
    """Whether PyTorch runs AVX-512 kernels here and the CPU has avx512_bf16 (what the kernels were measured on)."""
    bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return torch.backends.cpu.get_cpu_capability() == "AVX512" and bool(bf16)


def fused_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SANN's forward pass in training mode through the fused kernels; `x` is `[batch, time, channels]`."""
    batch, in_length, width = x.shape
    source = x.float().contiguous()
    stages = model.stages
    for index, (conv, attention, norm, _) in enumerate(stages):
        length = (in_length - 1) // 2 + 1
        att = torch.cat([attention.conv.weight.reshape(3), attention.conv.bias.reshape(1)])
        if index == 0:
            inputs, weight = source, conv.weight
        else:
            inputs, weight = _StageMatmul.apply(source, conv.weight), None
        geometry = (batch, length, width, conv.out_channels, in_length if index == 0 else 0)
        source = _StageTail.apply(
            inputs, weight, conv.bias, att, norm.weight, norm.bias, norm, geometry, index == len(stages) - 1
        )
        in_length = length
    # The pooled features come as [B, W, C]; the head reads [B, C, W] flattened: permute its weight (classes x
    # C x W) to match, not the features, forward and backward.
    head = model.head
    weight = head.weight.view(head.out_features, -1, width).transpose(1, 2).reshape(head.out_features, -1)
    return nn.functional.linear(model.dropout(source.reshape(batch, -1)), weight, head.bias)


class FusedTraining:
    """Calls SANN's fused training forward where it applies (training, bf16 autocast on the CPU), else `other`."""

    def __init__(self, model: nn.Module, other: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.model, self.other = model, other

    def fuses(self, x: torch.Tensor) -> bool:
        """Whether `x` goes through the kernels (which take any batch size) rather than `other`."""
        return bool(
            self.model.training
            and x.dim() == 3
            and x.shape[2] == self.model.pool.output_size[1]  # else the pool averages over channels too
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == _bf16
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return fused_forward(self.model, x) if self.fuses(x) else self.other(x)
