"""Cross-validation by subject: one run per fold, then the mean and spread of every metric."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from harkit import HarkitError
from harkit.datasets import SubjectSplit, prepare
from harkit.datasets.splits import count_folds
from harkit.runs import RunInUse, fold_row, write_fold_summary
from harkit.training.engine import TrainConfig, choose_model, train
from harkit.training.grid import Countdown


def parse_folds(text: str | None) -> list[int] | None:
    """`"1,2,5"` or `"0-3,7"` -> `[1, 2, 5]` / `[0, 1, 2, 3, 7]`; None or empty -> None (every fold)."""
    if not text:
        return None
    folds = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            folds += range(int(first), int(last or first) + 1)
        except ValueError:
            raise HarkitError(f"--only {text!r}: expected fold numbers such as 1,2,5 or 0-3") from None
    return sorted(set(folds))


def cross_validate(
    config: TrainConfig,
    out: Path | str,
    scheme: str,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    only: Sequence[int] | None = None,
    say: Callable[[str], None] | None = None,
    ray: bool = False,
) -> dict:
    """Train one model per fold of `scheme` (`loso` or a number of folds) into `out/fold-NN`.

    Finished folds are kept, so an interrupted cross-validation resumes where it stopped. `only` trains a subset
    of the folds (numbered from 0, as the `fold-NN` folders); the summary names the folds it covers. `say`
    receives one line per fold ("fold 2 (3 of 5), test subjects 3: ..." with an ETA); by default they are logged.
    With `ray`, each fold is a Ray task (harkit.training.ray_grid); a fold that fails there is recorded in its
    `error.txt`, and the summary covers the folds that finished.
    """
    out = Path(out)
    first = SubjectSplit.parse(scheme, 0)
    probe = prepare(
        config.dataset,
        replace(config.prepare_config(), split=first, val_fraction=0.0),
        data_dir=config.data_dir,
        **config.dataset_options,
    )
    if config.model == "auto":  # one choice for every fold, from the first fold's training windows
        config = choose_model(config, len(probe.train))
    subjects = np.concatenate([probe.train.subject, probe.test.subject])
    total = count_folds(first, subjects)
    folds = list(range(total)) if only is None else sorted(set(only))
    missing = [fold for fold in folds if not 0 <= fold < total]
    if missing:
        raise HarkitError(f"--only {missing}: this {scheme} split has folds 0..{total - 1}")
    loso_subjects = np.unique(subjects) if first.kind == "loso" else None
    countdown = Countdown(len(folds), say)

    def describe(fold: int) -> str:
        what = f"fold {fold} of {total}"
        return what + (f", test subject {loso_subjects[fold]}" if loso_subjects is not None else "")

    cells = [(replace(config, split=SubjectSplit.parse(scheme, fold)), out / f"fold-{fold:02d}") for fold in folds]
    if ray:
        return _cross_validate_on_ray(config, out, scheme, total, folds, cells, describe, countdown)
    rows = []
    for fold, (fold_config, run) in zip(folds, cells, strict=True):
        what = describe(fold)
        finished = (run / "metrics.json").is_file()
        if not finished or overwrite:
            countdown.start(what)
            try:
                train(
                    fold_config,
                    run,
                    resume=resume or (run / "last.pt").is_file(),
                    overwrite=overwrite and finished,
                    progress=progress,
                )
            except RunInUse:  # another process trains this fold (overlapping --only lists): it finishes it
                countdown.finish(what, "busy")
                continue
        rows.append(fold_row(fold, json.loads((run / "metrics.json").read_text())))
        countdown.finish(what, "finished" if not finished or overwrite else "skipped", run)
    if not rows:
        raise HarkitError("every fold asked for is being trained by other processes; run again once they end")
    return write_fold_summary(out, config.dataset, config.model, scheme, total, rows)


def _cross_validate_on_ray(config, out, scheme, total, folds, cells, describe, countdown) -> dict:
    from harkit.training.ray_grid import run_on_ray

    fold_of = {run: fold for fold, (_, run) in zip(folds, cells, strict=True)}
    rows = {}

    def on_finish(_, run: Path, status: str) -> None:
        fold = fold_of[run]
        if status in ("finished", "skipped"):  # not "failed", nor "busy" (another process trains it)
            rows[fold] = fold_row(fold, json.loads((run / "metrics.json").read_text()))
        countdown.finish(describe(fold), status, run)

    countdown.say(f"{len(cells)} folds as Ray tasks")
    run_on_ray(cells, on_finish)
    if not rows:
        raise HarkitError(f"every fold failed on Ray; each fold's error.txt in {out} says why")
    return write_fold_summary(out, config.dataset, config.model, scheme, total, [rows[f] for f in sorted(rows)])
