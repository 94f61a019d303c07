"""Subject-wise splits: the dataset's default test part, explicit subjects, leave-one-subject-out and
k folds by subject, and a validation part carved from the training subjects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

from harkit import HarkitError, checks
from harkit.datasets.base import DefaultSplit, Windows
from harkit.datasets.windows import WindowPlan


@dataclass(frozen=True)
class SubjectSplit:
    """Which windows are held out for testing.

    `kind` is one of `default` (the dataset's published or customary split), `subjects` (the subjects
    in `test_subjects`), `loso` (fold `fold` of leave-one-subject-out) or `kfold` (fold `fold` of
    `folds` folds by subject).
    """

    kind: str = "default"
    test_subjects: tuple[int, ...] = ()
    folds: int = 0
    fold: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("default", "subjects", "loso", "kfold"):
            raise HarkitError(f"unknown split {self.kind!r}; use default, subjects, loso or kfold")
        if self.kind == "subjects" and not self.test_subjects:
            raise HarkitError("a 'subjects' split needs at least one test subject")
        if self.kind == "kfold" and self.folds < 2:
            raise HarkitError(f"k-fold needs at least 2 folds, got {self.folds}")
        checks.whole("fold", self.fold, 0)

    @classmethod
    def parse(cls, text: str | None, fold: int = 0) -> SubjectSplit:
        """From CLI text: `default`, `loso`, a number of folds, or comma-separated test subjects (`s:2,4`)."""
        checks.whole("fold", fold, 0)
        if text is None or text == "default":
            return cls()
        if text == "loso":
            return cls("loso", fold=fold)
        if text.startswith("s:"):
            subjects = []
            for piece in text[2:].split(",") if text[2:] else []:
                if not piece.strip().isdigit():
                    raise HarkitError(
                        f"cannot read test subjects {piece!r} in --split {text}: write the subject numbers, "
                        "e.g. --split s:2,4,9"
                    )
                subjects.append(int(piece))
            return cls("subjects", tuple(subjects))
        if text.isdigit():
            return cls("kfold", folds=int(text), fold=fold)
        raise HarkitError(f"cannot read split {text!r}; use default, loso, K (folds) or s:1,2,3")

    def describe(self) -> dict:
        return {"kind": self.kind, "test_subjects": list(self.test_subjects), "folds": self.folds, "fold": self.fold}


def count_folds(split: SubjectSplit, subjects: np.ndarray) -> int:
    """How many folds a cross-validation scheme has on these subjects (1 for a single split)."""
    if split.kind == "loso":
        return len(np.unique(subjects))
    if split.kind == "kfold":
        return split.folds
    return 1


def test_mask(windows: Windows | WindowPlan, split: SubjectSplit, default: DefaultSplit) -> np.ndarray:
    """Boolean mask of the test windows."""
    subjects = windows.subject
    if split.kind == "default":
        if default.test_sessions:
            keys = np.char.add(subjects.astype(str), np.char.add("/", windows.session.astype(str)))
            wanted = [f"{s}/{session}" for s, session in default.test_sessions]
            return np.isin(keys, wanted)
        return np.isin(subjects, default.test_subjects)
    if split.kind == "subjects":
        missing = set(split.test_subjects) - set(np.unique(subjects).tolist())
        if missing:
            raise HarkitError(
                f"test subjects {sorted(missing)} are not in the data; subjects are {np.unique(subjects).tolist()}"
            )
        return np.isin(subjects, split.test_subjects)
    splitter = LeaveOneGroupOut() if split.kind == "loso" else GroupKFold(n_splits=split.folds)
    n = count_folds(split, subjects)
    if n < 2:
        raise HarkitError(f"a {split.kind} split needs at least two subjects; the data has one")
    if not 0 <= split.fold < n:
        raise HarkitError(f"fold {split.fold} does not exist: this split has folds 0..{n - 1}")
    for index, (_, test) in enumerate(splitter.split(subjects, groups=subjects)):
        if index == split.fold:
            mask = np.zeros(len(subjects), bool)
            mask[test] = True
            return mask
    raise AssertionError("unreachable")


def validation_mask(
    subject: np.ndarray, session: np.ndarray, fraction: float, seed: int, by_session: bool = False
) -> np.ndarray:
    """Boolean mask of a validation part: whole training subjects (or recordings) drawn with a seed."""
    if fraction <= 0 or len(subject) == 0:
        return np.zeros(len(subject), bool)
    groups = subject.astype(str)
    if by_session:
        groups = np.char.add(groups, np.char.add("/", session.astype(str)))
    unique = np.unique(groups)
    if len(unique) < 2:
        return np.zeros(len(subject), bool)
    count = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    chosen = np.random.default_rng(seed).choice(unique, size=count, replace=False)
    return np.isin(groups, chosen)
