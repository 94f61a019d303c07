"""Suggesting the closest valid name for a mistyped one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`"did you mean 'hapt'? "` for the closest valid name, or `""` when none is close."""
    close = difflib.get_close_matches(str(name).lower(), [str(v) for v in valid], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""
