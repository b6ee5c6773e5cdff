"""Rolling measurements of how each modality of a live session is keeping up.

Per modality, :class:`ModalityMetrics` records:

- **input rate**: items arriving from the source per second (frames, audio windows, text
  entries), over the last few seconds;
- **encoder rate**: encoder calls finished per second;
- **dropped**: inputs never encoded because a newer one replaced them (or a buffer
  overflowed), as a count and a fraction of the inputs;
- **encoder time**: seconds per encoder call, p50 / p95;
- **estimate age**: at each fused estimate, how old the modality's input behind it is
  (capture time to fused output), p50 / p95;
- **latency**: capture time to the *first* fused estimate that includes an input (the
  freshest the estimate ever is), p50 / p95;
- **presence**: the share of recent fused estimates the modality took part in (a
  modality whose predictions come slower than its fusion ``max_age`` drops out between
  them, which its age percentiles alone would not show).

Percentiles are over the most recent samples (a bounded window), so they follow changes
and memory stays constant. Every method is thread-safe; :meth:`ModalityMetrics.snapshot`
returns an immutable :class:`ModalityMetricsSnapshot` any consumer may keep.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from emoapp.core import clock
from emoapp.core.messages import Modality


class RollingPercentiles:
    """Percentiles over the last ``maxlen`` samples."""

    def __init__(self, maxlen: int = 300) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._values: deque[float] = deque(maxlen=maxlen)
        self.total = 0
        """Samples added since creation (not only those still in the window)."""

    def add(self, value: float) -> None:
        self._values.append(float(value))
        self.total += 1

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) of the window; None when it is empty."""
        if not self._values:
            return None
        return float(np.percentile(np.fromiter(self._values, float), q))

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        self._values.clear()


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0, started: float | None = None) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = float(window_s)
        self.started = clock.now() if started is None else started
        self._times: deque[float] = deque(maxlen=10_000)

    def mark(self, t: float | None = None) -> None:
        self._times.append(clock.now() if t is None else t)

    def rate(self, now: float | None = None) -> float:
        now = clock.now() if now is None else now
        horizon = now - self.window_s
        while self._times and self._times[0] < horizon:
            self._times.popleft()
        span = min(self.window_s, now - self.started)
        if span <= 0:
            return 0.0
        return len(self._times) / span


@dataclass(frozen=True)
class ModalityMetricsSnapshot:
    """One modality's figures at a moment. Times in seconds; None when not measured yet."""

    modality: Modality
    unit: str
    """What an input is: ``frames``, ``windows`` or ``entries``."""
    inputs: int
    encoded: int
    dropped: int
    errors: int
    input_rate_hz: float
    encoder_rate_hz: float
    encoder_time_p50_s: float | None
    encoder_time_p95_s: float | None
    age_p50_s: float | None
    age_p95_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    encoder_busy_s: float | None
    """How long the encoder call in progress has been running (None when idle)."""
    presence: float | None = None
    """Share of the recent fused estimates this modality took part in."""

    @property
    def drop_fraction(self) -> float:
        """Share of the inputs that were dropped rather than encoded."""
        return self.dropped / self.inputs if self.inputs else 0.0


_UNITS = {Modality.FACE: "frames", Modality.VOICE: "windows", Modality.TEXT: "entries"}


class ModalityMetrics:
    """The thread-safe recorder behind one modality's snapshot."""

    def __init__(self, modality: Modality, window_s: float = 5.0, samples: int = 300) -> None:
        self.modality = modality
        self._lock = threading.Lock()
        now = clock.now()
        self._input_rate = RateMeter(window_s, now)
        self._encoder_rate = RateMeter(window_s, now)
        self._encoder_time = RollingPercentiles(samples)
        self._age = RollingPercentiles(samples)
        self._latency = RollingPercentiles(samples)
        self._inputs = 0
        self._encoded = 0
        self._dropped = 0
        self._errors = 0
        self._busy_since: float | None = None
        self._last_input: float | None = None
        self._presence: deque[bool] = deque(maxlen=samples)

    def record_input(self, n: int = 1, t: float | None = None) -> None:
        with self._lock:
            self._last_input = clock.now()
            self._inputs += n
            for _ in range(n):
                self._input_rate.mark(t)

    def record_dropped(self, n: int = 1) -> None:
        if n <= 0:
            return
        with self._lock:
            self._dropped += n

    def encoder_started(self, t: float | None = None) -> None:
        with self._lock:
            self._busy_since = clock.now() if t is None else t

    def encoder_finished(self, duration_s: float, ok: bool = True, t: float | None = None) -> None:
        with self._lock:
            self._busy_since = None
            if ok:
                self._encoded += 1
                self._encoder_rate.mark(t)
                self._encoder_time.add(duration_s)
            else:
                self._errors += 1

    def idle_for(self, now: float | None = None) -> float | None:
        """Seconds since the last input arrived (None before the first)."""
        with self._lock:
            if self._last_input is None:
                return None
            return (clock.now() if now is None else now) - self._last_input

    def busy_for(self, now: float | None = None) -> float | None:
        with self._lock:
            if self._busy_since is None:
                return None
            return (clock.now() if now is None else now) - self._busy_since

    def record_age(self, age_s: float) -> None:
        with self._lock:
            self._age.add(age_s)

    def record_latency(self, latency_s: float) -> None:
        with self._lock:
            self._latency.add(latency_s)

    def record_presence(self, present: bool) -> None:
        """Whether the modality took part in a fused estimate."""
        with self._lock:
            self._presence.append(bool(present))

    def snapshot(self, now: float | None = None) -> ModalityMetricsSnapshot:
        now = clock.now() if now is None else now
        with self._lock:
            return ModalityMetricsSnapshot(
                modality=self.modality,
                unit=_UNITS[self.modality],
                inputs=self._inputs,
                encoded=self._encoded,
                dropped=self._dropped,
                errors=self._errors,
                input_rate_hz=self._input_rate.rate(now),
                encoder_rate_hz=self._encoder_rate.rate(now),
                encoder_time_p50_s=self._encoder_time.percentile(50),
                encoder_time_p95_s=self._encoder_time.percentile(95),
                age_p50_s=self._age.percentile(50),
                age_p95_s=self._age.percentile(95),
                latency_p50_s=self._latency.percentile(50),
                latency_p95_s=self._latency.percentile(95),
                encoder_busy_s=None if self._busy_since is None else now - self._busy_since,
                presence=sum(self._presence) / len(self._presence) if self._presence else None,
            )
