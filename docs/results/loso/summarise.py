"""A LOSO cross-validation as markdown: one row per held-out subject, the mean ± std over folds, and the scores
of all folds' test windows pooled (each window predicted by the model that never saw its subject).

    python docs/results/loso/summarise.py runs/loso-tiny
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score


def main(folder: Path) -> None:
    """Print the table of the finished folds in `folder` (its `fold-NN` run directories)."""
    folds = sorted(p for p in folder.glob("fold-*") if (p / "metrics.json").is_file())
    runs = [json.loads((p / "metrics.json").read_text()) for p in folds]
    print(f"{len(runs)} folds of {folder}: {runs[0]['model']} on {runs[0]['dataset']}\n")
    print("| fold | test subject | windows | accuracy | macro F1 |")
    print("|---|---|---|---|---|")
    for path, run in zip(folds, runs, strict=True):
        subjects = ", ".join(map(str, run["test_subjects"]))
        print(f"| {path.name} | {subjects} | {run['samples']} | {run['accuracy']:.4f} | {run['macro_f1']:.4f} |")
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro F1")):
        values = [run[key] for run in runs]
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        print(f"\nmean {name} over folds: {statistics.mean(values):.4f}{spread}", end="")
    confusion = sum(np.asarray(run["confusion"]) for run in runs)
    truth = np.repeat(np.arange(len(confusion)), confusion.sum(1))
    predicted = np.concatenate([np.repeat(np.arange(len(row)), row) for row in confusion])
    print(
        f"\n\npooled over all {confusion.sum()} test windows: accuracy {np.trace(confusion) / confusion.sum():.4f}, "
        f"macro F1 {f1_score(truth, predicted, average='macro'):.4f}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
