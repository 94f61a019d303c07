"""Several finished runs as one model: their class probabilities averaged on the same test windows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from harkit import HarkitError
from harkit.evaluation.evaluate import write_tables
from harkit.evaluation.metrics import classification_metrics
from harkit.runs import Run, predict_logits
from harkit.training.checkpoint import write_text_whole

# What the runs of an ensemble must share, so that their test windows are the same windows.
SHARED = ("dataset", "classes", "window", "overlap", "step", "split", "sampling_rate")


def ensemble_probabilities(
    runs: Sequence[Path | str], data_dir: Path | str | None = None, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray, list[dict], dict]:
    """(mean class probabilities [n, classes], test labels, one row per run, the shared facts) on the runs'
    common test part.

    Each run scores the test windows normalised with its own training statistics, as it was trained; the runs
    may differ in model, seed, recipe and validation subjects, but not in their data or test part.
    """
    if len(runs) < 2:
        raise HarkitError("an ensemble needs at least two runs")
    total, labels, first, members = None, None, None, []
    for path in runs:
        run = Run(path)
        prepared = run.dataset(data_dir)
        facts = {key: prepared.meta.get(key) for key in SHARED} | {"test_subjects": prepared.meta["subjects"]["test"]}
        if first is None:
            first, labels = (run.path, facts), np.asarray(prepared.test.y)
        else:
            different = [key for key in facts if facts[key] != first[1][key]]
            if different or not np.array_equal(np.asarray(prepared.test.y), labels):
                what = ", ".join(different) or "the test windows"
                raise HarkitError(
                    f"{run.path} and {first[0]} were not tested on the same windows ({what} differ): an ensemble "
                    "averages runs of one dataset, window and split"
                )
        checkpoint = run.checkpoint("best", device)
        batch_size = checkpoint["config"].get("batch_size") or 256
        x = torch.from_numpy(np.array(prepared.test.x, np.float32)).to(device)
        probabilities = torch.softmax(predict_logits(run.model("best", device), x, batch_size), 1).cpu().numpy()
        total = probabilities if total is None else total + probabilities
        predictions = probabilities.argmax(1)
        member = classification_metrics(labels, predictions, checkpoint["classes"])
        members.append(
            {
                "run": str(run.path),
                "model": run.model_name,
                "accuracy": member["accuracy"],
                "macro_f1": member["macro_f1"],
            }
        )
    return total / len(runs), labels, members, first[1]


def evaluate_ensemble(
    runs: Sequence[Path | str], out: Path | str | None = None, data_dir: Path | str | None = None, plots: bool = True
) -> dict:
    """Test metrics of the runs' averaged probabilities, with each member's; written to `out` when given.

    `out` gets `metrics.json` (the ensemble's metrics, `members` and `runs`), `per_class.csv`, `confusion.csv` and,
    with `plots`, the confusion matrix.
    """
    probabilities, labels, members, facts = ensemble_probabilities(runs, data_dir)
    classes = facts["classes"]
    metrics = classification_metrics(labels, probabilities.argmax(1), classes)
    metrics |= {"dataset": facts["dataset"], "model": "ensemble", "members": members}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_tables(out, metrics, classes)
        if plots:
            from harkit.evaluation.plots import plot_confusion

            plot_confusion(metrics, out / "confusion.png", classes, title=f"ensemble of {len(members)} runs")
        write_text_whole(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
