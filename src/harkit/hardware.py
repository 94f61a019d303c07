"""What this machine computes fast, measured, and what `--precision auto` and `--compile auto` choose from it.

Training speed depends on the CPU, and on the model, in ways no rule of thumb captures: bf16 autocast is 1.7x
faster on a CPU that computes bf16 natively (`avx512_bf16`, AMX) and slower where it is emulated; `torch.compile`
gains 1.4x on one machine and loses on another; and on one CPU (AMD EPYC with `avx512_bf16`) SANN's step is 1.6x
faster in bf16 and 1.3x compiled where `tiny`'s is 1.02x and 0.96x. So `auto` decides from a short probe on this
machine: GEMM throughput in fp32 and bf16, and a few training steps of the run's own model, at its window,
channels and classes, in each precision from the same weights on the same learnable synthetic batches (speed, and
the accuracy they reach). Whether compiling pays off is measured too, but only when the run is long enough for it
to possibly pay off. Results are cached as JSON per machine, threads, torch version and model under the cache
directory. The choices themselves (`choose_precision`, `choose_compile`) are pure functions of the facts and the
measured numbers, so they are tested without timing anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from harkit import HarkitError

log = logging.getLogger(__name__)

# bf16 must beat fp32 by this factor in the probe's training step to be chosen: within it, noise decides.
BF16_MIN_SPEEDUP = 1.1
# bf16 may lose at most this much probe accuracy against fp32 (same weights, same batches).
BF16_MAX_ACCURACY_LOSS = 0.02
# Compiling a SANN training graph takes 10-20 s on a 2-core CPU; a run shorter than this cannot win it back.
MIN_COMPILE_SECONDS = 10.0
PROBE_BATCH = 128
PROBE_VERSION = 1  # bump when the probe changes, so old cache entries are measured again
# The compiled step the probe times is harkit's lowering (`training/compile.py`, and SANN's fused kernels): an
# edited lowering is measured again. Hashed from the files, not imported: importing compile.py loads Inductor (2 s).
_LOWERING_FILES = ("compile.py", "fused_sann.py", "fused_sann.c")
LOWERING_HASH = hashlib.sha256(
    b"".join((Path(__file__).parent / "training" / name).read_bytes() for name in _LOWERING_FILES)
).hexdigest()[:16]


@dataclass(frozen=True)
class Machine:
    """The facts about this machine that decide how fast training runs."""

    cpu: str
    avx2: bool
    avx512: bool
    avx512_bf16: bool
    amx: bool
    capability: str  # the widest vector code PyTorch's CPU kernels use here
    cores: int  # CPUs this process may run on
    threads: int  # PyTorch intra-op threads
    torch: str
    onnxruntime: str | None
    cuda: str | None  # the GPU's name, or None

    @property
    def native_bf16(self) -> bool:
        """Whether the CPU multiplies bf16 matrices in hardware rather than emulating it in fp32."""
        return self.avx512_bf16 or self.amx

    def key(self, device: str) -> str:
        """Names the cache entry: the probe's numbers hold for this CPU, thread count, torch, device and lowering."""
        text = (
            f"{self.cpu}|{self.capability}|{self.native_bf16}|{self.threads}|{self.torch}|{device}|{PROBE_VERSION}"
            f"|{LOWERING_HASH}"
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        if model and flags:
            break
    return model or platform.processor() or platform.machine(), flags


def machine_facts() -> Machine:
    """CPU model and instruction sets (from /proc/cpuinfo where there is one), threads and library versions."""
    cpu, flags = _cpuinfo()
    capability = torch.backends.cpu.get_cpu_capability()
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return Machine(
        cpu=cpu,
        avx2="avx2" in flags or capability in ("AVX2", "AVX512"),
        avx512="avx512f" in flags or capability == "AVX512",
        avx512_bf16="avx512_bf16" in flags,
        amx="amx_bf16" in flags,
        capability=capability,
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        onnxruntime=ort_version,
        cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    )


def matmul_gflops(dtype: torch.dtype = torch.float32, seconds: float = 0.5, size: int = 512) -> float:
    """Measured matrix-multiply throughput in GFLOP/s: square `size` products repeated for about `seconds`."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    out = torch.empty(size, size, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up: oneDNN picks and caches its kernel
    repeats, began = 0, time.perf_counter()
    best = 0.0
    while (elapsed := time.perf_counter() - began) < seconds or repeats < 3:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        # The fastest product is the machine's; slower ones met other processes on the same cores.
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
        repeats += 1
        if elapsed > 10 * seconds:
            break
    return best


@dataclass(frozen=True)
class ProbeModel:
    """The model a probe measures, at the shape of the run it decides for (`harkit doctor`: SANN on HAPT)."""

    name: str = "sann"
    window: int = 128
    channels: int = 6
    classes: int = 6
    options: tuple = ()  # the model options as sorted (name, value) pairs

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


SANN_ON_HAPT = ProbeModel()


@dataclass
class Probe:
    """Measured numbers `auto` decides from; `None` where not measured (yet)."""

    fp32_gflops: float
    bf16_gflops: float
    model: str = "sann"  # the model whose steps were measured
    fp32_step_ms: float | None = None  # median training step, batch PROBE_BATCH
    bf16_step_ms: float | None = None
    fp32_accuracy: float | None = None  # on held-out synthetic windows after the same steps
    bf16_accuracy: float | None = None
    compile_precision: str | None = None  # the precision the compile numbers were measured in
    compiled_step_ms: float | None = None
    compile_seconds: float | None = None  # one-time cost: compiling the forward and backward graphs
    measured: dict = field(default_factory=dict)  # when and how, for the record

    def step_ms(self, precision: str) -> float | None:
        return self.bf16_step_ms if precision == "bf16" else self.fp32_step_ms


@dataclass(frozen=True)
class Choice:
    """What `auto` chose and why, in words a log line and `doctor` can print."""

    value: str | bool
    reason: str


def choose_precision(machine: Machine, probe: Probe | None, device: str = "cpu") -> Choice:
    """fp32 or bf16 on the CPU: bf16 only where native, measurably faster and as accurate; CUDA: bf16 or fp16."""
    if device.startswith("cuda"):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return Choice("bf16", "the GPU supports bf16, which needs no gradient scaling")
        return Choice("fp16", "fp16 with gradient scaling: the GPU has no bf16")
    if not machine.native_bf16:
        return Choice("fp32", f"{machine.cpu} has no native bf16 (avx512_bf16 or AMX): bf16 would be emulated")
    if probe is None or probe.fp32_step_ms is None or probe.bf16_step_ms is None:
        return Choice("fp32", "bf16 not measured on this machine")
    speedup = probe.fp32_step_ms / probe.bf16_step_ms
    numbers = (
        f"{probe.model} step {probe.bf16_step_ms:.0f} ms bf16 against {probe.fp32_step_ms:.0f} ms fp32 ({speedup:.2f}x)"
    )
    if speedup < BF16_MIN_SPEEDUP:
        return Choice("fp32", f"bf16 is native but not faster enough: {numbers}, below {BF16_MIN_SPEEDUP}x")
    if probe.bf16_accuracy is None or probe.fp32_accuracy is None:
        return Choice("fp32", f"{numbers}, but its accuracy was not measured")
    if probe.bf16_accuracy < probe.fp32_accuracy - BF16_MAX_ACCURACY_LOSS:
        return Choice(
            "fp32",
            f"{numbers}, but it reached accuracy {probe.bf16_accuracy:.3f} against {probe.fp32_accuracy:.3f}",
        )
    return Choice(
        "bf16",
        f"native bf16 and faster at equal accuracy: {numbers}, accuracy {probe.bf16_accuracy:.3f} against "
        f"{probe.fp32_accuracy:.3f}",
    )


def compile_setting(value: bool | str | None) -> bool | str:
    """`True`, `False` or `"auto"` from what a config file, the CLI or Python passed."""
    if value is None or isinstance(value, bool):
        return "auto" if value is None else value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("true", "on", "yes", "1"):
        return True
    if text in ("false", "off", "no", "0"):
        return False
    raise HarkitError(f"compile must be true, false or auto, got {value!r}")


def _eager_seconds(probe: Probe | None, precision: str, steps: int, batch_size: int) -> float | None:
    """The run's eager training time estimated from the probe's step, scaled to the batch size."""
    step_ms = probe.step_ms(precision) if probe else None
    return None if step_ms is None else steps * step_ms / 1000 * batch_size / PROBE_BATCH


def could_pay_off(probe: Probe | None, precision: str, steps: int, batch_size: int) -> bool:
    """Whether the run is long enough for compiling to possibly win back its cost."""
    eager_seconds = _eager_seconds(probe, precision, steps, batch_size)
    return eager_seconds is not None and eager_seconds >= MIN_COMPILE_SECONDS


def compile_needs_measuring(probe: Probe | None, precision: str, steps: int, batch_size: int) -> bool:
    """Whether the compile numbers are missing and the run is long enough for compiling to possibly pay off."""
    measured = probe is not None and probe.compile_precision == precision and probe.compiled_step_ms is not None
    return not measured and could_pay_off(probe, precision, steps, batch_size)


def choose_compile(
    setting: bool | str,
    probe: Probe | None,
    precision: str,
    steps: int,
    batch_size: int = PROBE_BATCH,
    compiler: bool = True,
) -> Choice:
    """Whether to compile a run of `steps` training steps: where the time it saves exceeds the time compiling takes.

    The saving is the probe's step (scaled to `batch_size`) times `steps` times the fraction compiling saves.
    """
    setting = compile_setting(setting)
    if isinstance(setting, bool):
        return Choice(setting, "set explicitly")
    eager_seconds = _eager_seconds(probe, precision, steps, batch_size)
    if eager_seconds is None:
        return Choice(False, "the eager training step was not measured")
    if eager_seconds < MIN_COMPILE_SECONDS:
        return Choice(
            False,
            f"the run's {steps} steps take about {eager_seconds:.0f} s eager, less than compiling alone "
            f"(at least {MIN_COMPILE_SECONDS:.0f} s)",
        )
    if not compiler:
        return Choice(False, "no C++ compiler for Inductor on this machine")
    step_ms = probe.step_ms(precision)
    if probe.compiled_step_ms is None or probe.compile_seconds is None or probe.compile_precision != precision:
        return Choice(False, f"compiled {precision} steps were not measured")
    saved = eager_seconds * (1 - probe.compiled_step_ms / step_ms)
    numbers = (
        f"{probe.model} step {probe.compiled_step_ms:.0f} ms compiled against {step_ms:.0f} ms eager ({precision}), "
        f"{probe.compile_seconds:.0f} s to compile"
    )
    if saved <= probe.compile_seconds:
        return Choice(False, f"{numbers}: over {steps} steps it would save {saved:.0f} s, less than compiling costs")
    return Choice(True, f"{numbers}: over {steps} steps it saves about {saved - probe.compile_seconds:.0f} s net")


# ---- measuring ---------------------------------------------------------------------------------------------


def _synthetic(count: int, generator: torch.Generator, spec: ProbeModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable windows: each class a sine of its own frequency on its own channel, in noise."""
    y = torch.randint(0, spec.classes, (count,), generator=generator)
    time_axis = torch.arange(spec.window, dtype=torch.float32)
    x = torch.randn(count, spec.window, spec.channels, generator=generator)
    frequency = (y.float() + 1) * 2 * torch.pi / 32
    signal = torch.sin(frequency[:, None] * time_axis[None, :])
    x[torch.arange(count), :, y % spec.channels] += 3 * signal
    return x, y


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stepper(device: torch.device, precision: str, compile: bool, spec: ProbeModel) -> tuple[Callable, torch.nn.Module]:
    """A training step of the probed model on the probe's batches, from seeded weights."""
    from harkit.models import create_model

    torch.manual_seed(0)
    model = create_model(spec.name, spec.window, spec.channels, spec.classes, **dict(spec.options)).to(device)
    forward = model
    if compile:
        from harkit.training.compile import compile_model

        forward = compile_model(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    autocast = _autocast(device, precision)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast:
            loss = torch.nn.functional.cross_entropy(forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, model


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str) -> float:
    # In training mode: after a few steps batch norm's running statistics are still far from the data's.
    with torch.no_grad(), _autocast(x.device, precision):
        predictions = model(x).float().argmax(1)
    return float((predictions == y).float().mean())


def measure_steps(device: torch.device, spec: ProbeModel = SANN_ON_HAPT, steps: int = 8) -> dict:
    """Median fp32 and bf16 step times, interleaved, and the accuracy each reaches from the same start."""
    generator = torch.Generator().manual_seed(0)
    batches = [tuple(t.to(device) for t in _synthetic(PROBE_BATCH, generator, spec)) for _ in range(steps)]
    x_test, y_test = (t.to(device) for t in _synthetic(512, generator, spec))
    steppers = {precision: _stepper(device, precision, False, spec) for precision in ("fp32", "bf16")}
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for x, y in batches:
        for precision, (step, _) in steppers.items():  # alternating keeps both under the same machine load
            _sync(device)
            began = time.perf_counter()
            step(x, y)
            _sync(device)
            times[precision].append((time.perf_counter() - began) * 1000)
    result = {}
    for precision, (_, model) in steppers.items():
        result[f"{precision}_step_ms"] = statistics.median(times[precision][2:])  # the first steps warm up
        result[f"{precision}_accuracy"] = _accuracy(model, x_test, y_test, precision)
    return result


def measure_compile(device: torch.device, precision: str, spec: ProbeModel = SANN_ON_HAPT, steps: int = 6) -> dict:
    """Seconds to compile the step and the median compiled step, against eager steps interleaved with it."""
    # A process that compiled this model before would serve its graph to the probe's fresh copy, and the probe
    # would time no compiling at all: forget every compiled graph first (training compiles lazily, after this).
    torch._dynamo.reset()
    generator = torch.Generator().manual_seed(0)
    x, y = (t.to(device) for t in _synthetic(PROBE_BATCH, generator, spec))
    eager, _ = _stepper(device, precision, False, spec)
    compiled, _ = _stepper(device, precision, True, spec)
    eager(x, y)
    began = time.perf_counter()
    compiled(x, y)  # compiles the forward and backward graphs
    _sync(device)
    first = time.perf_counter() - began
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(steps):
        for name, step in (("eager", eager), ("compiled", compiled)):
            _sync(device)
            began = time.perf_counter()
            step(x, y)
            _sync(device)
            times[name].append((time.perf_counter() - began) * 1000)
    compiled_ms, eager_ms = statistics.median(times["compiled"][1:]), statistics.median(times["eager"][1:])
    return {
        "compile_precision": precision,
        "compiled_step_ms": compiled_ms,
        "compile_seconds": max(0.0, first - compiled_ms / 1000),
        # Relative to eager steps measured alongside, then expressed against the cached eager step.
        "compile_ratio": compiled_ms / eager_ms,
    }


def probe_path(machine: Machine, device: str, spec: ProbeModel = SANN_ON_HAPT) -> Path:
    """Where the probe of this machine, thread count, torch version, device and model is cached."""
    from harkit.datasets.download import default_cache_dir

    return default_cache_dir() / "hardware" / f"probe-{machine.key(device)}-{spec.key()}.json"


def _save(path: Path, machine: Machine, probe: Probe) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(json.dumps({"machine": asdict(machine), "probe": asdict(probe)}, indent=2))
    os.replace(staging, path)


def load_probe(machine: Machine, device: str, spec: ProbeModel = SANN_ON_HAPT) -> Probe | None:
    """The cached probe of this machine and model, or None."""
    path = probe_path(machine, device, spec)
    try:
        data = json.loads(path.read_text())["probe"]
        return Probe(**{k: v for k, v in data.items() if k in Probe.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: measured again


def measured_probe(
    machine: Machine,
    device: torch.device,
    precision: str | None = None,
    steps: int = 0,
    batch_size: int = PROBE_BATCH,
    fresh: bool = False,
    spec: ProbeModel = SANN_ON_HAPT,
) -> Probe:
    """The probe from the cache, measuring what is missing.

    The precisions are always measured; the compile numbers only when a run of `steps` steps in `precision` is
    long enough to need them.
    """
    path = probe_path(machine, str(device), spec)
    with _measuring_alone(path):
        return _measured_probe(machine, device, precision, steps, batch_size, fresh, spec, path)


@contextlib.contextmanager
def _measuring_alone(path: Path) -> Iterator[None]:
    """One process at a time reads or measures a probe.

    A grid's other workers wait, then read what it cached, instead of measuring at the same time, each under the
    other's load, and perhaps deciding otherwise.
    """
    try:
        import fcntl
    except ImportError:  # Windows: each process measures for itself
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def _measured_probe(
    machine: Machine,
    device: torch.device,
    precision: str | None,
    steps: int,
    batch_size: int,
    fresh: bool,
    spec: ProbeModel,
    path: Path,
) -> Probe:
    probe = None if fresh else load_probe(machine, str(device), spec)
    changed = False
    if probe is None:
        log.info("measuring %s on this machine once for auto precision and compile (cached in %s)", spec.name, path)
        # A few seconds in all on an idle machine: it runs before the first training run of a fresh cache.
        bf16 = matmul_gflops(torch.bfloat16, 0.25) if device.type == "cpu" else 0.0
        probe = Probe(fp32_gflops=matmul_gflops(torch.float32, 0.25), bf16_gflops=bf16, model=spec.name)
        if device.type != "cpu" or machine.native_bf16:
            for key, value in measure_steps(device, spec).items():
                setattr(probe, key, value)
        else:  # bf16 is not a candidate: only the fp32 step, for the compile decision
            step, _ = _stepper(device, "fp32", False, spec)
            x, y = _synthetic(PROBE_BATCH, torch.Generator().manual_seed(0), spec)
            times = []
            for _ in range(6):
                began = time.perf_counter()
                step(x, y)
                times.append((time.perf_counter() - began) * 1000)
            probe.fp32_step_ms = statistics.median(times[2:])
        probe.measured = {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "threads": machine.threads}
        changed = True
    if precision is not None and compile_needs_measuring(probe, precision, steps, batch_size):
        log.info("measuring torch.compile of %s once on this machine (%s)", spec.name, precision)
        numbers = measure_compile(device, precision, spec)
        probe.compile_precision = numbers["compile_precision"]
        probe.compile_seconds = numbers["compile_seconds"]
        eager_ms = probe.step_ms(precision)
        probe.compiled_step_ms = eager_ms * numbers["compile_ratio"] if eager_ms else numbers["compiled_step_ms"]
        changed = True
    if changed:
        _save(path, machine, probe)
    return probe


def has_compiler() -> bool:
    """Whether Inductor finds a C++ compiler (needed to compile on the CPU)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
        return True
    except Exception:  # InvalidCxxCompiler, or an Inductor that moved it
        return False


def resolve_precision(device: torch.device, precision: str, spec: ProbeModel = SANN_ON_HAPT) -> tuple[str, str]:
    """The precision a run of `spec` uses and why: `auto` decides from its probe, anything else is as asked."""
    if precision != "auto":
        return precision, "set explicitly"
    if device.type == "cuda":
        choice = choose_precision(machine_facts(), None, "cuda")
        return str(choice.value), choice.reason
    machine = machine_facts()
    probe = measured_probe(machine, device, spec=spec) if machine.native_bf16 else None
    choice = choose_precision(machine, probe, device.type)
    return str(choice.value), choice.reason


def resolve_compile(
    setting: bool | str | None,
    device: torch.device,
    precision: str,
    steps: int,
    batch_size: int,
    spec: ProbeModel = SANN_ON_HAPT,
) -> tuple[bool, str]:
    """Whether a run of `spec` for `steps` steps compiles, and why; `auto` measures on this machine if it needs to."""
    setting = compile_setting(setting)
    if isinstance(setting, bool):
        return setting, "set explicitly"
    machine = machine_facts()
    probe = measured_probe(machine, device, spec=spec)
    compiler = True  # a run too short to win compiling back is refused for that, compiler or not
    if could_pay_off(probe, precision, steps, batch_size):
        # Only now look for a compiler: importing Inductor takes seconds.
        compiler = device.type != "cpu" or has_compiler()
        if compiler:
            probe = measured_probe(machine, device, precision, steps, batch_size, spec=spec)
    choice = choose_compile(setting, probe, precision, steps, batch_size, compiler)
    return bool(choice.value), choice.reason


# glibc's mallopt parameters, and the value both are set to: no block a training step frees is large enough
# to go back to the kernel.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, KEPT_BYTES = -1, -3, 1 << 30
_allocator_setting: str | None = None


def keep_freed_memory() -> str | None:
    """Make glibc keep freed memory for reuse instead of handing it back to the kernel; says what it did.

    Every training step frees and allocates the same large activation buffers. By default glibc returns them
    to the kernel, which zero-fills fresh pages at their next use: 11-30 thousand page faults in a SANN step on
    HAPT's shape, whose steps ran 1.32x faster compiled in bf16 and 1.15x in fp32 eager with freed memory kept
    (2-core AMD EPYC, `benchmarks/allocator_speed.py`).
    The setting is process-wide and lasts: the process keeps the memory it peaked at. None where the C library
    is not glibc (macOS, musl), which is left as it is.
    """
    global _allocator_setting
    if _allocator_setting is None and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        if libc.mallopt(M_MMAP_THRESHOLD, KEPT_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, KEPT_BYTES):
            _allocator_setting = "glibc keeps freed blocks up to 1 GiB for reuse (mmap and trim thresholds)"
    return _allocator_setting


def agree(values: tuple, world: int) -> tuple:
    """The main process's `values` on every process of a `torchrun` group (each would measure differently)."""
    if world <= 1:
        return values
    box = [values]
    torch.distributed.broadcast_object_list(box, src=0)
    return tuple(box[0])


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HarkitError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    return device


# A cached probe whose fp32 matrix multiply ran below this share of today's was measured on a busy machine.
BUSY_FRACTION = 0.5


def doctor(
    device: str = "cpu", steps: int = 1800, batch_size: int = PROBE_BATCH, fresh: bool = False
) -> dict[str, object]:
    """Everything `harkit doctor` prints: machine facts, GEMM throughput, the probe and what `auto` chooses.

    `steps` is the length of the run the compile choice is made for (30 epochs of HAPT at batch 128: 1800).
    """
    machine = machine_facts()
    torch_device = pick_device(device)
    gflops = {
        "fp32": matmul_gflops(torch.float32, seconds=0.75),
        "bf16": matmul_gflops(torch.bfloat16, seconds=0.75),
    }
    if fresh:
        measured_probe(machine, torch_device, fresh=True)
    precision, precision_reason = resolve_precision(torch_device, "auto")
    use_compile, compile_reason = resolve_compile("auto", torch_device, precision, steps, batch_size)
    probe = load_probe(machine, str(torch_device))
    warning = None
    # The probe is cached as measured; one taken while other jobs held the cores keeps their slowness.
    if probe is not None and probe.fp32_gflops < BUSY_FRACTION * gflops["fp32"]:
        warning = (
            f"the cached probe was measured while the machine was busy (matrix multiply then {probe.fp32_gflops:.0f} "
            f"GFLOP/s fp32, now {gflops['fp32']:.0f}): its step times are not this machine's; run "
            "`harkit doctor --fresh` when it is idle"
        )
    return {
        "machine": machine,
        "gflops": gflops,
        "probe": probe,
        "probe_warning": warning,
        "probe_path": probe_path(machine, str(torch_device)),
        "precision": Choice(precision, precision_reason),
        "compile": Choice(use_compile, compile_reason),
        "steps": steps,
    }


def facts_lines(machine: Machine | None = None, gflops: dict[str, float] | None = None) -> list[str]:
    """The machine facts as short lines, for the top of every benchmark's output."""
    machine = machine or machine_facts()
    sets = [name for name, has in (("AVX2", machine.avx2), ("AVX-512", machine.avx512)) if has]
    sets += [name for name, has in (("avx512_bf16", machine.avx512_bf16), ("AMX", machine.amx)) if has]
    lines = [
        f"CPU: {machine.cpu}; instruction sets: {', '.join(sets) or 'none of AVX2, AVX-512, avx512_bf16, AMX'}; "
        f"PyTorch kernels: {machine.capability}; native bf16: {'yes' if machine.native_bf16 else 'no'}",
        f"threads: {machine.threads} of {machine.cores} CPUs; torch {machine.torch}, onnxruntime "
        f"{machine.onnxruntime or 'not installed'}" + (f"; GPU: {machine.cuda}" if machine.cuda else ""),
    ]
    if gflops:
        lines.append("matrix multiply: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in gflops.items()))
    return lines
