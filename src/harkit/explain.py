"""Attention maps: where in time (and in which channel) SANN's spatial attention looks."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from harkit import HarkitError
from harkit.evaluation.evaluate import load_run_data
from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint


def attention_maps(model: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """The attention weights of each stage for windows `x`: arrays `[batch, time_of_stage, channels]`."""
    modules = model.attention_modules() if hasattr(model, "attention_modules") else []
    if not modules:
        raise HarkitError(
            f"{type(model).__name__} has no spatial attention; explain works for sann, "
            "sann-transformer and sann-lstm runs"
        )
    for module in modules:
        module.keep_attention = True
    try:
        with torch.inference_mode():
            model(x)
        return [module.attention[:, 0].cpu().numpy() for module in modules]
    finally:
        for module in modules:
            module.keep_attention, module.attention = False, None


def _plot_window(
    signals: np.ndarray, maps: list[np.ndarray], channels: list[str], rate: float, title: str, path: Path
) -> None:
    window = len(signals)
    seconds = np.arange(window) / rate
    fig, axes = plt.subplots(
        1 + len(maps),
        1,
        figsize=(10, 2.2 + 1.3 * len(maps)),
        sharex=True,
        layout="constrained",
        gridspec_kw={"height_ratios": [2.2] + [1] * len(maps)},
    )
    shown = min(len(channels), 9)
    for index in range(shown):
        axes[0].plot(seconds, signals[:, index], linewidth=1, label=channels[index])
    axes[0].set_ylabel("signal")
    axes[0].legend(fontsize=7, ncol=min(shown, 6), loc="upper right")
    axes[0].set_title(title)
    for stage, (ax, weights) in enumerate(zip(axes[1:], maps, strict=True), start=1):
        duration = window / rate
        image = ax.imshow(
            weights.T,
            aspect="auto",
            cmap="magma",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=(0, duration, len(channels) - 0.5, -0.5),
        )
        ax.set_ylabel(f"stage {stage}\nchannel", fontsize=8)
        ax.set_yticks(
            [] if len(channels) > 12 else range(len(channels)), [] if len(channels) > 12 else channels, fontsize=6
        )
        fig.colorbar(image, ax=ax, pad=0.01, label="attention")
    axes[-1].set_xlabel("time (s)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def explain_run(run: Path | str, out: Path | str, per_class: int = 2) -> list[Path]:
    """Plot, for `per_class` test windows of each class (correctly classified first), the raw signals and each
    stage's attention weights over time; also the mean attention over time per class. Returns the files.
    """
    run, out = Path(run), Path(out)
    checkpoint = load_checkpoint(run / "best.pt")
    model = model_from_checkpoint(checkpoint)
    prepared = load_run_data(run)
    x = torch.from_numpy(np.array(prepared.test.x, np.float32))
    with torch.inference_mode():
        predicted = torch.cat([model(x[i : i + 512]).argmax(1) for i in range(0, len(x), 512)]).numpy()
    mean, std = np.array(checkpoint["mean"]), np.array(checkpoint["std"])
    classes, channels, rate = checkpoint["classes"], checkpoint["channels"], checkpoint["sampling_rate"]
    out.mkdir(parents=True, exist_ok=True)
    written, class_profiles = [], {}
    for label, name in enumerate(classes):
        of_class = prepared.test.y == label
        # Correctly classified windows first: they show what the model relies on when it is right.
        chosen = np.concatenate(
            [np.flatnonzero(of_class & (predicted == label)), np.flatnonzero(of_class & (predicted != label))]
        )[:per_class]
        if len(chosen) == 0:
            continue
        maps = attention_maps(model, x[chosen])
        class_profiles[name] = maps[0].mean(axis=(0, 2))
        for rank, index in enumerate(chosen):
            path = out / f"{label:02d}_{name.replace(' ', '_').replace('/', '_')}_{rank}.png"
            raw = prepared.test.x[index] * std + mean
            _plot_window(
                raw,
                [m[rank] for m in maps],
                channels,
                rate,
                f"{name}: test window {index} (subject {prepared.test.subject[index]}), attention per stage",
                path,
            )
            written.append(path)
    if class_profiles:
        fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
        for name, profile in class_profiles.items():
            ax.plot(np.arange(len(profile)) * 2 / rate, profile, label=name)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mean attention, stage 1")
        ax.set_title("Where the first attention stage looks, averaged over channels and windows, per class")
        ax.legend(fontsize=7, ncol=2)
        fig.savefig(out / "attention_per_class.png", dpi=110)
        plt.close(fig)
        written.append(out / "attention_per_class.png")
    return written
