"""Hyper-parameter search with Optuna on the validation split; the test split is used once, at the end.

The study lives in a database (SQLite in the output folder by default). Several `harkit tune`
processes, on one machine or many, given the same `--storage` URL and study name, share its trials.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import optuna

from harkit.evaluation.evaluate import read_history
from harkit.models import model_options
from harkit.training import recipe
from harkit.training.augment import AugmentConfig
from harkit.training.engine import TrainConfig, train

log = logging.getLogger(__name__)

# Augmentation at strength 1; a trial scales it by a factor in [0, 1].
FULL_AUGMENTATION = AugmentConfig(shift=0.1, rotation=30.0, jitter=0.05, scale=0.1)
WIDTHS = {"width": [0.25, 0.5, 1.0], "hidden": [64, 128, 256], "dim": [32, 64, 128]}


def suggest(trial: optuna.Trial, base: TrainConfig) -> TrainConfig:
    """A configuration drawn by the trial: learning rate, weight decay, batch size, dropout,
    augmentation strength and model width.
    """
    options = dict(base.model_options)
    accepted = model_options(base.model)
    if "dropout" in accepted:
        options["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
    for name, choices in WIDTHS.items():
        if name in accepted:
            options[name] = trial.suggest_categorical(name, choices)
            break
    strength = trial.suggest_float("augment_strength", 0.0, 1.0)
    return replace(
        base,
        lr=trial.suggest_float("lr", 1e-4, 3e-3, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
        batch_size=trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        model_options=options,
        augment=FULL_AUGMENTATION.scaled(strength) if strength > 0.05 else AugmentConfig(),
    )


def config_from_params(base: TrainConfig, params: dict) -> TrainConfig:
    """Rebuild the configuration of a finished trial from its parameters."""
    return suggest(optuna.trial.FixedTrial(params), base)


def _open_study(storage: str, name: str, seed: int, attempts: int = 5) -> optuna.Study:
    """Create or load the study; processes that start together may race to create the schema, so retry."""
    for attempt in range(attempts):
        try:
            return optuna.create_study(
                study_name=name,
                storage=storage,
                load_if_exists=True,
                direction="maximize",
                sampler=optuna.samplers.TPESampler(seed=seed),
                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
            )
        except Exception as error:  # sqlalchemy's OperationalError or optuna's DuplicatedStudyError
            if attempt == attempts - 1:
                raise
            log.info("opening study %s failed (%s); retrying", name, error)
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def tune(
    base: TrainConfig,
    trials: int,
    out: Path | str,
    storage: str | None = None,
    study_name: str | None = None,
    final: bool = True,
    progress: bool = False,
) -> dict:
    """Run `trials` trials (adding to a stored study), then train and test the best configuration."""
    out = Path(out)
    if base.val_fraction == "auto":  # a search selects on validation
        base = replace(base, val_fraction=recipe.VAL_FRACTION)
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    study = _open_study(storage, study_name or f"{base.dataset}-{base.model}", base.seed)

    def objective(trial: optuna.Trial) -> float:
        config = suggest(trial, base)
        run = out / "trials" / f"trial-{trial.number:04d}"

        def report(row: dict) -> None:
            if row["val_macro_f1"] == "":
                raise ValueError("tuning needs a validation split; use --val-fraction > 0")
            trial.report(row["val_macro_f1"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {row['epoch']}")

        try:
            train(config, run, overwrite=True, progress=progress, evaluate=False, on_epoch=report)
            scores = [row["val_macro_f1"] for row in read_history(run)]
            return max(scores)
        finally:
            for name in ("best.pt", "last.pt"):  # trials keep their history, not their weights
                (run / name).unlink(missing_ok=True)

    study.optimize(objective, n_trials=trials, catch=())
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary = {
        "study": study.study_name,
        "storage": storage,
        "trials": len(study.trials),
        "complete": len(finished),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "best_params": study.best_params if finished else None,
        "best_val_macro_f1": study.best_value if finished else None,
    }
    if final and finished:
        best = out / "best"
        if best.exists():
            shutil.rmtree(best)
        train(config_from_params(base, study.best_params), best, progress=progress)
        metrics = json.loads((best / "metrics.json").read_text())
        summary["test"] = {k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")}
        summary["best_run"] = str(best)
    (out / "tune.json").write_text(json.dumps(summary, indent=2))
    return summary
