"""Changing a recording's sampling rate with an anti-aliasing filter (polyphase, scipy.signal.resample_poly)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from harkit import HarkitError

MAX_DENOMINATOR = 1000  # rates are matched to a ratio of integers up to this size (50 -> 51.2 Hz: 125/128)


def rate_ratio(source_rate: float, target_rate: float) -> tuple[int, int]:
    """(up, down): the smallest integers with `up / down` close to `target_rate / source_rate`."""
    ratio = Fraction(target_rate / source_rate).limit_denominator(MAX_DENOMINATOR)
    return ratio.numerator, ratio.denominator


def resample_signals(signals: np.ndarray, source_rate: float, target_rate: float) -> np.ndarray:
    """Signals `[n, channels]` sampled at `source_rate` Hz, resampled to `target_rate` Hz.

    Polyphase filtering: upsample by `up`, low-pass (a Kaiser-windowed FIR at the lower of the two Nyquist
    frequencies), downsample by `down`. Content above the new Nyquist frequency is removed instead of folding
    back as an alias, which plain interpolation from a higher rate would do. The ends are padded by
    extending the signal's trend, so the first and last samples are not pulled towards zero.

    Returns:
        `[ceil(n * up / down), channels]`, in the input's floating dtype (float32 for anything else).
    """
    for name, rate in (("source_rate", source_rate), ("target_rate", target_rate)):
        if not np.isfinite(rate) or rate <= 0:
            raise HarkitError(f"{name} must be a positive number of Hz, got {rate}")
    signals = np.asarray(signals)
    if signals.ndim != 2:
        raise HarkitError(f"signals must be [samples, channels], got shape {signals.shape}")
    dtype = signals.dtype if np.issubdtype(signals.dtype, np.floating) else np.float32
    up, down = rate_ratio(source_rate, target_rate)
    if up == down or len(signals) == 0:
        return signals.astype(dtype, copy=True)
    if not np.isfinite(signals).all():
        raise HarkitError("signals to resample hold missing or infinite values; fill them first")
    if len(signals) < 2:
        # one sample: nothing to filter; it stands for the whole (very short) recording
        return np.repeat(signals.astype(dtype), -(-up // down), axis=0)
    result = resample_poly(signals.astype(np.float64), up, down, axis=0, padtype="line")
    return result.astype(dtype)
