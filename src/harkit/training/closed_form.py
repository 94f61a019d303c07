"""Models fitted in closed form (MiniRocket's ridge head): one fit on the training windows, no epochs.

A model opts in by having a `fit(x_train, y_train, seed=...)` method; the engine then calls
`fit_closed_form` once instead of running gradient epochs and writes the same run directory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)


def is_closed_form(model: nn.Module) -> bool:
    """Whether a model fits itself in closed form (it has a callable `fit`)."""
    return callable(getattr(model, "fit", None))


def fit_closed_form(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    batch_size: int,
    criterion: nn.Module,
    seed: int,
    evaluate_split: Callable[..., dict],
) -> dict:
    """Fit once and return the run's single history row (epoch 1), scored on training and validation windows.

    `model.fit` may return a dict with `train_logits`, the training windows' logits it computed anyway.
    `evaluate_split` is the engine's scorer, passed in so this module stays below the engine.
    """
    began = time.perf_counter()
    fitted = model.fit(x_train, y_train, seed=seed)
    train_seconds = time.perf_counter() - began
    fitted = fitted if isinstance(fitted, dict) else {}
    facts = {key: value for key, value in fitted.items() if isinstance(value, float)}  # alpha, temperature
    if facts:
        log.info("closed-form fit in %.1f s: %s", train_seconds, ", ".join(f"{k} {v:.4g}" for k, v in facts.items()))
    logits = fitted.get("train_logits")
    if logits is None:
        train = evaluate_split(model, x_train, y_train, batch_size, criterion, None)
    else:  # the model scored its training windows while fitting
        logits = logits.to(y_train.device)
        train = {
            "loss": float(criterion(logits, y_train)),
            "accuracy": float((logits.argmax(1) == y_train).float().mean()),
        }
    row = {"epoch": 1, "train_loss": train["loss"], "train_accuracy": train["accuracy"], "lr": ""}
    if len(y_val):
        val = evaluate_split(model, x_val, y_val, batch_size, criterion, None)
        row |= {"val_loss": val["loss"], "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"]}
    else:
        row |= {"val_loss": "", "val_accuracy": "", "val_macro_f1": ""}
    return row | {"seconds": time.perf_counter() - began, "train_seconds": train_seconds}
