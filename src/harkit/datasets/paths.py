"""Data as it comes, given by its path where a dataset key goes.

A folder with a `harkit.toml` (CSV recordings), a folder with a UEA/UCR pair `NAME_TRAIN.ts` / `NAME_TEST.ts`,
or an `.npz` file of windows.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from harkit import HarkitError
from harkit.datasets.base import Dataset
from harkit.datasets.folder import DESCRIPTION, FolderDataset
from harkit.datasets.npz import NpzDataset
from harkit.datasets.uea import UEADataset


def is_dataset_path(path: Path | str) -> bool:
    """Whether `path` holds a dataset harkit reads by path (without reading it)."""
    path = Path(path)
    if path.is_dir():
        return (path / DESCRIPTION).is_file() or any(path.glob("*_TRAIN.ts"))
    return path.is_file() and path.suffix.lower() == ".npz"


def dataset_from_path(path: Path, **options) -> Dataset:
    """The dataset stored at `path`; reader options (`--option`) go to its reader."""
    path = Path(path)
    if path.is_dir() and (path / DESCRIPTION).is_file():
        return FolderDataset(path, **options)
    if path.is_dir() and any(path.glob("*_TRAIN.ts")):
        return _build(UEADataset, path, options)
    if path.is_file() and path.suffix.lower() == ".npz":
        return _build(NpzDataset, path, options)
    raise HarkitError(
        f"{path} is not a dataset harkit can read: a folder needs a {DESCRIPTION} (write one with "
        "`harkit datasets --template DIR`) or a pair NAME_TRAIN.ts / NAME_TEST.ts; a file must be an .npz "
        "with x [n, time, channels] and y"
    )


def _build(builder: type[Dataset], path: Path, options: dict) -> Dataset:
    known = [n for n in inspect.signature(builder.__init__).parameters if n not in ("self", "folder", "path")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise HarkitError(f"{path} takes the options {known}, not {unknown}")
    return builder(path, **options)
