"""Time to a test accuracy: SANN on HAPT with harkit's defaults against the article's recipe, epochs interleaved.

harkit: `harkit.training.engine.train` with every option at its default (recipe, `--precision auto`, `--compile
auto`), exactly what `harkit train --dataset hapt` runs. The article recipe: a shuffled `DataLoader` over a
`TensorDataset`, AdamW (lr 5e-4, weight decay 1e-3), StepLR (every 10 epochs, gamma 0.5), batch 128, fp32, 30
epochs, in a process of its own (`article_recipe.py`, as `train_speed.py`'s plain recipe). Both train on the
windows of all 21 training subjects, which is what the defaults choose on HAPT (`--val-fraction auto`) and what
the article trains on. The two take turns epoch by epoch (harkit's epoch, then the article's), so both meet the
same machine load; after every epoch each model is scored on the test subjects, which is not counted. harkit's
time is its whole epochs (training, validation if any, its first epoch's compilation if it compiles); the
article's its training epochs. A compiled graph is kept in Inductor's cache on disk, so only the first run of
SANN at this shape on a machine compiles it; the line after the run says which this was (or that SANN's fused
kernels trained it, as they do in bf16 on a CPU with native bf16, with nothing to compile). The one-time probe of
`--precision auto` and `--compile auto` (cached per machine and model) is taken before the run and timed apart.
Prints `time to 0.95: harkit X s, article recipe Y s, ratio Z.ZZx`.
Usage: python benchmarks/time_to_accuracy.py [--data-dir DIR] [--target 0.95] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch._dynamo.utils import counters

from article_recipe import ArticleRecipe, test_accuracy
from harkit.datasets import prepare
from harkit.evaluation.cost import count_macs
from harkit.hardware import ProbeModel, facts_lines, machine_facts, matmul_gflops, resolve_compile, resolve_precision
from harkit.models import create_model
from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint
from harkit.training.engine import TrainConfig, train
from harkit.training.recipe import default_batch_size, default_epochs


class Reached(Exception):
    """Both recipes reached the target: harkit's run stops here."""


