"""The table behind `--model auto`: SANN's defaults against MiniRocket's, per dataset, mean ± std over seeds.

Usage: python docs/results/recipe/default_model.py RUNS, where RUNS holds run folders named
`<set>-<model>-s<seed>` (README.md in this folder gives the commands that train them).
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from harkit.training.recipe import AUTO_MODEL_WINDOWS

MODELS = ("sann", "minirocket")


def summarise(runs: Path) -> list[dict]:
    """One row per set: its training windows (validation included) and each model's scores over seeds."""
    found = defaultdict(lambda: defaultdict(list))
    windows = {}
    for run in sorted(runs.iterdir()):
        match = re.fullmatch(rf"(.+)-({'|'.join(MODELS)})-s(\d+)", run.name)
        if not match or not (run / "metrics.json").is_file():
            continue
        name, model = match.group(1), match.group(2)
        metrics = json.loads((run / "metrics.json").read_text())
        found[name][model].append((metrics["accuracy"], metrics["macro_f1"]))
        counts = json.loads((run / "dataset.json").read_text())["counts"]
        windows[name] = sum(counts["train"]) + sum(counts["val"])  # what `auto` counts before validation is held out
    return [{"set": name, "windows": windows[name], **found[name]} for name in sorted(found, key=windows.get)]


def cell(scores: list[tuple[float, float]]) -> str:
    """`accuracy ± std / macro F1 ± std (seeds)`."""
    if not scores:
        return "–"
    accuracy, f1 = np.array(scores).T
    spread = (lambda v: f" ± {np.std(v, ddof=1):.4f}") if len(scores) > 1 else (lambda v: "")
    return f"{accuracy.mean():.4f}{spread(accuracy)} / {f1.mean():.4f}{spread(f1)} ({len(scores)})"


def main(runs: Path) -> None:
    """Print the markdown table."""
    print("| set | training windows | SANN (defaults) | MiniRocket | MiniRocket - SANN, accuracy | auto trains |")
    print("|---|---|---|---|---|---|")
    for row in summarise(runs):
        sann, minirocket = row.get("sann", []), row.get("minirocket", [])
        lead = "–"
        if sann and minirocket:
            lead = f"{np.mean([a for a, _ in minirocket]) - np.mean([a for a, _ in sann]):+.4f}"
        auto = "minirocket" if row["windows"] < AUTO_MODEL_WINDOWS else "sann"
        print(f"| {row['set']} | {row['windows']:,} | {cell(sann)} | {cell(minirocket)} | {lead} | {auto} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
