"""SANN training steps with glibc's default allocator against `harkit.hardware.keep_freed_memory`.

The setting is process-wide and lasts, so each side runs in a fresh process of its own, alternating `--rounds`
times: one SANN training step after another on a random HAPT-shaped batch (128 x 128 x 6), in fp32 eager and in
bf16 compiled where this CPU computes bf16 natively. Prints the median step and the minor page faults per step of
each side, and the speed-up. Linux with glibc only.
Usage: python benchmarks/allocator_speed.py [--rounds 3] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from harkit.hardware import facts_lines, machine_facts

STEPS = """
import json, resource, sys, time
import torch
from harkit.hardware import keep_freed_memory
from harkit.models import create_model

kept, precision, steps = sys.argv[1] == "kept", sys.argv[2], int(sys.argv[3])
if kept:
    keep_freed_memory()
torch.manual_seed(0)
model = create_model("sann", 128, 6, 6)
forward = model
if precision == "bf16":
    from harkit.training.compile import compile_model

    forward = compile_model(model)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
x, y = torch.randn(128, 128, 6), torch.randint(0, 6, (128,))


def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = torch.nn.functional.cross_entropy(forward(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


for _ in range(5):  # compiling, and the heap settling
    step()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
times = []
for _ in range(steps):
    began = time.perf_counter()
    step()
    times.append(time.perf_counter() - began)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
print(json.dumps({"ms": 1000 * sorted(times)[len(times) // 2], "faults": faults}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    machine = machine_facts()
    for line in facts_lines(machine):
        print(line)
    precisions = ["fp32"] + (["bf16"] if machine.native_bf16 else [])
    for precision in precisions:
        results: dict[str, list[dict]] = {"default": [], "kept": []}
        for _ in range(args.rounds):
            for side in results:
                command = [sys.executable, "-c", STEPS, side, precision, str(args.steps)]
                output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                results[side].append(json.loads(output.splitlines()[-1]))
        label = "fp32 eager" if precision == "fp32" else "bf16 compiled"
        for side, rows in results.items():
            print(
                f"SANN step, {label}, {side} allocator: "
                + ", ".join(f"{row['ms']:.0f} ms ({row['faults']:.0f} page faults)" for row in rows)
            )
        ratios = [d["ms"] / k["ms"] for d, k in zip(results["default"], results["kept"], strict=True)]
        print(
            f"speed-up of keeping freed memory, {label}: median {statistics.median(ratios):.2f}x "
            f"(rounds: {', '.join(f'{ratio:.2f}x' for ratio in ratios)})"
        )


if __name__ == "__main__":
    main()
