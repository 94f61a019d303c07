"""Figures of a run: per-class scores, learning curves and the confusion matrix (PNG, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def plot_per_class(metrics: dict, path: Path) -> None:
    """Grouped bars of precision, recall and F1 per class."""
    rows = metrics["per_class"]
    names = [r["class"] for r in rows]
    positions = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 4.5), layout="constrained")
    for offset, key in zip((-0.27, 0, 0.27), ("precision", "recall", "f1"), strict=True):
        ax.bar(positions + offset, [r[key] for r in rows], width=0.27, label=key)
    ax.set_xticks(positions, names, rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1.15)  # room above the bars for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score")
    ax.set_xlabel("class")
    ax.set_title(f"{metrics['model']} on {metrics['dataset']}: per-class scores (test)")
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(history: list[dict], title: str, path: Path) -> None:
    """Loss and accuracy per epoch, training against validation."""
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, key, label in ((loss_ax, "loss", "loss"), (acc_ax, "accuracy", "accuracy")):
        ax.plot(epochs, [row[f"train_{key}"] for row in history], marker="o", markersize=3, label="train")
        val = [row.get(f"val_{key}") for row in history]
        if any(v is not None for v in val):
            ax.plot(epochs, [np.nan if v is None else v for v in val], marker="o", markersize=3, label="validation")
        ax.set_xlabel("epoch")
        # whole epochs, never 0.5 (nor 0.995 with a single epoch)
        if len(epochs) <= 10:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confusion(metrics: dict, path: Path, classes: list[str] | None = None, title: str | None = None) -> None:
    """Row-normalised confusion matrix with counts, class names on both axes (rows: true, columns: predicted)."""
    names = classes if classes is not None else [r["class"] for r in metrics["per_class"]]
    normalised = np.array(metrics["confusion_normalised"])
    counts = np.array(metrics["confusion"])
    size = max(5, 0.55 * len(names) + 3)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), layout="constrained")
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(names) <= 20:
        for i in range(len(names)):
            for j in range(len(names)):
                if counts[i, j]:
                    colour = "white" if normalised[i, j] > 0.6 else "black"
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    ax.set_title(title or f"{metrics['model']} on {metrics['dataset']}: confusion (test)")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_run(run: Path, metrics: dict, history: list[dict]) -> None:
    """All figures of one run, into `run/plots/`, and `run/report.html` that shows them with the metrics."""
    folder = Path(run) / "plots"
    folder.mkdir(exist_ok=True)
    plot_per_class(metrics, folder / "per_class.png")
    plot_confusion(metrics, folder / "confusion.png")
    if history:
        plot_curves(history, f"{metrics['model']} on {metrics['dataset']}", folder / "curves.png")
    from harkit.evaluation.report import write_run_report  # the page that shows these figures

    write_run_report(run, metrics)
