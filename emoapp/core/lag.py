"""Percentiles of a long run's samples in bounded memory, and the window's lag figures.

The window measures how late a short timer fires on its UI thread (the lateness of each
tick: the time since the previous tick minus the interval, never below zero); the bench
measures how old each estimate's inputs are. A long run gives many samples (a 10 ms timer
over 10 minutes: 60,000), so they are counted in bins of ``bin_width`` rather than kept
in a list: one 8-byte counter per bin up to the largest sample so far, and at most
``max_bins`` of them (anything above counts in one last bin). Memory follows the range of
the values, never the length of the run.

Percentiles are nearest-rank over the bins, reported as the bin's upper edge: never below
the exact nearest-rank value, at most one ``bin_width`` above it, and never above the
largest sample (a percentile that falls in the last bin is the largest sample).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

LAG_BIN_MS = 0.1
"""The lag histogram's bin width (milliseconds)."""


class Histogram:
    """Non-negative samples counted in bins of ``bin_width``."""

    def __init__(self, bin_width: float, max_bins: int = 100_000) -> None:
        if not bin_width > 0 or not math.isfinite(bin_width):
            raise ValueError("bin_width must be a positive number")
        if max_bins < 2:
            raise ValueError("max_bins must be at least 2")
        self.bin_width = float(bin_width)
        self.max_bins = int(max_bins)
        self._counts = np.zeros(64, dtype=np.int64)
        self.count = 0
        self.max = 0.0

    def add(self, value: float) -> None:
        """One sample (negative or NaN counts as 0; infinity is not a sample)."""
        value = value if value > 0 else 0.0
        if math.isinf(value):
            raise ValueError("a sample must be finite")
        scaled = value / self.bin_width
        index = self.max_bins - 1 if scaled >= self.max_bins - 1 else int(scaled)
        if index >= self._counts.size:
            grown = np.zeros(min(self.max_bins, max(2 * self._counts.size, index + 1)), np.int64)
            grown[: self._counts.size] = self._counts
            self._counts = grown
        self._counts[index] += 1
        self.count += 1
        if value > self.max:
            self.max = value

    def clear(self) -> None:
        self._counts = np.zeros(64, dtype=np.int64)
        self.count = 0
        self.max = 0.0

    @property
    def nbytes(self) -> int:
        """Memory held by the counters."""
        return int(self._counts.nbytes)

    def percentiles(self, qs: Iterable[float]) -> list[float] | None:
        """Nearest-rank percentiles (``q`` in 0..100); None with no samples."""
        if self.count == 0:
            return None
        cumulative = np.cumsum(self._counts)
        out: list[float] = []
        for q in qs:
            rank = max(1, math.ceil(min(max(q, 0.0), 100.0) / 100.0 * self.count))
            index = int(np.searchsorted(cumulative, rank))
            edge = self.max if index >= self.max_bins - 1 else (index + 1) * self.bin_width
            out.append(min(edge, self.max))
        return out

    def percentile(self, q: float) -> float | None:
        found = self.percentiles((q,))
        return None if found is None else found[0]


@dataclass(frozen=True)
class LagStats:
    """Lateness percentiles over a run, in milliseconds."""

    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


class LagHistogram(Histogram):
    """Timer lateness in milliseconds, in :data:`LAG_BIN_MS` bins."""

    def __init__(self, bin_ms: float = LAG_BIN_MS) -> None:
        super().__init__(bin_ms)

    def stats(self) -> LagStats | None:
        found = self.percentiles((50, 95, 99))
        if found is None:
            return None
        p50, p95, p99 = (round(v, 3) for v in found)
        return LagStats(self.count, p50, p95, p99, round(self.max, 3))


def lag_stats(lateness_ms: Iterable[float], bin_ms: float = LAG_BIN_MS) -> LagStats | None:
    """Percentiles of timer-lateness samples (milliseconds); None when there are none."""
    histogram = LagHistogram(bin_ms)
    for value in lateness_ms:
        histogram.add(value)
    return histogram.stats()
