"""Turning recordings into windows: gap filling, labelled segments and sliding windows.

The label rule: a window is kept only when it lies wholly inside one contiguous segment of one
activity in one recording, so its label is the label of every sample in it and no window straddles two
activities, subjects or recordings.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harkit.datasets.base import UNLABELLED, Recording, Windows


def window_step(window: int, overlap: float) -> int:
    """Samples between two window starts: `round(window * (1 - overlap))`, at least 1."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    return max(1, round(window * (1 - overlap)))


def fill_gaps(signals: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaN gaps per channel within one recording; edges take the nearest value.

    A channel that is NaN for the whole recording stays NaN (the caller sets it to the training mean
    after normalisation).
    """
    if not np.isnan(signals).any():
        return signals
    frame = pd.DataFrame(signals)
    filled = frame.interpolate(method="linear", limit_direction="both", axis=0)
    return filled.to_numpy(dtype=np.float32)


def labels_from_segments(n_samples: int, starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-sample labels from segments `[start, end]` (inclusive); samples in no segment are unlabelled."""
    labels = np.full(n_samples, UNLABELLED, dtype=np.int64)
    starts = np.clip(np.asarray(starts, np.int64), 0, n_samples)
    ends = np.clip(np.asarray(ends, np.int64) + 1, 0, n_samples)
    lengths = np.maximum(ends - starts, 0)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    labels[np.repeat(starts, lengths) + offsets] = np.repeat(np.asarray(values, np.int64), lengths)
    return labels


def segments(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous runs of one label: (starts, ends exclusive, label), unlabelled runs left out."""
    if len(labels) == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(labels)]])
    values = labels[starts]
    keep = values != UNLABELLED
    return starts[keep], ends[keep], values[keep]


def window_starts(seg_starts: np.ndarray, seg_ends: np.ndarray, window: int, step: int) -> np.ndarray:
    """Start index of every whole window in every segment, each segment's first window at its start."""
    lengths = seg_ends - seg_starts
    counts = np.where(lengths >= window, (lengths - window) // step + 1, 0)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(seg_starts, counts) + offsets * step


@dataclass
class WindowPlan:
    """Where each window lies (recording and first sample), with its label, subject and session.

    Splits are chosen on the plan; `take` then copies the chosen windows, once, into their part.
    """

    recordings: list[Recording]
    window: int
    recording: np.ndarray
    start: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    session: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray | slice) -> Windows:
        """The windows selected by a boolean mask, an index array or a slice, as arrays."""
        index = np.arange(len(self))[index]
        channels = self.recordings[0].signals.shape[1] if self.recordings else 0
        x = np.empty((len(index), self.window, channels), np.float32)
        source = self.recording[index]
        bounds = [0, *(np.flatnonzero(np.diff(source)) + 1), len(index)] if len(index) else []
        for a, b in itertools.pairwise(bounds):  # runs of windows from one recording
            signals = self.recordings[source[a]].signals.astype(np.float32, copy=False)
            rows = self.start[index[a:b], None] + np.arange(self.window)
            # "clip" (never needed: every window lies inside) lets take write into `x` unbuffered.
            np.take(signals, rows, axis=0, out=x[a:b], mode="clip")
        return Windows(x, self.y[index], self.subject[index], self.session[index])


def plan_windows(recordings: Iterable[Recording], window: int, step: int) -> WindowPlan:
    """Every whole window inside the labelled segments of every recording, in recording order."""
    recordings = list(recordings)
    starts = [window_starts(*segments(r.labels)[:2], window, step) for r in recordings]
    counts = [len(s) for s in starts]
    return WindowPlan(
        recordings,
        window,
        np.repeat(np.arange(len(recordings)), counts),
        np.concatenate([np.empty(0, np.int64), *starts]),
        np.concatenate([np.empty(0, np.int64), *(r.labels[s] for r, s in zip(recordings, starts, strict=True))]),
        np.repeat(np.array([r.subject for r in recordings], np.int64), counts),
        np.repeat(np.array([r.session for r in recordings], str), counts),
    )


def sliding_windows(recording: Recording, window: int, step: int) -> Windows:
    """All whole windows inside the labelled segments of one recording."""
    return plan_windows([recording], window, step).take(slice(None))


def longest_segment(recordings: Iterable[Recording]) -> int:
    """Length of the longest labelled segment, for the message when a window does not fit anywhere."""
    longest = 0
    for recording in recordings:
        starts, ends, _ = segments(recording.labels)
        if len(starts):
            longest = max(longest, int((ends - starts).max()))
    return longest
