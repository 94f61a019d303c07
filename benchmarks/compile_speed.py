"""Training steps of harkit's models: eager, plain `torch.compile`, and harkit's `compile_model`.

`compile_model` lowers time-only convolutions to matrix products on the CPU (`harkit/training/compile.py`). With
`--precision bf16` on a CPU with native bf16 it trains SANN through hand-fused kernels instead
(`harkit/training/fused_sann.py`): "fused kernels", printed beside the Inductor lowering ("compile_model").
Each model trains on random windows of HAPT's shape (128 x 6, 6 classes, batch 128; step time does not depend
on the values) with AdamW. The variants take turns, `--rounds` times 4 steps each, so that all meet the
same machine state; the median step time and the ratios to eager are printed.
Usage: python benchmarks/compile_speed.py [--models sann,cnn,...] [--rounds N] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from harkit.hardware import facts_lines, machine_facts
from harkit.models import create_model
from harkit.training import fused_sann
from harkit.training.compile import compile_model


def step_function(model: torch.nn.Module, variant: str, x: torch.Tensor, y: torch.Tensor, precision: str):
    if variant == "eager":
        compiled = model
    elif variant == "torch.compile":
        compiled = torch.compile(model, dynamic=False)
    else:
        compiled = compile_model(model, fused=variant == "fused kernels")
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-3)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            loss = torch.nn.functional.cross_entropy(compiled(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sann,cnn,sann-lstm,sann-transformer,deepconvlstm")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    for line in facts_lines(machine_facts()):
        print(line)
    x, y = torch.randn(128, 128, 6), torch.randint(0, 6, (128,))
    print(f"threads: {torch.get_num_threads()}, batch 128 x 128 x 6, {args.precision}, median ms per training step")
    for name in args.models.split(","):
        steps, times = {}, {}
        variants = ["eager", "torch.compile", "compile_model"]
        if args.precision == "bf16" and fused_sann.applies(create_model(name, 128, 6, 6)):
            variants.append("fused kernels")
        for variant in variants:
            torch.manual_seed(0)
            steps[variant] = step_function(create_model(name, 128, 6, 6), variant, x, y, args.precision)
            steps[variant]()  # compiles
            steps[variant]()
            times[variant] = []
        for _ in range(args.rounds):
            for variant, step in steps.items():
                began = time.perf_counter()
                for _ in range(4):
                    step()
                times[variant].append((time.perf_counter() - began) / 4 * 1000)
        median = {variant: statistics.median(values) for variant, values in times.items()}
        print(
            f"{name:18} eager {median['eager']:7.1f}"
            + "".join(f"  {v} {median[v]:7.1f} ({median['eager'] / median[v]:.2f}x)" for v in variants[1:])
        )


if __name__ == "__main__":
    main()
