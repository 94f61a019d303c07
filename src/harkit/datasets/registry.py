"""The dataset registry: it imports the readers (never the other way round) and builds one by key.

The import graph points downward: `registry` -> readers and `folder` -> `base` -> `download`.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from harkit import HarkitError
from harkit.datasets.base import Dataset
from harkit.datasets.dsads import DSADS
from harkit.datasets.hapt import HAPT
from harkit.datasets.opportunity import Opportunity
from harkit.datasets.pamap2 import PAMAP2
from harkit.datasets.paths import dataset_from_path
from harkit.datasets.uci_har import UCIHAR
from harkit.datasets.wisdm import WISDM

_BUILDERS: dict[str, type[Dataset]] = {cls.key: cls for cls in (DSADS, HAPT, Opportunity, PAMAP2, UCIHAR, WISDM)}


def register_dataset(cls: type[Dataset]) -> type[Dataset]:
    """Register a dataset defined outside harkit under its `key`; a duplicate key is an error."""
    if cls.key in _BUILDERS:
        raise ValueError(f"dataset {cls.key!r} is already registered")
    _BUILDERS[cls.key] = cls
    return cls


def list_datasets() -> list[str]:
    """Keys of all registered datasets."""
    return sorted(_BUILDERS)


def _as_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_options(key: str, builder: type[Dataset], options: dict) -> None:
    """Refuse reader options the reader does not take, and switches that are not true or false.

    A reader's options are the keyword arguments of its constructor; their defaults give their kinds.
    """
    parameters = inspect.signature(builder.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return  # the reader checks its own options (a folder's harkit.toml overrides)
    known = {name: p.default for name, p in parameters.items() if name != "self"}
    from harkit.names import did_you_mean

    for name, value in options.items():
        if name not in known:
            raise HarkitError(
                f"{key} has no option {name!r}; {did_you_mean(name, known)}its options are: {', '.join(known)}"
                if known
                else f"{key} takes no options; remove --option {name}={_as_text(value)}"
            )
        if isinstance(known[name], bool) and not isinstance(value, bool):
            raise HarkitError(f"option {name}={_as_text(value)} is not understood; use {name}=true or {name}=false")


def get_dataset(key: str | Dataset, **options) -> Dataset:
    """The dataset registered as `key`, built with its reader options (e.g. `transitions=True` for HAPT).

    A key that is a folder with a `harkit.toml` is a folder dataset.
    """
    if isinstance(key, Dataset):
        if options:
            raise HarkitError(f"options {options} cannot be applied to a dataset already built; pass its key instead")
        return key
    if key not in _BUILDERS and Path(key).exists():
        return dataset_from_path(Path(key), **options)  # a harkit.toml folder, a .ts pair, an .npz
    if key not in _BUILDERS:
        from harkit.names import did_you_mean

        raise HarkitError(
            f"unknown dataset {key!r}; {did_you_mean(key, _BUILDERS)}valid names: {', '.join(list_datasets())}, "
            "or the path of a folder with a "
            "harkit.toml or a NAME_TRAIN.ts / NAME_TEST.ts pair, or of an .npz file"
        )
    builder = _BUILDERS[key]
    check_options(key, builder, options)
    return builder(**options)
