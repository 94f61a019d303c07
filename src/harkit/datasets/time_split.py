"""A split in time, for one subject or a few: the end of every recording is tested, the part before it trained.

Every recording is cut at the same fraction of its length. The last `test_fraction` of its samples is the test
part; a gap of one window lies between the parts so that no window overlaps both; validation is the end of the
part before the gap (again followed by a gap of one window). Windows that would cross a cut or lie in a gap
are left out.

    | train ... | gap | validation | gap | test |
"""

from __future__ import annotations

import numpy as np

from harkit import HarkitError
from harkit.datasets.base import Windows
from harkit.datasets.windows import WindowPlan

DROPPED, TRAIN, VAL, TEST = -1, 0, 1, 2


def time_parts(plan: WindowPlan, test_fraction: float, val_fraction: float) -> np.ndarray:
    """The part of every window of `plan`: TRAIN, VAL, TEST, or DROPPED (in a gap or across a cut)."""
    if not 0 < test_fraction < 1:
        raise HarkitError(f"test_fraction must be in (0, 1), got {test_fraction}")
    window = plan.window
    length = np.array([len(r.labels) for r in plan.recordings], np.int64)[plan.recording]
    first, last = plan.start, plan.start + window  # the window covers samples [first, last)
    test_from = length - np.round(test_fraction * length).astype(np.int64)
    before = test_from - window  # the gap before the test part
    parts = np.full(len(plan), DROPPED, np.int64)
    parts[first >= test_from] = TEST
    if val_fraction > 0:
        val_from = before - np.round(val_fraction * np.maximum(before, 0)).astype(np.int64)
        parts[(first >= val_from) & (last <= before)] = VAL
        parts[last <= val_from - window] = TRAIN
    else:
        parts[last <= before] = TRAIN
    return parts


def split_in_time(
    windows: WindowPlan | Windows, test_fraction: float, val_fraction: float
) -> tuple[WindowPlan, np.ndarray, np.ndarray]:
    """The windows that belong to a part, with a mask of the test windows and one of the validation windows."""
    if not isinstance(windows, WindowPlan):
        raise HarkitError('split = "time" needs continuous recordings; this dataset is published as windows')
    parts = time_parts(windows, test_fraction, val_fraction)
    keep = parts != DROPPED
    if not (parts[keep] == TEST).any() or not (parts[keep] == TRAIN).any():
        part = "test" if (parts != TEST).all() else "training"
        raise HarkitError(
            f'split = "time" with test_fraction = {test_fraction:g} leaves no {part} '
            f"window: the recordings are too short for a window of {windows.window} samples, two gaps of one window "
            "each and the parts; use a smaller window or longer recordings"
        )
    kept = WindowPlan(
        windows.recordings,
        windows.window,
        windows.recording[keep],
        windows.start[keep],
        windows.y[keep],
        windows.subject[keep],
        windows.session[keep],
    )
    return kept, parts[keep] == TEST, parts[keep] == VAL
