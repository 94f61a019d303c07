"""Training recipes: hyper-parameters resolved from the size of the data.

`harkit` (the default) sizes the batch, the number of epochs and the learning-rate schedule from the
number of training windows, so that small data gets enough optimiser steps and large data gets full
batches: a batch of about 1/16 of the training windows (8 to 128), at least `MIN_STEPS` updates over at
least 30 epochs, a linear warm-up then a cosine decay counted in steps and run to its end (no early
stopping: the epochs at a high learning rate are the noisiest, and on HAPT a patience of a quarter of the
epochs stopped one seed at epoch 16 of 43 on an early, noisy best), BatchNorm statistics re-estimated on
training windows before each validation, label smoothing 0.1, augmentation by time shift, scaling and
jitter (shift 0.1, scale 0.1, jitter 0.05), and from `KEEP_LAST_WINDOWS` training windows on, the final
epoch's model rather than the best on validation. Where a run selects nothing on validation, `--val-fraction auto`
holds no training subject out for it (`selects_on_validation`).

`article` is the SANN article's recipe exactly: AdamW (lr 5e-4, weight decay 1e-3), batch 128, 30 epochs,
StepLR every epochs // 3 epochs with gamma 0.5, plain cross-entropy.

A field the user set explicitly (not None) always wins over the recipe.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn

from harkit import HarkitError
from harkit.training.augment import AugmentConfig

log = logging.getLogger(__name__)

RECIPES = ("harkit", "article")
SCHEDULES = ("cosine", "step", "constant")
MIN_STEPS = 2000  # optimiser updates the harkit recipe asks for, whatever the data size
MIN_EPOCHS, MAX_EPOCHS = 30, 300
MIN_BATCH, MAX_BATCH = 8, 128
WINDOWS_PER_BATCH = 16  # an epoch has about this many updates before the batch reaches MAX_BATCH
FEW_WINDOWS = 10  # fewer training windows than this in a class is too few to trust
BN_WINDOWS = 2048  # training windows used to re-estimate BatchNorm statistics
# From this many training windows the harkit recipe keeps the final epoch's model instead of the best on
# validation. Measured (docs/results/accuracy): with a few validation subjects, the best epoch on validation is
# often an early, noisy one (HAPT seed 2: epoch 6 of 42, 0.928 test accuracy against 0.959 for the last; UCI-HAR
# seed 2: epoch 12, 0.952 against 0.963; tiny on HAPT: 0.907 against 0.949), while on 40 training windows the
# last of 300 epochs has overfitted (PickupGestureWiimoteZ: 0.83 best against 0.73 last).
KEEP_LAST_WINDOWS = 1000
# The share of the training subjects that validates when a run selects on validation. Where nothing is selected
# on it (the last epoch kept and no early stopping, or a closed-form fit), `--val-fraction auto` holds none out:
# HAPT seed 2 trained on all 21 training subjects reached 0.975 test accuracy against 0.959 with 4 of them
# validating (docs/results/accuracy).
VAL_FRACTION = 0.2
# `--model auto`, the default of `harkit train`: MiniRocket below this many training windows, SANN from it on.
# Measured with 3 seeds on nine real datasets and subsets (docs/results/recipe/README.md): MiniRocket led SANN's
# defaults by 1 to 7 points below 1,000 windows and was level or up to 0.3 points ahead at 1,600-3,250; SANN was
# level or ahead on the full HAPT and UCI-HAR training sets (about 7,400).
AUTO_MODEL_WINDOWS = 5000
ARTICLE = {
    "epochs": 30,
    "batch_size": 128,
    "lr": 5e-4,
    "weight_decay": 1e-3,
    "schedule": "step",
    "warmup": 0.0,
    "patience": 10,
    "label_smoothing": 0.0,
    "bn_recalibrate": False,
    "augment": AugmentConfig(),
}
HARKIT = {
    "lr": 1e-3,
    "weight_decay": 1e-2,
    "schedule": "cosine",
    "warmup": 0.05,
    "label_smoothing": 0.1,
    # Shift, scale and jitter are safe for any signal; rotation is left out (static postures such as sitting
    # and standing differ by the direction of gravity). On 40 training windows this took SANN from 0.40 to
    # 0.78 test accuracy, and changed nothing beyond one test window on JapaneseVowels (docs/results/recipe).
    "augment": AugmentConfig(shift=0.1, scale=0.1, jitter=0.05),
}


@dataclass
class Resolved:
    """The hyper-parameters a run uses, with how each was chosen and the warnings about the data."""

    recipe: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    schedule: str
    warmup: float
    patience: int | None
    label_smoothing: float
    bn_recalibrate: bool
    augment: AugmentConfig
    keep: str
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    auto: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain data, for config.json."""
        return asdict(self)


# The `TrainConfig` fields a recipe fills in.
RESOLVED_FIELDS = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "schedule",
    "warmup",
    "patience",
    "label_smoothing",
    "bn_recalibrate",
    "augment",
    "keep",
)


