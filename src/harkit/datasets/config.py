"""The settings that decide the prepared arrays, checked when they are made.

Low in the package (it imports only `splits`), so readers such as `folder` can check their settings with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harkit import HarkitError, checks
from harkit.datasets.splits import SubjectSplit


@dataclass(frozen=True)
class PrepareConfig:
    """Everything besides the raw archive that decides the prepared arrays."""

    window: int | None = None
    overlap: float | None = None
    split: SubjectSplit = field(default_factory=SubjectSplit)
    val_fraction: float = 0.2
    channels: tuple[str, ...] | None = None
    normalize: bool = True
    seed: int = 0
    train_subjects: tuple[int, ...] | None = None  # keep only these subjects for training (and validation)

    def __post_init__(self) -> None:
        # Checked here so the Python API, the command line and harkit.toml refuse the same values, before any
        # data is read: a window of 0 used to become the dataset's default silently.
        checks.whole("window", self.window, 2, "samples", optional=True)
        checks.fraction("overlap", self.overlap, optional=True)
        checks.fraction("val_fraction", self.val_fraction, hint=" (the share of training subjects kept apart)")
        checks.whole("seed", self.seed, 0)
        checks.names("channels", self.channels, "channel")
        checks.names("train_subjects", self.train_subjects, "subject")
        if not isinstance(self.split, SubjectSplit):
            raise HarkitError(f"split must be a SubjectSplit, got {self.split!r}")
