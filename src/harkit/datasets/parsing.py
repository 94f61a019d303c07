"""Parsing raw text files with pandas' C parser, several files at once."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from harkit import HarkitError

Item = TypeVar("Item")
Result = TypeVar("Result")


def read_space_separated(path: Path, columns: int | None = None, single_space: bool = False) -> np.ndarray:
    """A whitespace-separated numeric file as float32.

    `single_space` says values are separated by exactly one space, which parses twice as fast.
    """
    if not path.is_file():
        raise HarkitError(f"{path} is missing: the archive is incomplete")
    try:
        frame = pd.read_csv(path, sep=" " if single_space else r"\s+", header=None, dtype=np.float32, engine="c")
    except (ValueError, pd.errors.ParserError) as error:
        raise HarkitError(f"cannot parse {path}: {error}") from None
    if columns is not None and frame.shape[1] != columns:
        raise HarkitError(f"{path} has {frame.shape[1]} columns, expected {columns}")
    return frame.to_numpy()


def map_files(function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
    """`[function(item) for item in items]`, on one thread per available core.

    pandas' C parser releases the GIL while it tokenises and converts numbers, so files parse in
    parallel; results keep the order of `items` and the first error is raised.
    """
    items = list(items)
    workers = min(len(items), len(os.sched_getaffinity(0)))
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))
