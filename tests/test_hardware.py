"""What `auto` chooses from injected machine facts and probe numbers (no timing), and the probe's cache."""

import json
import platform
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from harkit import HarkitError, hardware
from harkit.hardware import Machine, Probe, choose_compile, choose_precision, compile_setting

ZEN4 = Machine(
    cpu="AMD EPYC",
    avx2=True,
    avx512=True,
    avx512_bf16=True,
    amx=False,
    capability="AVX512",
    cores=2,
    threads=2,
    torch="2.13.0",
    onnxruntime="1.22",
    cuda=None,
)
XEON_NO_BF16 = replace(ZEN4, cpu="Intel Xeon", avx512_bf16=False)
SAPPHIRE = replace(ZEN4, cpu="Intel Xeon Sapphire Rapids", avx512_bf16=False, amx=True)


def probe(**numbers) -> Probe:
    values = {
        "fp32_gflops": 150.0,
        "bf16_gflops": 300.0,
        "fp32_step_ms": 200.0,
        "bf16_step_ms": 116.0,
        "fp32_accuracy": 0.95,
        "bf16_accuracy": 0.95,
    }
    return Probe(**(values | numbers))


def test_bf16_where_native_faster_and_as_accurate():
    choice = choose_precision(ZEN4, probe(), "cpu")
    assert choice.value == "bf16"
    assert "1.72x" in choice.reason


def test_amx_counts_as_native_bf16():
    assert choose_precision(SAPPHIRE, probe(), "cpu").value == "bf16"


def test_no_bf16_where_emulated_even_if_the_probe_says_faster():
    choice = choose_precision(XEON_NO_BF16, probe(), "cpu")
    assert choice.value == "fp32"
    assert "no native bf16" in choice.reason


@pytest.mark.parametrize(("bf16_ms", "expected"), [(195.0, "fp32"), (185.0, "fp32"), (180.0, "bf16")])
def test_bf16_must_be_measurably_faster(bf16_ms, expected):
    # 200 / 185 = 1.08x is within noise (below 1.1x); 200 / 180 = 1.11x counts
    assert choose_precision(ZEN4, probe(bf16_step_ms=bf16_ms), "cpu").value == expected


def test_bf16_refused_when_less_accurate():
    choice = choose_precision(ZEN4, probe(bf16_accuracy=0.90), "cpu")
    assert choice.value == "fp32"
    assert "0.900" in choice.reason
    assert choose_precision(ZEN4, probe(bf16_accuracy=0.94), "cpu").value == "bf16"  # within 0.02


def test_fp32_without_a_probe():
    assert choose_precision(ZEN4, None, "cpu").value == "fp32"
    assert choose_precision(ZEN4, probe(bf16_step_ms=None), "cpu").value == "fp32"


def test_cuda_without_bf16_support_is_fp16():
    if torch.cuda.is_available():
        pytest.skip("decided by the GPU at hand")
    assert choose_precision(ZEN4, None, "cuda").value == "fp16"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (None, "auto"), ("auto", "auto"), ("true", True), ("off", False), ("On", True)],
)
def test_compile_setting_accepts_old_and_new_values(value, expected):
    assert compile_setting(value) == expected


def test_compile_setting_rejects_nonsense():
    with pytest.raises(HarkitError, match="compile must be true, false or auto"):
        compile_setting("fast")


def compiled(**numbers) -> Probe:
    return probe(**({"compile_precision": "fp32", "compiled_step_ms": 140.0, "compile_seconds": 15.0} | numbers))


def test_compile_pays_off_over_a_long_run():
    # 1800 steps x 200 ms = 360 s eager; 30% saved = 108 s > 15 s compiling
    choice = choose_compile("auto", compiled(), "fp32", steps=1800)
    assert choice.value is True
    assert "93 s net" in choice.reason


def test_compile_refused_for_a_short_run():
    # 200 steps x 200 ms = 40 s eager; 30% saved = 12 s < 15 s compiling
    choice = choose_compile("auto", compiled(), "fp32", steps=200)
    assert choice.value is False
    assert "less than compiling costs" in choice.reason


def test_compile_refused_where_it_is_slower():
    # the EPYC of issue 16: compiled epochs slower than eager
    choice = choose_compile("auto", compiled(compiled_step_ms=250.0), "fp32", steps=100_000)
    assert choice.value is False


