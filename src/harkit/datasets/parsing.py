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
    values = frame.to_numpy()
    if np.isinf(values).any():  # 1e400 or inf parses to infinity and would poison the statistics; NaN is a gap
        row, column = np.argwhere(np.isinf(values))[0]
        raise _not_finite(path, int(row), int(column))
    return values


def _not_finite(path: Path, row: int, column: int) -> HarkitError:
    """The error for an infinite value, with the line and the text as the file has them (blank lines count)."""
    lines = path.read_text(errors="replace").splitlines()
    filled = [number for number, line in enumerate(lines, 1) if line.strip()]
    number = filled[row] if row < len(filled) else row + 1
    fields = lines[number - 1].split() if number <= len(lines) else []
    text = fields[column] if column < len(fields) else "a value"
    return HarkitError(
        f"{path}, line {number}, column {column + 1}: {text} is not a finite number (too large for 32-bit floats); "
        "fix or remove that line"
    )


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