def log_resolved(resolved: Resolved) -> None:
    """One line with the hyper-parameters chosen from the data, then one warning per problem with the data."""
    chosen = ", ".join(f"{name} {getattr(resolved, name)}" for name in resolved.auto)
    log.info(
        "recipe %s: %s (%d updates per epoch, %d in all)",
        resolved.recipe,
        chosen or "every value set explicitly",
        resolved.steps_per_epoch,
        resolved.total_steps,
    )
    for warning in resolved.warnings:
        log.warning(warning)


def default_batch_size(n_train: int) -> int:
    """A power of two near `n_train / 16`, clamped to [8, 128] and never above `n_train`."""
    target = max(1.0, n_train / WINDOWS_PER_BATCH)
    batch = 2 ** round(math.log2(target))
    return max(1, min(n_train, max(MIN_BATCH, min(MAX_BATCH, batch))))


def default_epochs(steps_per_epoch: int) -> int:
    """Enough epochs for `MIN_STEPS` updates, within [30, 300]."""
    return max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(MIN_STEPS / max(1, steps_per_epoch))))


def data_warnings(
    y_train: np.ndarray,
    n_val: int,
    classes: list[str],
    batch_size: int,
    val_fraction: float | str | None = None,
    selects: bool = True,
) -> list[str]:
    """What makes results on this data hard to trust, in words a user can act on."""
    warnings = []
    counts = np.bincount(np.asarray(y_train, np.int64), minlength=len(classes))
    present = np.flatnonzero(counts)
    if len(present) == 1:
        warnings.append(
            f"the training part holds a single class ({classes[present[0]]}): the model can only learn to predict "
            "it; check the labels, --train-subjects and the split"
        )
    absent = [classes[i] for i in np.flatnonzero(counts == 0)]
    if absent:
        warnings.append(f"no training windows for {', '.join(absent)}: these classes cannot be predicted")
    few = [f"{classes[i]} ({counts[i]})" for i in present if counts[i] < FEW_WINDOWS]
    if few:
        warnings.append(
            f"fewer than {FEW_WINDOWS} training windows for {', '.join(few)}: scores will vary a lot between "
            "seeds; add recordings, or raise --overlap for more windows"
        )
    if n_val == 0 and selects:  # a run that selects nothing on validation does not miss it
        hint = "" if val_fraction == 0 else " (the validation fraction takes no whole subject here)"
        warnings.append(
            f"the validation part is empty{hint}: no early stopping, and the last epoch's model is kept; "
            "use --val-fraction above 0 with more training subjects to select on validation"
        )
    if batch_size > len(y_train):
        warnings.append(
            f"the batch size {batch_size} is larger than the {len(y_train)} training windows: one update per epoch; "
            "leave --batch-size unset to size it from the data"
        )
    return warnings


def resolve(
    config, y_train: np.ndarray, n_val: int, classes: list[str], rotatable: bool = True, closed_form: bool = False
) -> Resolved:
    """The hyper-parameters of `config` (a `TrainConfig`), each None field filled in by its recipe.

    `rotatable`: whether the windows hold 3-axis sensors of a device; without, the recipe's augmentation
    does not rotate. `closed_form`: a fit with no epochs (MiniRocket), which selects nothing on validation.
    """
    if config.recipe not in RECIPES:
        raise HarkitError(f"unknown recipe {config.recipe!r}; use {' or '.join(RECIPES)}")
    n_train = len(y_train)
    if n_train == 0:
        raise HarkitError(
            "the training part holds no windows; check --train-subjects, the split and that the recordings are "
            "at least one window long"
        )
    article = config.recipe == "article"
    auto = []

    def pick(name: str, default):
        value = getattr(config, name)
        if value is None:
            auto.append(name)
            return default
        return value

    batch_size = pick("batch_size", ARTICLE["batch_size"] if article else default_batch_size(n_train))
    steps_per_epoch = math.ceil(n_train / batch_size)
    epochs = pick("epochs", ARTICLE["epochs"] if article else default_epochs(steps_per_epoch))
    defaults = ARTICLE if article else HARKIT
    lr = pick("lr", defaults["lr"])
    weight_decay = pick("weight_decay", defaults["weight_decay"])
    schedule = pick("schedule", defaults["schedule"])
    warmup = pick("warmup", defaults["warmup"])
    label_smoothing = pick("label_smoothing", defaults["label_smoothing"])
    bn_recalibrate = pick("bn_recalibrate", not article)
    augment = pick("augment", defaults["augment"] if rotatable else replace(defaults["augment"], rotation=0.0))
    if config.patience == "auto":
        auto.append("patience")
    if config.keep == "auto":
        auto.append("keep")
    patience = _patience(config, schedule, epochs)
    keep = _keep(config, schedule, n_train)
    if schedule not in SCHEDULES:
        raise HarkitError(f"unknown schedule {schedule!r}; use {', '.join(SCHEDULES)}")
    if epochs < 1:
        raise HarkitError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise HarkitError(f"batch size must be at least 1, got {batch_size}")
    if not 0 <= warmup < 1:
        raise HarkitError(f"warmup is a fraction of the training steps in [0, 1), got {warmup}")
    total_steps = epochs * steps_per_epoch
    return Resolved(
        recipe=config.recipe,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        schedule=schedule,
        warmup=warmup,
        patience=patience,
        label_smoothing=label_smoothing,
        bn_recalibrate=bool(bn_recalibrate),
        augment=augment,
        keep=keep,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        warmup_steps=round(warmup * total_steps),
        auto=auto,
        warnings=data_warnings(
            y_train,
            n_val,
            classes,
            batch_size,
            config.val_fraction,
            selects=_selects(keep, patience, closed_form),
        ),
    )