def test_too_short_to_measure_compile():
    # 40 steps x 200 ms = 8 s: cannot win back the 10 s compiling takes at least, so it is not even measured
    assert hardware.compile_needs_measuring(probe(), "fp32", steps=40, batch_size=128) is False
    assert hardware.compile_needs_measuring(probe(), "fp32", steps=60, batch_size=128) is True
    choice = choose_compile("auto", probe(), "fp32", steps=40)
    assert choice.value is False
    assert "less than compiling alone" in choice.reason


def test_compile_scales_the_step_with_the_batch_size():
    # batch 512 steps take 4x the probe's: 200 steps x 800 ms = 160 s; 30% = 48 s > 15 s
    assert choose_compile("auto", compiled(), "fp32", steps=200, batch_size=512).value is True


def test_compile_numbers_of_another_precision_do_not_count():
    choice = choose_compile("auto", compiled(), "bf16", steps=1800)
    assert choice.value is False
    assert "not measured" in choice.reason
    assert hardware.compile_needs_measuring(compiled(), "bf16", steps=1800, batch_size=128) is True


def test_explicit_settings_and_missing_compiler():
    assert choose_compile(False, compiled(), "fp32", steps=10**6).value is False
    assert choose_compile("true", None, "fp32", steps=1).value is True
    choice = choose_compile("auto", compiled(), "fp32", steps=10**6, compiler=False)
    assert choice.value is False
    assert "C++ compiler" in choice.reason


def test_machine_facts_read_this_machine():
    facts = hardware.machine_facts()
    assert facts.cpu
    assert facts.threads == torch.get_num_threads()
    assert facts.torch == torch.__version__
    if facts.avx512_bf16:
        assert facts.native_bf16


@pytest.mark.real_probe
def test_probe_is_cached_per_machine_and_measured_once(monkeypatch):
    calls = []

    def fake_steps(device, steps=8):
        calls.append("steps")
        return {"fp32_step_ms": 200.0, "bf16_step_ms": 100.0, "fp32_accuracy": 0.9, "bf16_accuracy": 0.9}

    def fake_compile(device, precision, steps=6):
        calls.append(("compile", precision))
        return {"compile_precision": precision, "compiled_step_ms": 60.0, "compile_seconds": 12.0, "compile_ratio": 0.6}

    monkeypatch.setattr(hardware, "measure_steps", fake_steps)
    monkeypatch.setattr(hardware, "measure_compile", fake_compile)
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, seconds=0.5, size=512: 100.0)
    cpu = torch.device("cpu")
    first = hardware.measured_probe(ZEN4, cpu, "bf16", steps=1000)
    again = hardware.measured_probe(ZEN4, cpu, "bf16", steps=1000)
    assert calls == ["steps", ("compile", "bf16")]
    assert again == first
    assert again.compiled_step_ms == pytest.approx(60.0)  # 0.6 of the cached 100 ms bf16 step
    saved = json.loads(hardware.probe_path(ZEN4, "cpu").read_text())
    assert saved["machine"]["cpu"] == "AMD EPYC"
    # another thread count or torch version is another machine
    hardware.measured_probe(replace(ZEN4, threads=1), cpu)
    assert calls[-1] == "steps"
    # an edited lowering compiles other graphs: its compiled step is measured again
    monkeypatch.setattr(hardware, "LOWERING_HASH", "an edited lowering")
    calls.clear()
    hardware.measured_probe(ZEN4, cpu, "bf16", steps=1000)
    assert calls == ["steps", ("compile", "bf16")]


@pytest.mark.real_probe
def test_each_model_is_probed_at_its_own_shape_and_cached_apart(monkeypatch):
    probed = []

    def fake_steps(device, spec, steps=8):
        probed.append(spec)
        return {"fp32_step_ms": 200.0, "bf16_step_ms": 100.0, "fp32_accuracy": 0.9, "bf16_accuracy": 0.9}

    monkeypatch.setattr(hardware, "measure_steps", fake_steps)
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, seconds=0.5, size=512: 100.0)
    cpu = torch.device("cpu")
    small = hardware.ProbeModel("tiny", 64, 3, 4, (("filters", 8),))
    assert hardware.measured_probe(ZEN4, cpu, spec=small).model == "tiny"
    hardware.measured_probe(ZEN4, cpu)
    hardware.measured_probe(ZEN4, cpu, spec=small)  # cached
    assert probed == [small, hardware.SANN_ON_HAPT]
    assert hardware.probe_path(ZEN4, "cpu", small) != hardware.probe_path(ZEN4, "cpu")
    reason = choose_precision(ZEN4, hardware.load_probe(ZEN4, "cpu", small)).reason
    assert "tiny step 100 ms bf16 against 200 ms fp32" in reason


