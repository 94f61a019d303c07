"""Telling a run that learned nothing from one that learned little.

A run has diverged when both hold at its end:
- its last epoch's training loss is at least ln K, what guessing uniformly among its K classes scores, after
  at least `MIN_STEPS` optimizer steps, or at least 2 ln K (confidently wrong) however short the run: it fits
  the windows it trains on no better than knowing nothing. A learning run drops below ln K within its first
  hundred steps; a diverged one sits far above it (in the millions after `--lr 1000`), while a run of a few
  steps on a few windows may still be near ln K without anything being wrong;
- its best validation macro F1 is no better than always answering the most frequent validation class (without
  validation: its training accuracy is no better than that answer's).
Either alone is not enough: a short run may validate at chance (its validation subjects may do other
activities), and a hard dataset keeps a high loss for a while.
"""

from __future__ import annotations

import math

import numpy as np

from harkit import HarkitError

MARGIN = 0.01  # scores this close to the constant answer count as no better
MIN_STEPS = 100


class TrainingDiverged(HarkitError):
    """The run ended having learned nothing; its files are kept and it is marked failed."""


def constant_answer_macro_f1(y: np.ndarray) -> float:
    """Macro F1 (over the classes present) of always answering the most frequent class of `y`."""
    counts = np.bincount(np.asarray(y, np.int64))
    counts = counts[counts > 0]
    share = counts.max() / counts.sum()
    return float(2 * share / (1 + share) / len(counts))


def diverged(history: list[dict], num_classes: int, train_y: np.ndarray, val_y: np.ndarray, steps: int) -> str | None:
    """What went wrong, when the run learned nothing (see the module's rule); None for a run that learned.

    `steps` is the number of optimizer steps the run took.
    """
    if not history or num_classes < 2:
        return None
    loss = float(history[-1]["train_loss"])
    uniform = math.log(num_classes)
    if loss < (uniform if steps >= MIN_STEPS else 2 * uniform):
        return None
    if len(val_y):
        best = max(float(row["val_macro_f1"]) for row in history)
        chance = constant_answer_macro_f1(val_y)
        if best > chance + MARGIN:
            return None
        score = f"its best validation macro F1, {best:.3f}, is no better than always answering one class ({chance:.3f})"
    else:
        accuracy = float(history[-1]["train_accuracy"])
        chance = float(np.bincount(np.asarray(train_y, np.int64)).max() / len(train_y))
        if accuracy > chance + MARGIN:
            return None
        score = f"its training accuracy, {accuracy:.3f}, is no better than always answering one class ({chance:.3f})"
    return (
        f"the run diverged: after {steps} steps its training loss ended at {loss:.4g}, no lower than "
        f"{uniform:.3f} (guessing among {num_classes} classes), and {score}"
    )
