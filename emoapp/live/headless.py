"""The headless live runner behind ``emoapp live --no-gui``.

It runs a :class:`~emoapp.live.session.LiveSession`, writes a timeline row (the same
format as ``emoapp analyze``, :mod:`emoapp.recorded.timeline`) for each fused estimate,
at most ``row_rate_hz`` a second, and prints a one-line status per modality on stderr
every ``status_every_s`` seconds (rates, drops, encoder time, estimate age).

It stops cleanly on Ctrl-C (SIGINT) or SIGTERM, after ``duration_s``, or once every
replayed file has been played and its last input encoded; in every case the session is
stopped (devices closed, threads joined) before it returns. Rows are written on the
calling thread, never on the session's, so a slow output cannot stall the pipeline:
estimates wait in a bounded queue (the oldest are dropped, and counted, if the output
cannot keep up).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol, TextIO

from emoapp.core import clock
from emoapp.core.messages import EncoderOutput, FusedEstimate, Modality
from emoapp.core.provenance import Withdrawals
from emoapp.live.metrics import ModalityMetricsSnapshot
from emoapp.live.session import LiveSession, ModalityStatus
from emoapp.recorded.timeline import TimelineWriter, row_from_estimate

_ESTIMATE_QUEUE = 1000


class RowSink(Protocol):
    """Where rows go: a :class:`TimelineWriter`, a stream (:mod:`emoapp.stream.server`),
    or both (:class:`emoapp.stream.server.RowSinks`)."""

    def write(self, row: Mapping[str, Any]) -> None: ...


@dataclass
class LiveRunOptions:
    """When a headless run stops, and how much it writes."""

    duration_s: float | None = None
    """Stop after this many seconds of running (None: run until interrupted or the files
    end), counted from when the session has started: the time ``start()`` takes to load
    models and open devices does not count."""
    status_every_s: float = 5.0
    """Seconds between status lines on stderr (0: only the final one)."""
    row_rate_hz: float = 10.0
    """At most this many rows a second."""
    stop_at_end: bool = True
    """Stop once every replayed source has ended."""


@dataclass
class LiveRunSummary:
    """How a headless run went."""

    reason: str
    """Why it stopped: ``duration``, ``end of input``, ``interrupted`` or ``output closed``."""
    elapsed_s: float
    rows: int
    estimates: int
    rows_dropped: int
    metrics: dict[Modality, ModalityMetricsSnapshot]
    status: dict[Modality, ModalityStatus]
    threads_left: list[str] = field(default_factory=list)
    startup_s: float = 0.0
    """How much of ``elapsed_s`` the session took to start (models, devices)."""


class _Collector:
    """Session listener: queues estimates and remembers the latest outputs and statuses.
    Called on the session's fusion thread; only appends and assigns."""

    def __init__(self) -> None:
        self.estimates: deque[FusedEstimate] = deque(maxlen=_ESTIMATE_QUEUE)
        self.received = 0
        self.dropped = 0
        self.outputs: dict[Modality, EncoderOutput] = {}
        self.statuses: dict[Modality, ModalityStatus] = {}
        self.wake = threading.Event()
        self.withdrawals = Withdrawals()

    def on_estimate(self, estimate: FusedEstimate) -> None:
        if len(self.estimates) == self.estimates.maxlen:
            self.dropped += 1  # the output cannot keep up: the oldest estimate goes
        self.estimates.append(estimate)
        self.received += 1
        self.wake.set()

    def on_output(self, output: EncoderOutput) -> None:
        self.outputs[output.modality] = output

    def on_status(self, status: ModalityStatus) -> None:
        self.statuses[status.modality] = status

    def on_withdrawn(self, origin: Modality, t: float) -> None:
        """A capture was withdrawn: its outputs, and estimates made from it that are
        still waiting to be written, are forgotten (no row after the withdrawal
        carries them)."""
        self.withdrawals.withdraw(origin, t)
        self.outputs = {
            m: out for m, out in self.outputs.items() if self.withdrawals.admits_thing(out)
        }
        kept = [e for e in self.estimates if self.withdrawals.admits_thing(e)]
        self.estimates.clear()
        self.estimates.extend(kept)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def format_status_line(
    elapsed_s: float,
    status: dict[Modality, ModalityStatus],
    metrics: dict[Modality, ModalityMetricsSnapshot],
    estimates_per_s: float | None = None,
    face_path: str | None = None,
) -> str:
    """One line: per modality its state, input and encoder rates, drops, encoder time
    and estimate age (p50/p95, in ms); ``face_path`` (:func:`face_path_note`) is added
    to the face's part."""
    parts = [f"emoapp live {elapsed_s:6.1f} s"]
    for m in Modality:
        st = status.get(m)
        if st is None or st.state == "off":
            continue
        snap = metrics.get(m)
        text = f"{m.value} {st.state}"
        if snap is not None and snap.inputs:
            text += (
                f": in {snap.input_rate_hz:.1f}/s enc {snap.encoder_rate_hz:.1f}/s"
                f" drop {snap.dropped}/{snap.inputs} {snap.unit} ({snap.drop_fraction:.0%})"
                f" enc p50 {_ms(snap.encoder_time_p50_s)} ms"
                f" age p50/p95 {_ms(snap.age_p50_s)}/{_ms(snap.age_p95_s)} ms"
            )
            if snap.presence is not None:
                text += f" used in {snap.presence:.0%} of estimates"
            if m is Modality.FACE and face_path:
                text += f" {face_path}"
        if st.message and st.message != st.state:
            text += f" [{st.message}]"
        parts.append(text)
    if estimates_per_s is not None:
        parts.append(f"estimates {estimates_per_s:.1f}/s")
    return " | ".join(parts)


