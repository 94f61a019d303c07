"""Attention maps: where in time (and in which channel) SANN's spatial attention looks."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from harkit import HarkitError
from harkit.runs import Run

EXPLAINABLE = ("sann", "sann-transformer", "sann-lstm")


def _attention_modules(model: torch.nn.Module, what: str) -> list[torch.nn.Module]:
    modules = model.attention_modules() if hasattr(model, "attention_modules") else []
    if not modules:
        raise HarkitError(
            f"{what} has no spatial attention to show; explain works for runs of {', '.join(EXPLAINABLE)}"
        )
    return modules


def attention_maps(model: torch.nn.Module, x: torch.Tensor, name: str | None = None) -> list[np.ndarray]:
    """The attention weights of each stage for windows `x`: arrays `[batch, time_of_stage, channels]`.

    `name` (the registry name, e.g. `sann`) names the model in the error raised when it has no attention.
    """
    modules = _attention_modules(model, f"the {name or type(model).__name__} model")
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
        # Scaled per map: the weights of one stage often span a narrow band (e.g. 0.45-0.55), flat on a 0-1 scale.
        low, high = float(weights.min()), float(weights.max())
        image = ax.imshow(
            weights.T,
            aspect="auto",
            cmap="magma",
            vmin=low,
            vmax=high if high > low else low + 1e-6,
            interpolation="nearest",
            extent=(0, duration, len(channels) - 0.5, -0.5),
        )
        ax.set_ylabel(f"stage {stage}\nchannel", fontsize=8)
        ax.set_yticks(
            [] if len(channels) > 12 else range(len(channels)), [] if len(channels) > 12 else channels, fontsize=6
        )
        fig.colorbar(image, ax=ax, pad=0.01).ax.tick_params(labelsize=7)
        if stage == 1:
            ax.set_title("attention weights of each stage; each map has its own colour scale", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def explain_run(run: Path | str, out: Path | str, per_class: int = 2, data_dir: Path | str | None = None) -> list[Path]:
    """Plot, for `per_class` test windows of each class (correctly classified first), the raw signals and each
    stage's attention weights over time; also the mean attention over time per class. Returns the files.

    `data_dir` is where the run's data is now, if it moved since training.
    """
    opened, out = Run(run), Path(out)
    checkpoint = opened.checkpoint()
    model, model_name = opened.model(), checkpoint["model"]["name"]
    _attention_modules(model, f"{opened.path} holds a {model_name} model, which")  # refuse before reading data
    prepared = opened.dataset(data_dir)
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
        maps = attention_maps(model, x[chosen], model_name)
        class_profiles[name] = maps[0].mean(axis=(0, 2))
        for rank, index in enumerate(chosen):
            path = out / f"{label:02d}_{name.replace(' ', '_').replace('/', '_')}_{rank}.png"
            raw = prepared.test.x[index] * std + mean
            _plot_window(
                raw,
                [m[rank] for m in maps],
                channels,
                rate,
                f"{model_name}, {name}: test window {index} (subject {prepared.test.subject[index]}), attention",
                path,
            )
            written.append(path)
    if class_profiles:
        fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
        for name, profile in class_profiles.items():
            ax.plot(np.arange(len(profile)) * 2 / rate, profile, label=name)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mean attention, stage 1")
        ax.set_title(f"{model_name}: where the first attention stage looks, mean over channels and windows, per class")
        ax.legend(fontsize=7, ncol=2)
        fig.savefig(out / "attention_per_class.png", dpi=110)
        plt.close(fig)
        written.append(out / "attention_per_class.png")
    return written
