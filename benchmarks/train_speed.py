"""SANN on the real HAPT windows: harkit's engine against the article's plain recipe, epoch by epoch.

The plain recipe: TensorDataset + shuffled DataLoader, AdamW, StepLR, cross-entropy, batch 128, fp32. harkit's
engine trains the same model on the same windows (batch 128 on HAPT) twice: in fp32 and eager (the engine
alone), and with its defaults (`--precision auto`, `--compile auto`: bf16 where this CPU computes it natively and
faster, compiled where that pays off over a default run's length; `harkit/hardware.py`). Their training time per
epoch is compared (validation scoring, which the plain recipe does not do, is reported apart). Each recipe runs
`--epochs` epochs (2 by default): the first includes one-time costs (compilation), the median of the others is
the steady state. The recipes run one after another `--rounds` times (3 by default) and the median of the
rounds' steady-state ratios is reported. The machine facts of `harkit doctor` come first, and each recipe's
fraction of the measured GEMM peak (training FLOPs = 6 x the forward MACs per window). harkit's runs happen in this
process, the plain recipe's in one of its own (`article_recipe.py`), so that harkit's process-wide settings do not
reach it; the test accuracy at the end shows nothing was lost.
Usage: python benchmarks/train_speed.py [--data-dir DIR] [--device cpu|cuda] [--epochs N] [--rounds N]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from article_recipe import ArticleRecipe, test_accuracy
from harkit.datasets import PrepareConfig, prepare
from harkit.evaluation.cost import count_macs
from harkit.hardware import facts_lines, machine_facts, matmul_gflops, resolve_compile, resolve_precision
from harkit.models import create_model
from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint
from harkit.training.engine import TrainConfig, train
from harkit.training.recipe import default_batch_size, default_epochs


def accuracy(model, prepared, device) -> float:
    return test_accuracy(model, torch.tensor(np.array(prepared.test.x)).to(device), prepared.test.y)


def plain_recipe(prepared, device: torch.device, epochs: int) -> tuple[list[float], float]:
    """Seconds of each epoch and the final test accuracy of the article's recipe, in a process of its own."""
    with ArticleRecipe(prepared, epochs, device=str(device)) as article:
        results = [article.epoch() for _ in range(epochs)]
    return [seconds for seconds, _ in results], results[-1][1]


CHOSEN: dict[str, str] = {}  # the precision each harkit variant trained in


def harkit_engine(prepared, device: torch.device, epochs: int, defaults: bool) -> tuple[list[float], float]:
    """Training seconds of each epoch and the final test accuracy; validation scoring is printed apart."""
    speed, compile_reason = {"precision": "fp32", "compile": False}, "set explicitly"
    if defaults:
        # Compiling pays over a whole run, not over this benchmark's few epochs: decide as `harkit train --dataset
        # hapt` would for its full length, so the measured epochs are a default run's epochs.
        n_train = len(prepared.train)
        batch = default_batch_size(n_train)
        steps = default_epochs(math.ceil(n_train / batch)) * math.ceil(n_train / batch)
        precision, _ = resolve_precision(device, "auto")
        use_compile, compile_reason = resolve_compile("auto", device, precision, steps, batch)
        speed = {"precision": "auto", "compile": use_compile}
    config = TrainConfig(dataset="hapt", model="sann", epochs=epochs, seed=0, device=str(device), patience=0, **speed)
    with tempfile.TemporaryDirectory() as folder:
        run = train(config, Path(folder) / "run", progress=False, prepared=prepared, evaluate=False)
        with open(run / "history.csv") as handle:
            rows = list(csv.DictReader(handle))
        seconds = [float(row["train_seconds"]) for row in rows]
        validation = [float(row["seconds"]) - float(row["train_seconds"]) for row in rows]
        model = model_from_checkpoint(load_checkpoint(run / "last.pt", device), device)
        resolved = json.loads((run / "config.json").read_text())["resolved"]
    name = "harkit" if defaults else "harkit fp32"
    CHOSEN[name] = resolved["precision"]
    print(
        f"  {name}: precision {resolved['precision']}, compile {resolved.get('compile')} "
        f"({compile_reason}); validation scoring {np.mean(validation):.2f} s per epoch"
    )
    return seconds, accuracy(model, prepared, device)


def one_round(prepared, device: torch.device, epochs: int) -> dict[str, tuple[list[float], float]]:
    return {
        "plain recipe": plain_recipe(prepared, device, epochs),
        "harkit fp32": harkit_engine(prepared, device, epochs, defaults=False),
        "harkit": harkit_engine(prepared, device, epochs, defaults=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per recipe and round, at least 2")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three recipes, one after another")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch holds one-time costs")
    device = torch.device(args.device)
    gflops = {"fp32": matmul_gflops(torch.float32, 1.0), "bf16": matmul_gflops(torch.bfloat16, 1.0)}
    for line in facts_lines(machine_facts(), gflops):
        print(line)
    prepared = prepare("hapt", PrepareConfig(), data_dir=args.data_dir)
    windows = len(prepared.train)
    meta = prepared.meta
    flops = 6 * count_macs(create_model("sann", meta["window"], len(meta["channels"]), len(meta["classes"])), 128, 6)
    print(f"device: {device}, threads: {torch.get_num_threads()}, training windows: {windows}")
    steady_ratios: dict[str, list[float]] = {"harkit fp32": [], "harkit": []}
    for round_number in range(1, args.rounds + 1):
        print(f"round {round_number}" + (" (pays compilation, as a fresh process does)" if round_number == 1 else ""))
        results = one_round(prepared, device, args.epochs)
        steady = {name: float(np.median(seconds[1:])) for name, (seconds, _) in results.items()}
        print(
            f"  {'':18} {'epoch 1 windows/s':>18} {'steady windows/s':>17} {'whole run s':>12} {'test accuracy':>14} "
            f"{'of GEMM peak':>13}"
        )
        for name, (seconds, final_accuracy) in results.items():
            peak = gflops.get(CHOSEN.get(name, "fp32"), gflops["fp32"])
            share = windows / steady[name] * flops / 1e9 / peak
            print(
                f"  {name:18} {windows / seconds[0]:18.1f} {windows / steady[name]:17.1f} {sum(seconds):12.1f} "
                f"{final_accuracy:14.4f} {share:12.0%} ({CHOSEN.get(name, 'fp32')} {peak:.0f} GFLOP/s)"
            )
        baseline = results["plain recipe"][0]
        for name, ratios in steady_ratios.items():
            seconds = results[name][0]
            ratios.append(steady["plain recipe"] / steady[name])
            whole = f", whole {args.epochs}-epoch run {sum(baseline) / sum(seconds):.2f}x" if round_number == 1 else ""
            first = baseline[0] / seconds[0]
            print(f"  speed-up of {name}: epoch 1 {first:.2f}x, steady state {ratios[-1]:.2f}x{whole}")
    # Rounds keep each ratio's two sides close in time: on a shared machine a slow phase moves whole epochs.
    for name, ratios in steady_ratios.items():
        print(
            f"steady-state speed-up of {name} over the plain recipe, median of {args.rounds} rounds: "
            f"{np.median(ratios):.2f}x (rounds: {', '.join(f'{ratio:.2f}x' for ratio in ratios)})"
        )


if __name__ == "__main__":
    main()
