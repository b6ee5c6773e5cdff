"""How responsive the UI thread is: a timer on the UI thread that measures how late it
fires. A late timer means the event loop was busy (painting, or waiting for the GIL
held by a worker), so lateness percentiles are the UI's stall percentiles.

The window shows the 95th percentile in its status bar; the same meter measures the
figures reported for the UI's responsiveness.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QElapsedTimer, QObject, Qt, QTimer, Slot

from emoapp.core.lag import LagHistogram


@dataclass(frozen=True)
class LagPercentiles:
    """Timer lateness over the recorded window, in milliseconds."""

    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def describe(self) -> str:
        return (
            f"UI event-loop lateness over {self.samples} ticks: p50 {self.p50_ms:.1f} ms, "
            f"p95 {self.p95_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms"
        )


class EventLoopLagMeter(QObject):
    """Records how late a ``interval_ms`` timer fires, over the last ``window`` ticks;
    with ``histogram``, every tick is counted there too (a whole run, in fixed memory)."""

    def __init__(
        self,
        interval_ms: int = 10,
        window: int = 6000,
        parent: QObject | None = None,
        histogram: LagHistogram | None = None,
    ) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.histogram = histogram
        self._lateness: deque[float] = deque(maxlen=window)
        self._clock = QElapsedTimer()
        self._last_ns: int | None = None
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._clock.start()
        self._last_ns = None
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def reset(self) -> None:
        self._lateness.clear()
        self._last_ns = None

    @Slot()
    def _tick(self) -> None:
        now = self._clock.nsecsElapsed()
        if self._last_ns is not None:
            late_ms = max(0.0, (now - self._last_ns) / 1e6 - self.interval_ms)
            self._lateness.append(late_ms)
            if self.histogram is not None:
                self.histogram.add(late_ms)
        self._last_ns = now

    def samples(self) -> list[float]:
        return list(self._lateness)

    def percentiles(self) -> LagPercentiles | None:
        if not self._lateness:
            return None
        values = np.fromiter(self._lateness, dtype=float)
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return LagPercentiles(len(values), float(p50), float(p95), float(p99), float(values.max()))
