"""Cross-validation by subject: one run per fold, then the mean and spread of every metric."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from harkit.datasets import SubjectSplit, prepare
from harkit.datasets.splits import count_folds
from harkit.training.engine import TrainConfig, train

METRICS = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")


def cross_validate(
    config: TrainConfig,
    out: Path | str,
    scheme: str,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Train one model per fold of `scheme` (`loso` or a number of folds) into `out/fold-NN`.

    Finished folds are kept, so an interrupted cross-validation resumes where it stopped.
    """
    out = Path(out)
    first = SubjectSplit.parse(scheme, 0)
    probe = prepare(
        config.dataset,
        replace(config.prepare_config(), split=first, val_fraction=0.0),
        data_dir=config.data_dir,
        **config.dataset_options,
    )
    subjects = np.concatenate([probe.train.subject, probe.test.subject])
    rows = []
    for fold in range(count_folds(first, subjects)):
        fold_config = replace(config, split=SubjectSplit.parse(scheme, fold))
        run = out / f"fold-{fold:02d}"
        finished = (run / "metrics.json").is_file()
        if not finished or overwrite:
            train(
                fold_config,
                run,
                resume=resume or (run / "last.pt").is_file(),
                overwrite=overwrite and finished,
                progress=progress,
            )
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append({"fold": fold, "test_subjects": metrics["test_subjects"], **{k: metrics[k] for k in METRICS}})
    summary = {
        "dataset": config.dataset,
        "model": config.model,
        "scheme": scheme,
        "folds": rows,
        "mean": {k: float(np.mean([r[k] for r in rows])) for k in METRICS},
        "std": {k: float(np.std([r[k] for r in rows], ddof=1)) if len(rows) > 1 else 0.0 for k in METRICS},
    }
    (out / "crossval.json").write_text(json.dumps(summary, indent=2))
    return summary
