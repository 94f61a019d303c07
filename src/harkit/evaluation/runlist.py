"""Finding and comparing run directories: the data behind `harkit runs [DIR]` and `harkit runs A B`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from harkit import HarkitError
from harkit.runs import Run

# Config keys shown when runs are compared (the ones that differ are marked).
CONFIG_KEYS = (
    "dataset",
    "model",
    "seed",
    "recipe",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "schedule",
    "patience",
    "model_options",
    "augment",
    "precision",
    "window",
    "split",
)
METRIC_KEYS = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")


def find_runs(root: Path | str) -> list[Run]:
    """Every run directory (a folder with `config.json`) under `root`, `root` itself included, by path."""
    root = Path(root)
    if not root.is_dir():
        raise HarkitError(f"{root} is not a folder; pass a folder holding runs, e.g. runs")
    paths = sorted({p.parent for p in root.rglob("config.json")})
    return [Run(p) for p in paths]


def status_of(run: Run) -> str:
    """finished, failed or interrupted; a benchmark cell that failed holds `error.txt`."""
    status = run.status
    if status == "interrupted" and (run.path / "error.txt").is_file():
        return "failed"
    return status


def date_of(run: Run) -> str:
    """When the run last wrote its results (metrics, else history, else config), local time."""
    for name in ("metrics.json", "history.csv", "config.json"):
        path = run.path / name
        if path.is_file():
            return dt.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    return ""


def summary_row(run: Run, root: Path | None = None) -> dict:
    """One line of `harkit runs`: where, what, how well, when, and whether it finished."""
    metrics = run.metrics or {}
    path = run.path.relative_to(root) if root is not None and run.path.is_relative_to(root) else run.path
    return {
        "run": str(path) if str(path) != "." else str(run.path),
        "dataset": str(run.config.get("dataset", "")),
        "model": str(run.config.get("model", "")),
        "seed": str(run.config.get("seed", "")),
        "accuracy": f"{metrics['accuracy']:.4f}" if "accuracy" in metrics else "–",
        "macro F1": f"{metrics['macro_f1']:.4f}" if "macro_f1" in metrics else "–",
        "date": date_of(run),
        "status": status_of(run),
    }


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items() if v not in (None, 0, 0.0, False)) or "–"
    return "–" if value is None else str(value)


def compare(runs: list[Run]) -> list[tuple[str, list[str], bool]]:
    """Rows of a side-by-side comparison: (what, one value per run, whether the values differ)."""
    rows = []
    for key in CONFIG_KEYS:
        values = [_show(run.config.get(key)) for run in runs]
        rows.append((key, values, len(set(values)) > 1))
    for key in METRIC_KEYS:
        values = [f"{(run.metrics or {}).get(key, float('nan')):.4f}" if run.metrics else "–" for run in runs]
        rows.append((key.replace("_", " "), values, len(set(values)) > 1))
    extra = [
        ("parameters", lambda m: f"{m['parameters']:,}"),
        ("ms / window (batch 1)", lambda m: f"{m['latency']['batch_1']['per_window_ms']:.3f}"),
        ("s / epoch", lambda m: f"{m['seconds_per_epoch']:.2f}"),
        ("epochs run", lambda m: str(m.get("epochs_run", "–"))),
    ]
    for name, get in extra:
        values = []
        for run in runs:
            try:
                values.append(get(run.metrics))
            except (KeyError, TypeError):
                values.append("–")
        rows.append((name, values, len(set(values)) > 1))
    rows.append(("status", [status_of(run) for run in runs], False))
    return rows
