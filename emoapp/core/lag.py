"""Percentiles of a long run's samples in bounded memory, and the window's lag figures.

The window measures how late a short timer fires on its UI thread (the lateness of each
tick: the time since the previous tick minus the interval, never below zero); the bench
measures how old each estimate's inputs are. A long run gives many samples (a 10 ms timer
over 10 minutes: 60,000), so they are counted in bins of ``bin_width`` (a sparse
histogram: memory grows with the number of distinct bins touched, which the range of the
values bounds, never with the length of the run) rather than kept in a list.

Percentiles are nearest-rank over the bins, reported as the bin's upper edge: never below
the exact nearest-rank value, at most one ``bin_width`` above it, and never above the
largest sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

LAG_BIN_MS = 0.1
"""The lag histogram's bin width (milliseconds)."""


class Histogram:
    """Non-negative samples counted in bins of ``bin_width``."""

    def __init__(self, bin_width: float) -> None:
        if not bin_width > 0 or not math.isfinite(bin_width):
            raise ValueError("bin_width must be a positive number")
        self.bin_width = float(bin_width)
        self._counts: dict[int, int] = {}
        self.count = 0
        self.max = 0.0

    def add(self, value: float) -> None:
        """One sample (negative or NaN counts as 0; infinity is not a sample)."""
        value = value if value > 0 else 0.0
        if math.isinf(value):
            raise ValueError("a sample must be finite")
        index = int(value / self.bin_width)
        self._counts[index] = self._counts.get(index, 0) + 1
        self.count += 1
        if value > self.max:
            self.max = value

    def clear(self) -> None:
        self._counts = {}
        self.count = 0
        self.max = 0.0

    @property
    def bins_used(self) -> int:
        return len(self._counts)

    def percentiles(self, qs: Iterable[float]) -> list[float] | None:
        """Nearest-rank percentiles (``q`` in 0..100); None with no samples."""
        if self.count == 0:
            return None
        order = sorted(self._counts.items())
        out: list[float] = []
        for q in qs:
            rank = max(1, math.ceil(min(max(q, 0.0), 100.0) / 100.0 * self.count))
            seen = 0
            for index, n in order:
                seen += n
                if seen >= rank:
                    out.append(min((index + 1) * self.bin_width, self.max))
                    break
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