@pytest.mark.real_probe
def test_processes_that_need_the_probe_at_once_measure_it_once(monkeypatch):
    import threading
    import time

    calls = []

    def slow_steps(device, spec, steps=8):
        calls.append(spec)
        time.sleep(0.3)  # long enough for the other caller to arrive while this one measures
        return {"fp32_step_ms": 200.0, "bf16_step_ms": 100.0, "fp32_accuracy": 0.9, "bf16_accuracy": 0.9}

    monkeypatch.setattr(hardware, "measure_steps", slow_steps)
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, seconds=0.5, size=512: 100.0)
    probes = []
    callers = [
        threading.Thread(target=lambda: probes.append(hardware.measured_probe(ZEN4, torch.device("cpu"))))
        for _ in range(2)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(calls) == 1 and probes[0] == probes[1]


def test_the_probe_trains_the_model_it_is_given():
    numbers = hardware.measure_steps(torch.device("cpu"), hardware.ProbeModel("tiny", 32, 3, 4, (("filters", 8),)), 3)
    assert numbers["fp32_step_ms"] > 0 and numbers["bf16_step_ms"] > 0
    assert 0 <= numbers["fp32_accuracy"] <= 1 and 0 <= numbers["bf16_accuracy"] <= 1


@pytest.mark.real_probe
def test_damaged_cache_is_measured_again(monkeypatch):
    monkeypatch.setattr(
        hardware,
        "measure_steps",
        lambda device, steps=8: {"fp32_step_ms": 1.0, "bf16_step_ms": 2.0, "fp32_accuracy": 1, "bf16_accuracy": 1},
    )
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, seconds=0.5, size=512: 100.0)
    path = hardware.probe_path(ZEN4, "cpu")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert hardware.measured_probe(ZEN4, torch.device("cpu")).bf16_step_ms == 2.0


def test_compiling_is_measured_afresh_where_the_process_compiled_the_model_before():
    from torch._dynamo.utils import counters

    spec = hardware.ProbeModel("sann", 32, 3, 4, (("width", 0.125),))
    step, _ = hardware._stepper(torch.device("cpu"), "fp32", True, spec)
    step(*hardware._synthetic(hardware.PROBE_BATCH, torch.Generator().manual_seed(0), spec))  # compiled here first
    graphs = counters["stats"]["unique_graphs"]
    hardware.measure_compile(torch.device("cpu"), "fp32", spec, steps=2)
    # Dynamo would reuse the graph for the probe's fresh model and time no compiling at all
    assert counters["stats"]["unique_graphs"] > graphs


def test_matmul_gflops_measures_something():
    assert hardware.matmul_gflops(torch.float32, seconds=0.05, size=128) > 0.1


def test_a_run_records_what_auto_chose_and_why(tiny_config, tmp_path, monkeypatch):
    from harkit.training.engine import TrainConfig, train

    monkeypatch.setattr(hardware, "machine_facts", lambda: ZEN4)
    monkeypatch.setattr(hardware, "measured_probe", lambda *args, **kwargs: probe())
    run = train(replace(tiny_config, epochs=1), tmp_path / "run", progress=False, evaluate=False)
    saved = json.loads((run / "config.json").read_text())
    assert saved["precision"] == "auto" and saved["compile"] == "auto"
    resolved = saved["resolved"]
    assert resolved["precision"] == "bf16"
    assert "1.72x" in resolved["precision_reason"]
    assert resolved["compile"] is False
    assert "less than compiling alone" in resolved["compile_reason"]  # a few tiny steps
    assert resolved["allocator"] == hardware.keep_freed_memory()
    # config.json files written before compile could be "auto" still load, and strings from files are understood
    old = {**saved, "compile": False}
    assert TrainConfig.from_json(old).compile is False
    assert TrainConfig.from_json({**saved, "compile": "true"}).compile is True


