"""Classification metrics from scikit-learn, with every class counted even when absent from a split."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def present_labels(y_true: np.ndarray, y_pred: np.ndarray) -> list[int]:
    """Classes that occur in the truth or the predictions: what scikit-learn averages over by default."""
    return sorted(set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist()))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over the classes present in `y_true` or `y_pred`."""
    return float(f1_score(y_true, y_pred, labels=present_labels(y_true, y_pred), average="macro", zero_division=0))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, macro and weighted scores, per-class table and confusion matrices.

    Macro averages run over the classes present in `y_true` or `y_pred`, so a class missing from a
    leave-one-subject-out fold does not drag the mean down with a zero it never had a chance to earn.
    """
    k = len(class_names)
    labels = list(range(k))
    present = present_labels(y_true, y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    macro_p, macro_r, macro_f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=present, average="macro", zero_division=0
    )
    weighted = f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
    counts = confusion_matrix(y_true, y_pred, labels=labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    total = max(1, len(y_true))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(macro_p),
        "macro_recall": float(macro_r),
        "macro_f1": float(macro_f),
        "weighted_f1": float(weighted),
        "samples": len(y_true),
        "per_class": [
            {
                "class": name,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                "proportion": float(support[i] / total),
            }
            for i, name in enumerate(class_names)
        ],
        "confusion": counts.tolist(),
        "confusion_normalised": normalised.round(6).tolist(),
    }