def face_path_note(encoder: object) -> str | None:
    """How the face encoder found and classified its faces so far, when it tracks them
    between detections (:class:`~emoapp.encoders.face.TrackingLocator`): e.g. ``faces
    80% tracked, 60% reused, detected every 5`` (reused: frames whose faces all kept
    their earlier classification, :class:`~emoapp.encoders.face.ClassifyReuse`; left out
    when reuse is off); None otherwise."""
    detector = getattr(encoder, "detector", None)
    detections = getattr(detector, "detections", None)
    tracked = getattr(detector, "tracked", None)
    if not isinstance(detections, int) or not isinstance(tracked, int):
        return None
    total = detections + tracked
    share = f"{tracked / total:.0%}" if total else "-"
    note = f"faces {share} tracked"
    reuse = getattr(encoder, "reuse", None)
    run, reused = getattr(reuse, "run", None), getattr(reuse, "reused", None)
    if isinstance(run, int) and isinstance(reused, int):
        frames = run + reused
        note += f", {reused / frames:.0%} reused" if frames else ", - reused"
    return f"{note}, detected every {getattr(detector, 'every', 1)}"


def _notes(statuses: dict[Modality, ModalityStatus]) -> dict[Modality, str]:
    """Row notes for modalities that are not running as they should."""
    return {
        m: st.message
        for m, st in statuses.items()
        if st.state in ("failed", "degraded") and st.message
    }


class _StopSignals:
    """SIGINT / SIGTERM set an event instead of raising, while installed (main thread
    only; elsewhere the caller's own handling applies)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        self.event.set()

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def run_live(
    session: LiveSession,
    writer: TimelineWriter | RowSink | None,
    options: LiveRunOptions | None = None,
    status_stream: TextIO | None = None,
    stop_event: threading.Event | None = None,
    on_tick: Callable[[], None] | None = None,
) -> LiveRunSummary:
    """Run ``session`` until a stop condition; always stops it before returning.
    ``stop_event`` lets a caller stop the run from another thread; ``on_tick`` is called
    on the calling thread about ten times a second (``emoapp live`` checks there whether
    consent was revoked meanwhile)."""
    options = options or LiveRunOptions()
    err = status_stream if status_stream is not None else sys.stderr
    stop = stop_event or threading.Event()
    collector = _Collector()
    session.add_listener(collector)
    min_row_gap = 1.0 / options.row_rate_hz if options.row_rate_hz > 0 else 0.0
    next_row_t = float("-inf")
    rows = 0
    reason = "interrupted"
    started = clock.now()
    next_status = started + options.status_every_s if options.status_every_s > 0 else None
    threads_left: list[str] = []
    running_since: float | None = None

    def write_pending(statuses: dict[Modality, ModalityStatus] | None = None) -> bool:
        """Write queued estimates as rows (their notes from ``statuses``, by default the
        latest); False when the output went away."""
        nonlocal next_row_t, rows
        while collector.estimates:
            estimate = collector.estimates.popleft()
            if writer is None or estimate.t < next_row_t:
                continue
            row = row_from_estimate(
                estimate,
                dict(collector.outputs),
                _notes(collector.statuses if statuses is None else statuses),
                origin=started,
            )
            try:
                writer.write(row)
            except BrokenPipeError:
                return False
            # Rows on a steady schedule (estimates also come on each new prediction).
            next_row_t += min_row_gap
            if next_row_t <= estimate.t:
                next_row_t = estimate.t + 0.5 * min_row_gap
            rows += 1
        return True

    def status_line() -> str:
        elapsed = clock.now() - started
        rate = collector.received / elapsed if elapsed > 0 else None
        return format_status_line(
            elapsed,
            session.status(),
            session.metrics(),
            rate,
            face_path_note(session.encoder(Modality.FACE)),
        )

    with _StopSignals(stop) as signals:
        try:
            session.start()
            # The duration counts from here: starting may take seconds (a speech
            # recogniser that holds the interpreter while it loads, on a busy machine),
            # and a short run should still capture for as long as it was asked to.
            running_since = clock.now()
            while True:
                collector.wake.wait(0.1)
                collector.wake.clear()
                if on_tick is not None:
                    on_tick()
                if not write_pending():
                    reason = "output closed"
                    break
                now = clock.now()
                if stop.is_set():
                    reason = "interrupted"
                    break
                if options.duration_s is not None and now - running_since >= options.duration_s:
                    reason = "duration"
                    break
                if options.stop_at_end and session.sources_finished():
                    reason = "end of input"
                    break
                if next_status is not None and now >= next_status:
                    print(status_line(), file=err, flush=True)
                    next_status = now + options.status_every_s
            print(status_line(), file=err, flush=True)  # the final figures, before stopping
        finally:
            # Estimates still queued were made while the session ran: their rows keep the
            # notes of then, not the "stopped" states that stopping reports.
            running_statuses = dict(collector.statuses)
            threads_left = session.stop()
            session.remove_listener(collector)
        if reason != "output closed":
            write_pending(running_statuses)
        if signals.received is not None:
            name = signal.Signals(signals.received).name
            print(f"emoapp live: stopped by {name}", file=err, flush=True)
        if threads_left:
            print(
                f"emoapp live: threads still running after stop: {', '.join(threads_left)}",
                file=err,
                flush=True,
            )
    return LiveRunSummary(
        reason=reason,
        elapsed_s=clock.now() - started,
        rows=rows,
        estimates=collector.received,
        rows_dropped=collector.dropped,
        metrics=session.metrics(),
        status=session.status(),
        threads_left=threads_left,
        startup_s=(running_since if running_since is not None else clock.now()) - started,
    )