def _patience(config, schedule: str, epochs: int) -> int | None:
    """Early stopping's patience; none under a cosine schedule, run to its end: its last epochs are the ones to keep."""
    if config.patience != "auto":
        return config.patience or None
    if config.recipe == "article":
        return ARTICLE["patience"]
    return None if schedule == "cosine" else max(10, epochs // 4)


def _keep(config, schedule: str, n_train: int) -> str:
    if config.keep != "auto":
        return config.keep
    return "last" if config.recipe != "article" and schedule == "cosine" and n_train >= KEEP_LAST_WINDOWS else "best"


def selects_on_validation(config, n_windows: int, closed_form: bool = False) -> bool:
    """Whether a run of `config` (a `TrainConfig`) on `n_windows` training windows chooses anything on validation.

    It does when it keeps the best epoch on validation or stops early; a closed-form fit (MiniRocket) selects
    nothing. Decides `--val-fraction auto`: validation is held out only where it is used.
    """
    schedule = config.schedule or (ARTICLE if config.recipe == "article" else HARKIT)["schedule"]
    # Patience only matters as none or some: any epoch count gives the same answer.
    return _selects(_keep(config, schedule, n_windows), _patience(config, schedule, MIN_EPOCHS), closed_form)


def _selects(keep: str, patience: int | None, closed_form: bool) -> bool:
    return not closed_form and (keep == "best" or bool(patience))


def auto_model(config, n_windows: int) -> tuple[str, str]:
    """(model name, why) that `--model auto` trains on `n_windows` training windows under `config`'s recipe."""
    if config.recipe == "article":
        return "sann", "the article's recipe is SANN's"
    if n_windows < AUTO_MODEL_WINDOWS:
        return "minirocket", (
            f"{n_windows} training windows, under {AUTO_MODEL_WINDOWS:,}, where MiniRocket matched or beat SANN on "
            "every dataset measured"
        )
    return "sann", f"{n_windows} training windows, at least {AUTO_MODEL_WINDOWS:,}"


def lr_factor(resolved: Resolved, step_size: int | None, gamma: float):
    """The learning-rate multiplier at an optimiser step (for `LambdaLR`, stepped once per batch)."""
    steps, warmup, total = resolved.steps_per_epoch, resolved.warmup_steps, resolved.total_steps
    if resolved.schedule == "step":
        every = step_size or max(1, resolved.epochs // 3)
        return lambda step: gamma ** ((step // steps) // every)
    if resolved.schedule == "constant":
        return lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return cosine


def has_batch_norm(model: nn.Module) -> bool:
    """Whether any layer of `model` is a BatchNorm."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def draws_random_numbers(model: nn.Module) -> bool:
    """Whether a forward pass in training mode draws from the global generator: dropout anywhere in `model`."""
    for module in model.modules():
        rate = module.p if isinstance(module, nn.modules.dropout._DropoutNd) else getattr(module, "dropout", 0)
        if isinstance(rate, float) and rate > 0:
            return True
    return False


@torch.no_grad()
def recalibrate_batch_norm(
    model: nn.Module, x: torch.Tensor, batch_size: int, autocast=None, limit: int = BN_WINDOWS
) -> None:
    """Re-estimate every BatchNorm's running statistics on (up to `limit`) training windows.

    Running averages with momentum 0.1 trail weights that move fast, and after a few dozen updates they
    are what breaks prediction; the exact average over the current weights (momentum None) is not. The
    windows are evenly spaced over `x`, so no random state is used. Assumes a BatchNorm model.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches below
    index = torch.linspace(0, len(x) - 1, min(limit, len(x)), device=x.device).round().long().unique()
    model.train()
    for start in range(0, len(index), batch_size):
        batch = x[index[start : start + batch_size]]
        if len(batch) < 2 and start > 0:
            break  # a batch of one gives no variance
        with autocast or torch.autocast(x.device.type, enabled=False):
            model(batch)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.train(was_training)