def test_a_run_probes_its_own_model_at_its_shape(tiny_config, tmp_path, monkeypatch):
    from harkit.training.engine import train

    probed = []

    def record(*args, spec=hardware.SANN_ON_HAPT, **kwargs):
        probed.append(spec)
        return probe()

    monkeypatch.setattr(hardware, "machine_facts", lambda: ZEN4)
    monkeypatch.setattr(hardware, "measured_probe", record)
    run = train(replace(tiny_config, epochs=1), tmp_path / "run", progress=False, evaluate=False)
    meta = json.loads((run / "dataset.json").read_text())
    shape = (meta["window"], len(meta["channels"]), len(meta["classes"]))
    expected = hardware.ProbeModel("sann", *shape, (("width", 0.125),))
    assert probed and set(probed) == {expected}


def test_a_closed_form_fit_is_not_probed(tiny_config, tmp_path, monkeypatch):
    from harkit.training.engine import train

    def no_probe(*args, **kwargs):
        raise AssertionError("probed a model that takes no training steps")

    monkeypatch.setattr(hardware, "measured_probe", no_probe)
    config = replace(tiny_config, model="minirocket", model_options={}, epochs=1)
    run = train(config, tmp_path / "run", progress=False, evaluate=False)
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert resolved["precision"] == "fp32" and "closed-form" in resolved["precision_reason"]


FAULTS_PER_REUSE = """
import resource, sys, torch
from harkit.hardware import keep_freed_memory

def faults_per_step():
    for _ in range(20):  # the heap settles to its largest block in a few rounds
        torch.ones(16 << 20)  # 64 MiB, freed at once: what a training step does with its activations
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(16 << 20)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5

default = faults_per_step()
print(keep_freed_memory())
print(default, faults_per_step())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_freed_memory_is_reused_without_page_faults():
    # A fresh process: the setting lasts for the life of the process that makes it.
    lines = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_REUSE], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert lines[0].startswith("glibc keeps freed blocks")
    default, kept = map(float, lines[1].split())
    assert default > 10_000  # every 64 MiB block came back zero-filled, page by page (16,384 pages)
    assert kept < 100


def test_explicit_settings_are_not_probed(tiny_config, tmp_path, monkeypatch):
    from harkit.training.engine import train

    def no_probe(*args, **kwargs):
        raise AssertionError("probed although precision and compile were set")

    monkeypatch.setattr(hardware, "measured_probe", no_probe)
    run = train(replace(tiny_config, epochs=1, precision="fp32", compile=False), tmp_path / "run", progress=False)
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert (resolved["precision"], resolved["compile"]) == ("fp32", False)
    assert resolved["compile_reason"] == "set explicitly"


def test_doctor_prints_facts_speed_and_choices(monkeypatch):
    from typer.testing import CliRunner

    from harkit.cli import app

    monkeypatch.setattr(hardware, "machine_facts", lambda: ZEN4)
    monkeypatch.setattr(hardware, "measured_probe", lambda *args, **kwargs: compiled(compile_precision="bf16"))
    monkeypatch.setattr(hardware, "load_probe", lambda *args: compiled(compile_precision="bf16"))
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, seconds=0.5, size=512: 123.0)
    monkeypatch.setattr(hardware, "has_compiler", lambda: True)
    result = CliRunner().invoke(app, ["doctor", "--device", "cpu", "--steps", "1800"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "AMD EPYC" in result.output and "avx512_bf16" in result.output
    assert "fp32 123 GFLOP/s, bf16 123 GFLOP/s" in result.output
    assert "--precision auto: bf16" in result.output
    # bf16 steps of 116 ms, compiled 140 ms: slower, so off
    assert "--compile auto for 1800 steps: off" in result.output


def test_doctor_flags_a_cached_probe_measured_under_load(monkeypatch):
    from typer.testing import CliRunner

    from harkit.cli import app

    under_load = compiled(fp32_gflops=2.8, bf16_gflops=8.4, compile_precision="bf16")
    monkeypatch.setattr(hardware, "machine_facts", lambda: ZEN4)
    monkeypatch.setattr(hardware, "load_probe", lambda *args: under_load)
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, seconds=0.5, size=512: 200.0)
    monkeypatch.setattr(hardware, "has_compiler", lambda: True)
    result = CliRunner().invoke(app, ["doctor", "--device", "cpu"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "measured while the machine was busy" in result.output and "harkit doctor --fresh" in result.output
    # a probe at this machine's speed is not flagged
    monkeypatch.setattr(hardware, "load_probe", lambda *args: compiled(fp32_gflops=190.0, compile_precision="bf16"))
    assert "busy" not in CliRunner().invoke(app, ["doctor", "--device", "cpu"], terminal_width=200).output
