"""Evaluate a finished run directory on its test split and write metrics, tables and plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from harkit import HarkitError
from harkit.datasets import Prepared
from harkit.evaluation.cost import count_macs, measure_latency
from harkit.evaluation.metrics import classification_metrics
from harkit.models import count_parameters
from harkit.runs import Run, fold_dirs, fold_row, predict_logits, write_fold_summary
from harkit.training.checkpoint import write_text_whole

# The summary of a cross-validation folder, as `harkit train --folds` writes it.


def read_history(run: Path) -> list[dict]:
    """`history.csv` as a list of rows with numbers parsed (empty cells are None)."""
    path = Path(run) / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(handle)
        ]


def load_run_data(run: Path | str, data_dir: Path | str | None = None) -> Prepared:
    """The prepared arrays a run was trained on, found from any working directory (see `Run.dataset`)."""
    return Run(run).dataset(data_dir)


def evaluate_run(
    run: Path | str,
    prepared: Prepared | None = None,
    device: torch.device | str | None = None,
    latency_repeats: int = 20,
    plots: bool = True,
    data_dir: Path | str | None = None,
) -> dict:
    """Test metrics of the best checkpoint, cost (parameters, MACs, latency) and training summary.

    Writes `metrics.json`, `per_class.csv`, `confusion.csv` and, with `plots`, PNG figures. `data_dir` is
    where the run's data is now, if it moved since training.
    """
    opened = Run(run)
    run = opened.path
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint = opened.checkpoint("best", device)
    model = opened.model("best", device)
    prepared = prepared or opened.dataset(data_dir)
    classes = checkpoint["classes"]
    # Runs whose batch size the recipe chose record it under "resolved"; 256 suits any older one.
    resolved = opened.config.get("resolved", {}).get("recipe") or {}
    batch_size = checkpoint["config"].get("batch_size") or resolved.get("batch_size") or 256

    x = torch.from_numpy(np.array(prepared.test.x, np.float32)).to(device)
    predictions = predict_logits(model, x, batch_size).argmax(1).cpu().numpy()
    metrics = classification_metrics(prepared.test.y, predictions, classes)

    spec = checkpoint["model"]
    history = read_history(run)
    epoch_seconds = [row["seconds"] for row in history if row.get("seconds")]
    metrics |= {
        "run": str(run),
        "dataset": checkpoint["dataset"],
        "model": spec["name"],
        "seed": checkpoint["config"]["seed"],
        "best_epoch": checkpoint["epoch"],
        "epochs_run": len(history),
        "parameters": count_parameters(model),
        "macs_per_window": count_macs(model, spec["window"], spec["channels"]),
        "latency": measure_latency(model, spec["window"], spec["channels"], (1, batch_size), latency_repeats),
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else None,
        "final_train_loss": history[-1]["train_loss"] if history else None,
        "test_subjects": prepared.meta["subjects"]["test"],
    }
    previous = opened.metrics or {}
    if "refit" in previous:  # the scores of the run's refit (harkit.training.engine.refit) stay
        metrics["refit"] = previous["refit"]
    write_tables(run, metrics, classes)
    if plots:
        from harkit.evaluation.plots import plot_run

        plot_run(run, metrics, history)
    write_text_whole(run / "metrics.json", json.dumps(metrics, indent=2))  # last: its presence marks a finished run
    return metrics


def evaluate_folds(
    folder: Path | str, data_dir: Path | str | None = None, latency_repeats: int = 20, plots: bool = True
) -> dict:
    """Evaluate every fold run of a cross-validation folder and write its summary, `crossval.json`.

    Raises:
        HarkitError: the folder holds no fold runs.
    """
    folder = Path(folder)
    folds = fold_dirs(folder)
    if not folds:
        raise HarkitError(f"{folder} holds no cross-validation folds (fold-00 ...); pass a run directory")
    rows, first = [], Run(folds[0])
    for path in folds:
        metrics = evaluate_run(path, latency_repeats=latency_repeats, plots=plots, data_dir=data_dir)
        fold = int(path.name.split("-")[-1])
        rows.append(fold_row(fold, metrics))
    split = first.config.get("split", {})
    previous = folder / "crossval.json"
    # How many folds the scheme has is known to training (crossval.json); else the folds present are all.
    total = json.loads(previous.read_text()).get("total_folds", len(rows)) if previous.is_file() else len(rows)
    scheme = "loso" if split.get("kind") == "loso" else str(split.get("folds", len(rows)))
    return write_fold_summary(folder, first.config["dataset"], first.config["model"], scheme, total, rows)


def write_tables(run: Path, metrics: dict, classes: list[str]) -> None:
    """`per_class.csv` and `confusion.csv` of a run's test metrics."""
    with open(run / "per_class.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["class", "precision", "recall", "f1", "support", "proportion"])
        writer.writeheader()
        writer.writerows(metrics["per_class"])
    with open(run / "confusion.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, metrics["confusion"], strict=True):
            writer.writerow([name, *row])
