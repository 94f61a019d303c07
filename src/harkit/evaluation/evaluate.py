"""Evaluate a finished run directory on its test split and write metrics, tables and plots."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from harkit import HarkitError
from harkit.datasets import Prepared, prepare
from harkit.evaluation.cost import count_macs, measure_latency
from harkit.evaluation.metrics import classification_metrics
from harkit.models import count_parameters
from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint
from harkit.training.engine import predict_logits


def read_history(run: Path) -> list[dict]:
    """`history.csv` as a list of rows with numbers parsed (empty cells are None)."""
    path = Path(run) / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(handle)
        ]


def load_run_data(run: Path) -> Prepared:
    """The prepared arrays a run was trained on, rebuilt (or read from the cache) from its config."""
    from harkit.training.engine import TrainConfig

    config = TrainConfig.from_json(json.loads((Path(run) / "config.json").read_text()))
    return prepare(config.dataset, config.prepare_config(), data_dir=config.data_dir, **config.dataset_options)


def evaluate_run(
    run: Path | str,
    prepared: Prepared | None = None,
    device: torch.device | str | None = None,
    latency_repeats: int = 20,
    plots: bool = True,
) -> dict:
    """Test metrics of the best checkpoint, cost (parameters, MACs, latency) and training summary.

    Writes `metrics.json`, `per_class.csv`, `confusion.csv` and, with `plots`, PNG figures.
    """
    run = Path(run)
    if not (run / "best.pt").is_file():
        raise HarkitError(f"{run} holds no trained model (best.pt); run `harkit train ... --out {run}` first")
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint = load_checkpoint(run / "best.pt", device)
    model = model_from_checkpoint(checkpoint, device)
    prepared = prepared or load_run_data(run)
    classes = checkpoint["classes"]
    batch_size = checkpoint["config"]["batch_size"]

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
    _write_tables(run, metrics, classes)
    if plots:
        from harkit.evaluation.plots import plot_run

        plot_run(run, metrics, history)
    staging = run / "metrics.json.tmp"
    staging.write_text(json.dumps(metrics, indent=2))
    os.replace(staging, run / "metrics.json")  # written last: its presence marks a finished run
    return metrics


def _write_tables(run: Path, metrics: dict, classes: list[str]) -> None:
    with open(run / "per_class.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["class", "precision", "recall", "f1", "support", "proportion"])
        writer.writeheader()
        writer.writerows(metrics["per_class"])
    with open(run / "confusion.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, metrics["confusion"], strict=True):
            writer.writerow([name, *row])