def first_reaching(rows: list[dict], target: float) -> tuple[int, float] | None:
    """(epoch, cumulative seconds) of the first epoch at or above `target`, or None."""
    total = 0.0
    for row in rows:
        total += row["seconds"]
        if row["accuracy"] >= target:
            return row["epoch"], total
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads [all available]")
    parser.add_argument("--keep-going", action="store_true", help="train both to the end after the target")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gflops = {"fp32": matmul_gflops(torch.float32, 1.0), "bf16": matmul_gflops(torch.bfloat16, 1.0)}
    for line in facts_lines(machine_facts(), gflops):
        print(line)
    # The windows `harkit train --dataset hapt` trains on: with `--val-fraction auto`, all 21 training subjects
    # (the run keeps its final epoch and selects nothing on validation), as the article trains.
    defaults = TrainConfig(dataset="hapt", model="sann")
    prepared = prepare("hapt", defaults.prepare_config(), data_dir=args.data_dir)
    meta = prepared.meta
    x_test, y_test = torch.tensor(np.array(prepared.test.x)), np.asarray(prepared.test.y)
    windows = len(prepared.train)
    macs = count_macs(create_model("sann", meta["window"], len(meta["channels"]), len(meta["classes"])), 128, 6)
    print(
        f"HAPT: {windows} training windows (both recipes), {len(y_test)} test windows; "
        f"SANN {macs / 1e6:.1f} M MACs per window"
    )

    article = ArticleRecipe(prepared, epochs=30)
    rows: dict[str, list[dict]] = {"harkit": [], "article recipe": []}

    def done() -> bool:
        return all(first_reaching(r, args.target) for r in rows.values())

    def article_epoch() -> None:
        seconds, accuracy = article.epoch()
        rows["article recipe"].append(
            {"epoch": len(rows["article recipe"]) + 1, "seconds": seconds, "accuracy": accuracy}
        )
        print(
            f"  article recipe epoch {len(rows['article recipe']):2d}: {seconds:6.1f} s, test accuracy {accuracy:.4f}"
        )

    # harkit's one-time probe (cached per machine and model) is taken here, apart from the timed run. Dynamo then
    # forgets what the probe compiled, so training loads its graph from Inductor's cache as a new process would,
    # instead of reusing the probe's in memory.
    began = time.perf_counter()
    spec = ProbeModel("sann", meta["window"], len(meta["channels"]), len(meta["classes"]))
    batch = default_batch_size(windows)
    steps = default_epochs(math.ceil(windows / batch)) * math.ceil(windows / batch)
    precision, _ = resolve_precision(torch.device("cpu"), "auto", spec)
    resolve_compile("auto", torch.device("cpu"), precision, steps, batch, spec)  # as the run will decide
    print(f"harkit's probe: {time.perf_counter() - began:.0f} s (0 if cached; once per machine and model, not counted)")
    torch._dynamo.reset()
    before = dict(counters["aot_autograd"])

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"

        def on_epoch(row: dict) -> None:
            model = model_from_checkpoint(load_checkpoint(out / "last.pt"))
            accuracy = test_accuracy(model, x_test, y_test)
            rows["harkit"].append(
                {
                    "epoch": row["epoch"],
                    "seconds": row["seconds"],
                    "train_seconds": row["train_seconds"],
                    "accuracy": accuracy,
                }
            )
            print(
                f"  harkit         epoch {row['epoch']:2d}: {row['seconds']:6.1f} s "
                f"({row['train_seconds']:.1f} training), test accuracy {accuracy:.4f}"
            )
            if len(rows["article recipe"]) < 30:
                article_epoch()
            if done() and not args.keep_going:
                raise Reached

        began = time.perf_counter()
        try:
            train(
                defaults,
                out,
                progress=False,
                prepared=prepared,
                evaluate=False,
                on_epoch=on_epoch,
            )
        except Reached:
            pass
        config = json.loads((out / "config.json").read_text())
        resolved = config["resolved"]
        recipe = resolved.get("recipe", {})
        print(
            f"harkit's defaults here: precision {resolved['precision']} ({resolved.get('precision_reason')}); "
            f"compile {resolved.get('compile')} ({resolved.get('compile_reason')}); batch {recipe.get('batch_size')}, "
            f"{recipe.get('epochs')} epochs, lr {recipe.get('lr')}, schedule {recipe.get('schedule')}, "
            f"validation fraction {config['val_fraction']:g}"
        )
        compiled = {key: count - before.get(key, 0) for key, count in counters["aot_autograd"].items()}
        if resolved.get("compile") and not compiled.get("total", 0):
            print("harkit compiled no graph: SANN's fused kernels trained it (harkit/training/fused_sann.py)")
        elif resolved.get("compile"):
            cached = compiled.get("autograd_cache_hit", 0) > 0
            print(
                f"harkit's compiled graph ({compiled.get('total', 0)} compiled in training): "
                + (
                    "served from Inductor's cache on disk (an earlier compile of SANN at this shape on this machine)"
                    if cached
                    else "compiled afresh (the first compile of this model and shape here; later runs load it)"
                )
            )
        whole = time.perf_counter() - began
    while not done() and len(rows["article recipe"]) < 30:
        article_epoch()
    article.close()
    harkit_epochs = sum(row["seconds"] for row in rows["harkit"])
    print(f"harkit's run: {whole:.0f} s wall, {harkit_epochs:.0f} s of it its own epochs")

    # Steady state: epochs after the first (which holds one-time costs), paired as they ran.
    pairs = list(zip(rows["harkit"][1:], rows["article recipe"][1:], strict=False))
    if pairs:
        ratio = statistics.median(a["seconds"] / h["train_seconds"] for h, a in pairs)
        h_steady = statistics.median(h["train_seconds"] for h, _ in pairs)
        a_steady = statistics.median(a["seconds"] for _, a in pairs)
        precision = resolved["precision"]
        flops = 6 * macs  # forward, and twice that backward
        for name, seconds, peak in (
            ("harkit", h_steady, gflops.get(precision, gflops["fp32"])),
            ("article recipe", a_steady, gflops["fp32"]),
        ):
            print(
                f"{name}: steady training epoch {seconds:.1f} s, {windows / seconds:.0f} windows/s, "
                f"{windows * flops / seconds / 1e9:.1f} GFLOP/s = {windows * flops / seconds / 1e9 / peak:.0%} of the "
                f"measured {peak:.0f} GFLOP/s GEMM peak"
            )
        print(f"steady-state training epoch, median of {len(pairs)} interleaved pairs: {ratio:.2f}x")
    reached = {name: first_reaching(r, args.target) for name, r in rows.items()}
    for name, hit in reached.items():
        best = max(row["accuracy"] for row in rows[name])
        print(
            f"{name}: "
            + (f"reached {args.target} at epoch {hit[0]}" if hit else f"never reached {args.target}")
            + f" (best {best:.4f})"
        )
    if all(reached.values()):
        h, a = reached["harkit"][1], reached["article recipe"][1]
        print(f"time to {args.target:g}: harkit {h:.0f} s, article recipe {a:.0f} s, ratio {a / h:.2f}x")
    else:
        print(f"time to {args.target:g}: not reached by " + ", ".join(n for n, hit in reached.items() if not hit))


if __name__ == "__main__":
    main()
