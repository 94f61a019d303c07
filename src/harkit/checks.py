"""Range checks of settings, shared by the Python API, the command line and `harkit.toml`.

Each check raises `OptionError`, which knows the setting's name: the command line shows it as its flag
(`--val-fraction`), a configuration file as its key, Python as the field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

from harkit import HarkitError


class OptionError(HarkitError):
    """A setting outside its range or of the wrong kind; `field` is its Python name."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(self.named(field))

    def named(self, name: str) -> str:
        """The message with the setting called `name` (a flag, a key of a file)."""
        return f"{name}{'' if self.problem.startswith(':') else ' '}{self.problem}"

    def as_flag(self) -> str:
        """The message with the setting written as its command-line flag."""
        return self.named(f"--{self.field.replace('_', '-')}")


def whole(name: str, value: object, minimum: int, unit: str = "", optional: bool = False) -> None:
    """`value` is an integer >= `minimum` (None passes when `optional`)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise OptionError(name, f"must be a whole number, got {value!r}")
    if value < minimum:
        raise OptionError(name, f"must be at least {minimum}{' ' + unit if unit else ''}, got {value}")


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise OptionError(name, f"must be a number, got {value!r}")
    return float(value)


def fraction(name: str, value: object, optional: bool = False, hint: str = "") -> None:
    """`value` is in [0, 1): a share of something, where all of it makes no sense."""
    if value is None and optional:
        return
    number = _real(name, value)
    if not 0 <= number < 1:  # also false for NaN
        raise OptionError(name, f"must be in [0, 1), got {value}{hint}")


def positive(name: str, value: object, optional: bool = False) -> None:
    """`value` is a finite number above 0."""
    if value is None and optional:
        return
    number = _real(name, value)
    if not (math.isfinite(number) and number > 0):
        raise OptionError(name, f"must be a number above 0, got {value}")


def at_least_zero(name: str, value: object, optional: bool = False) -> None:
    """`value` is a finite number >= 0."""
    if value is None and optional:
        return
    number = _real(name, value)
    if not (math.isfinite(number) and number >= 0):
        raise OptionError(name, f"must be at least 0, got {value}")


def names(name: str, values: Sequence | None, what: str) -> None:
    """`values` is None or a non-empty sequence without repeats."""
    if values is None:
        return
    if len(values) == 0:
        raise OptionError(name, f"must name at least one {what}")
    seen = set()
    for value in values:
        if value in seen:
            raise OptionError(name, f"lists {value} twice")
        seen.add(value)


def int_list(name: str, text: str, what: str = "whole number") -> tuple[int, ...]:
    """`"1,3,5"` -> `(1, 3, 5)`; anything else names the piece it could not read."""
    values = []
    for piece in text.split(","):
        piece = piece.strip()
        try:
            values.append(int(piece))
        except ValueError:
            raise OptionError(name, f": {piece!r} is not a {what}; write e.g. 1,3,5") from None
    return tuple(values)
