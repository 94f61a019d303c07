"""Mean ± std over seeds of finished runs, validated and refit, as a markdown table.

Runs are grouped by their folder name without its `-sN` seed suffix (`hapt-sann-s0`, `hapt-sann-s1` ...).

    python docs/results/accuracy/summarise.py runs/accuracy/*-s[0-9]
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path


def mean_std(values: list[float]) -> str:
    """`mean ± std` (sample std), the value alone for one seed, a dash for none."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main(paths: list[str]) -> None:
    """Print one table row per group of runs."""
    groups: dict[str, list[dict]] = {}
    for path in map(Path, paths):
        if (path / "metrics.json").is_file():
            groups.setdefault(re.sub(r"-s\d+$", "", path.name), []).append(
                json.loads((path / "metrics.json").read_text())
            )
    print("| runs | seeds | accuracy | macro F1 | refit accuracy | refit macro F1 |")
    print("|---|---|---|---|---|---|")
    for name, runs in groups.items():
        refits = [run["refit"] for run in runs if "refit" in run]
        print(
            f"| {name} | {len(runs)} | {mean_std([r['accuracy'] for r in runs])} | "
            f"{mean_std([r['macro_f1'] for r in runs])} | {mean_std([r['accuracy'] for r in refits])} | "
            f"{mean_std([r['macro_f1'] for r in refits])} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
