"""What a model costs: parameters, multiply-adds per window and inference latency."""

from __future__ import annotations

import os
import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _lstm_macs(module: nn.LSTM, steps: int) -> int:
    """Multiply-adds of an LSTM over `steps` time steps for one sequence: four gates per layer."""
    total, size = 0, module.input_size
    directions = 2 if module.bidirectional else 1
    for _ in range(module.num_layers):
        total += 4 * module.hidden_size * (size + module.hidden_size) * steps * directions
        size = module.hidden_size * directions
    return total


def count_macs(model: nn.Module, window: int, channels: int) -> int:
    """Multiply-adds for one window: `torch.utils.flop_counter` (FLOPs / 2) plus LSTMs counted by formula.

    The counter sees matrix products and convolutions, which dominate every harkit model, but not the
    fused LSTM kernel, whose gates are added from its shape; element-wise work is not included.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    lstm_macs = []
    hooks = [
        m.register_forward_hook(lambda m, inputs, output: lstm_macs.append(_lstm_macs(m, inputs[0].shape[1])))
        for m in model.modules()
        if isinstance(m, nn.LSTM)
    ]
    counter = FlopCounterMode(display=False)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder kernel hides its matmuls
    try:
        with counter, torch.no_grad():
            model(torch.zeros(1, window, channels, device=device))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return int(counter.get_total_flops() // 2) + sum(lstm_macs)


def device_name(device: torch.device) -> str:
    """A readable name of the device, e.g. `cuda:0 (NVIDIA H100)` or `cpu (8 threads)`."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def measure_latency(
    model: nn.Module,
    window: int,
    channels: int,
    batch_sizes: tuple[int, ...] = (1, 128),
    repeats: int = 20,
    warmup: int = 3,
) -> dict:
    """Median and 95th percentile milliseconds per batch, and per window, after warm-up runs.

    What is timed is recorded beside the numbers: one PyTorch forward pass in inference mode of a batch of
    `batch` windows (`batch_1`: one window at a time, as a stream is classified; larger batches: a whole
    batch at once, as a recording is), on the named device, with the named number of CPU threads.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    result = {
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "measures": f"one PyTorch forward pass per batch, inference mode; median and p95 of {repeats} runs after "
        f"{warmup} warm-up runs",
    }
    for batch in batch_sizes:
        x = torch.randn(batch, window, channels, device=device)
        timings = []
        with torch.inference_mode():
            for index in range(warmup + repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if index >= warmup:
                    timings.append((time.perf_counter() - start) * 1000)
        timings.sort()
        median = statistics.median(timings)
        result[f"batch_{batch}"] = {
            "windows_per_batch": batch,
            "median_ms": median,
            "p95_ms": timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))],
            "per_window_ms": median / batch,
        }
    model.train(was_training)
    return result


def describe_latency(latency: dict) -> str:
    """One line that says what each latency figure measures, e.g. for the CLI and reports."""
    parts = []
    for key, entry in latency.items():
        if not key.startswith("batch_"):
            continue
        batch = int(key[6:])
        if batch == 1:
            parts.append(f"{entry['median_ms']:.2f} ms per window classified alone (batch 1)")
        else:
            parts.append(
                f"{entry['median_ms']:.1f} ms per batch of {batch} windows ({entry['per_window_ms']:.3f} ms per window)"
            )
    # The device name of a CPU carries its thread count (see `device_name`).
    return f"latency (median, PyTorch {latency.get('dtype', 'float32')} on {latency['device']}): {'; '.join(parts)}"
