"""Timestamps as they come: epoch numbers in s, ms, us or ns, or ISO 8601 date-times, to exact int64 nanoseconds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harkit import HarkitError

UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_ZERO, _NINE, _DOT, _MINUS, _PLUS = (ord(c) for c in "09.-+")


def parse_timestamps(values: pd.Series, unit: str | None, where: str) -> np.ndarray:
    """Timestamps as int64 nanoseconds.

    Numbers are epochs (or any origin) in `unit` (seconds when None). Integers and plain decimals are
    converted digit by digit, so a large epoch such as `1700000000.123456789` keeps every nanosecond (float64
    would round it to about 0.2 us); digits below a nanosecond are dropped. Text that is not a number is read
    as an ISO 8601 date-time; offsets are honoured and date-times without an offset are taken as UTC.

    Args:
        values: the column as read, preferably as text (`dtype=str`) so that no digit was lost.
        unit: "s", "ms", "us" or "ns", or None for seconds.
        where: the file, named in errors (rows are counted from 1 after the header).
    """
    if unit is not None and unit not in UNITS:
        raise HarkitError(f"timestamp_unit {unit!r} is not understood; use one of {', '.join(UNITS)}")
    values = pd.Series(values).reset_index(drop=True)
    if len(values) == 0:
        return np.empty(0, np.int64)
    missing = values.isna().to_numpy()
    if missing.any():
        raise HarkitError(f"{where}: the timestamp at data row {int(np.flatnonzero(missing)[0]) + 1} is missing")
    if values.dtype.kind in "iuf":  # parsed as numbers already (see `needs_text`)
        return _from_numbers(values, values.to_numpy(), unit or "s", where)
    if pd.notna(pd.to_numeric(values.iloc[:1], errors="coerce").iloc[0]):
        return _from_text(values, unit or "s", where)
    if unit is not None:
        raise HarkitError(
            f"{where}: the timestamp {values.iloc[0]!r} at data row 1 is a date-time, but timestamp_unit = "
            f"{unit!r} is for epoch numbers; remove timestamp_unit"
        )
    parsed = pd.to_datetime(values.astype(str).str.strip(), format="ISO8601", utc=True, errors="coerce")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise HarkitError(
            f"{where}: the timestamp {values.iloc[row]!r} at data row {row + 1} is neither a number nor an ISO 8601 "
            "date-time such as 2024-05-01T13:45:00.020Z"
        )
    naive = parsed.dt.tz_convert(None).dt.as_unit("ns")
    return np.asarray(naive, dtype="datetime64[ns]").view(np.int64)


def needs_text(values: pd.Series, unit: str | None) -> bool:
    """Whether numbers parsed as float64 may have lost nanoseconds (large epochs): read the column as text then.

    Below 2**50 ns (13 days) the float64 error is under 0.2 ns, so rounding gives the written value back.
    """
    if values.dtype.kind != "f":
        return False
    largest = np.nanmax(np.abs(values.to_numpy()), initial=0.0)
    return not np.isfinite(largest) or largest * UNITS.get(unit or "s", 1) >= 2.0**50


def _from_numbers(values: pd.Series, number: np.ndarray, unit: str, where: str) -> np.ndarray:
    scale = UNITS[unit]
    as_float = number.astype(np.float64)
    bad = ~np.isfinite(as_float)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise HarkitError(f"{where}: the timestamp {values.iloc[row]!r} at data row {row + 1} is not a finite number")
    _check_range(values, np.abs(as_float) >= np.iinfo(np.int64).max // scale, unit, where)
    if number.dtype.kind in "iu":
        return number.astype(np.int64) * scale
    return np.round(as_float * scale).astype(np.int64)


def _check_range(values: pd.Series, too_large: np.ndarray, unit: str, where: str) -> None:
    if too_large.any():
        row = int(np.flatnonzero(too_large)[0])
        raise HarkitError(
            f"{where}: the timestamp {values.iloc[row]!r} at data row {row + 1} is too large for {unit} "
            f"(more than {np.iinfo(np.int64).max // UNITS[unit]}); check timestamp_unit"
        )


def _from_text(values: pd.Series, unit: str, where: str) -> np.ndarray:
    """Numbers written as text: plain decimals exactly, anything else ("1.7e9") through float64."""
    scale = UNITS[unit]
    nanoseconds, plain = _decimal_nanoseconds(values, scale)
    _check_range(values, plain & (nanoseconds == _OVERFLOW), unit, where)
    if not plain.all():
        rest = np.flatnonzero(~plain)
        number = pd.to_numeric(values.iloc[rest], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(number)
        if bad.any():
            row = int(rest[np.flatnonzero(bad)[0]])
            raise HarkitError(
                f"{where}: the timestamp {values.iloc[row]!r} at data row {row + 1} is not a finite number"
            )
        _check_range(values.iloc[rest], np.abs(number) >= np.iinfo(np.int64).max // scale, unit, where)
        nanoseconds[rest] = np.round(number * scale).astype(np.int64)
    return nanoseconds


_OVERFLOW = np.iinfo(np.int64).min  # marks a plain decimal too large for int64 nanoseconds


def _decimal_nanoseconds(values: pd.Series, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain decimals (`-12`, `1700000000.123456789`) as integer nanoseconds, and a mask of the plain ones.

    The text becomes a byte matrix [rows, characters]; each character column is one vectorised step, so no
    Python runs per row.
    """
    try:
        text = np.asarray(values.astype(str).to_numpy(), dtype="S")
    except UnicodeEncodeError:
        return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    width = text.dtype.itemsize
    chars = np.ascontiguousarray(text.view(np.uint8).reshape(len(text), width).T)  # [characters, rows]
    is_digit = (chars >= _ZERO) & (chars <= _NINE)
    is_dot = chars == _DOT
    signed = (chars[0] == _MINUS) | (chars[0] == _PLUS)
    dot = np.where(is_dot.any(axis=0), is_dot.argmax(axis=0), width)
    whole_digits = (is_digit & (np.arange(width)[:, None] < dot)).sum(axis=0)
    allowed = is_digit | is_dot | (chars == 0)
    allowed[0] |= signed
    plain = allowed.all(axis=0) & (is_dot.sum(axis=0) <= 1) & is_digit.any(axis=0)
    fraction_digits = len(str(scale)) - 1
    whole = np.zeros(len(text), np.uint64)  # 19 digits fit in uint64 (int64 ends at 9.2e18)
    fraction = np.zeros(len(text), np.int64)
    short = whole_digits <= 19
    for column in range(width):  # one step per character position, over all rows at once
        digit = chars[column].astype(np.int64) - _ZERO
        in_whole = is_digit[column] & (column < dot) & short
        whole = np.where(in_whole, whole * np.uint64(10) + digit.astype(np.uint64), whole)
        place = column - dot  # 1 for the first digit after the dot
        in_fraction = is_digit[column] & (place >= 1) & (place <= fraction_digits)
        if in_fraction.any():
            fraction += np.where(in_fraction, digit * 10 ** np.clip(fraction_digits - place, 0, fraction_digits), 0)
    limit, spare = divmod(np.iinfo(np.int64).max, scale)
    too_large = (whole_digits > 19) | (whole > np.uint64(limit)) | ((whole == np.uint64(limit)) & (fraction > spare))
    whole = np.where(too_large, 0, whole).astype(np.int64)
    sign = np.where(chars[0] == _MINUS, -1, 1)
    nanoseconds = np.where(too_large, _OVERFLOW, sign * (whole * scale + fraction))
    return nanoseconds, plain
