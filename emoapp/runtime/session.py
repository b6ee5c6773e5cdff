"""A live session: sources -> one worker per modality -> fusion -> listeners.

This is the one pipeline the window and ``emoapp live --no-gui`` both run; only the
sources and the listeners differ.

Threads, and what each may do::

    source thread / device callback   puts the newest input into a slot or ring buffer
            │                          (video: latest-wins slot; audio: bounded ring;
            ▼                           text: bounded queue) and returns at once
    worker thread (one per modality)   takes the newest input, runs its encoder, hands
            │                          the outputs to the fusion thread
            ▼
    fusion thread (one)                updates the fuser, produces an estimate at about
            │                          ``rate_hz`` and on each new prediction (coalesced),
            ▼                          and is the only thread that calls listeners
    listeners                          must return quickly (the window queues a signal)

A slow encoder therefore only slows its own modality: its stale frames are dropped and
counted (never queued), and the others go on. A slow listener only delays the fusion
thread, whose pending work is bounded. No listener is called with a lock held.

A supervisor thread per source opens it, starts it, and on failure closes it, marks the
modality degraded with the reason and retries with backoff (0.5 s, doubling, at most
5 s), so a camera that comes back brings its modality back without a restart. A file
that cannot be played (:class:`~emoapp.capture.base.PermanentSourceError`) is not
retried. An encoder that raises marks its modality degraded and the worker goes on with
the next input; an encoder that hangs blocks only its own worker, and the status shows
for how long. ``stop()`` always returns: it joins every thread with a timeout and reports
those that did not stop (all threads are daemon threads, so the process can still exit).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from emoapp.capture.base import PermanentSourceError, Source, SourceItem, one_line
from emoapp.core import clock
from emoapp.core.errors import EmoappError, MissingDependencyError
from emoapp.core.fusion import Fuser, FusionConfig
from emoapp.core.messages import (
    AudioChunk,
    EncoderOutput,
    FusedEstimate,
    Modality,
    ModalityPrediction,
    TextEntry,
    VideoFrame,
)
from emoapp.encoders.base import Encoder
from emoapp.encoders.vad import rms_dbfs
from emoapp.runtime.metrics import ModalityMetrics, ModalityMetricsSnapshot
from emoapp.runtime.slots import LatestSlot, RingBuffer

log = logging.getLogger(__name__)

STATES = ("off", "starting", "running", "degraded", "failed", "stopped")
"""What :attr:`ModalityStatus.state` can be."""

PREVIEW_MAX_HZ = 30.0
LEVEL_MAX_HZ = 20.0


@dataclass(frozen=True)
class ModalityStatus:
    """What one modality is doing, in words a person can read.

    ``state``: ``off`` (not started, or nothing to run), ``starting`` (opening its source
    or waiting for the first result), ``running``, ``degraded`` (running with a problem,
    or retrying its source; ``message`` says what), ``failed`` (cannot run: no model,
    the model failed to load, the source cannot be opened; a device is still retried),
    ``stopped`` (stopped by the person, or its replayed file ended).
    """

    modality: Modality
    state: str
    source: str = ""
    model_id: str = ""
    device: str = ""
    baseline: bool = False
    message: str = ""
    source_open: bool = False
    """True while the modality's source (a camera, a microphone, a replayed file) is
    open and delivering: what a capture indicator shows."""


class SessionListener(Protocol):
    """What a session tells its consumers. Every method is optional (looked up with
    ``getattr``); all are called from the session's fusion thread and must return
    quickly without blocking (e.g. emit a queued Qt signal)."""

    def on_estimate(self, estimate: FusedEstimate) -> None: ...

    def on_output(self, output: EncoderOutput) -> None: ...

    def on_frame(self, frame: VideoFrame) -> None: ...

    def on_audio_level(self, t: float, rms_dbfs: float, speech: bool | None) -> None: ...

    def on_status(self, status: ModalityStatus) -> None: ...


# --- per-modality state -----------------------------------------------------------------


@dataclass(eq=False)
class _Run:
    """One start..stop of a modality: its own threads, input buffer and stop signal, so
    a stopped run can never feed a new one."""

    modality: Modality
    source: Source | None
    encoder: Encoder
    metrics: ModalityMetrics
    buffer: LatestSlot[Any] | RingBuffer[Any]
    stop: threading.Event = field(default_factory=threading.Event)
    source_events: queue.Queue[tuple[int, str, Any]] = field(default_factory=queue.Queue)
    source_lock: threading.Lock = field(default_factory=threading.Lock)
    source_open: bool = False
    source_state: str = "off"  # off | starting | running | retrying | failed | ended
    source_message: str = ""
    encoder_error: str = ""
    outputs: int = 0
    last_activity: float = field(default_factory=clock.now)
    threads: list[threading.Thread] = field(default_factory=list)


@dataclass(eq=False)
class _Entry:
    """Everything the session holds for one modality."""

    modality: Modality
    source: Source | None = None
    encoder: Encoder | None = None
    unavailable: str = ""
    enabled: bool = False
    run: _Run | None = None
    stopped_note: str | None = None
    metrics: ModalityMetrics | None = None
    last_status: ModalityStatus | None = None
    speech: bool | None = None


def _encoder_device(encoder: Encoder) -> str:
    device = getattr(encoder, "device", None)
    if device is not None:
        return str(device)
    try:
        return encoder.info().device
    except EmoappError:
        return ""


def _speech_flag(output: EncoderOutput) -> bool | None:
    """What a voice output says about speech: True, False (silence), or None (unknown)."""
    if isinstance(output, ModalityPrediction):
        return True
    reason = output.reason
    if reason == "silence" or reason.startswith("no speech"):
        return False
    return None


class LiveSession:
    """Runs sources and encoders for up to three modalities and fuses their outputs."""

    def __init__(
        self,
        sources: Mapping[Modality, Source],
        encoders: Mapping[Modality, Encoder],
        fusion: FusionConfig | None = None,
        rate_hz: float = 10.0,
        voice_window_s: float = 2.0,
        voice_hop_s: float = 0.5,
        *,
        unavailable: Mapping[Modality, str] | None = None,
        audio_buffer_s: float | None = None,
        text_queue_size: int = 32,
        stall_after_s: float = 5.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 5.0,
        open_source: Callable[[Source], None] | None = None,
    ) -> None:
        """``unavailable`` gives, per modality with no encoder, why (e.g. the model
        failed to load); it is shown as that modality's failed status.
        ``audio_buffer_s`` bounds the audio waiting for the voice worker (default: two
        windows, at least 4 s). An encoder call running longer than ``stall_after_s``
        shows as degraded. ``open_source`` opens a source in place of ``source.open()``
        (where a consent gate plugs in: it raises an EmoappError to refuse, and the
        session shows the reason and asks again at each retry)."""
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        if voice_window_s <= 0 or voice_hop_s <= 0:
            raise ValueError("voice_window_s and voice_hop_s must be positive")
        self.rate_hz = float(rate_hz)
        self.voice_window_s = float(voice_window_s)
        self.voice_hop_s = float(voice_hop_s)
        self.audio_buffer_s = audio_buffer_s or max(4.0, 2.0 * self.voice_window_s)
        self.text_queue_size = int(text_queue_size)
        self.stall_after_s = float(stall_after_s)
        self.retry_initial_s = float(retry_initial_s)
        self.retry_max_s = float(retry_max_s)
        self._open_source = open_source or (lambda source: source.open())

        self._lock = threading.RLock()  # session and per-modality state
        self._entries: dict[Modality, _Entry] = {}
        for m in Modality:
            source = sources.get(m)
            encoder = encoders.get(m)
            if source is not None and source.modality is not m:
                raise ValueError(f"a {source.modality.value} source cannot feed {m.value}")
            entry = _Entry(m, source, encoder, (unavailable or {}).get(m, ""))
            entry.enabled = encoder is not None and (source is not None or m is Modality.TEXT)
            entry.metrics = ModalityMetrics(m)
            self._entries[m] = entry

        self._fuser = Fuser(fusion)
        self._fuser_lock = threading.Lock()
        self._latest: FusedEstimate | None = None
        self._listeners: tuple[Any, ...] = ()

        # Hand-over to the fusion thread (never held while calling anything else).
        self._cond = threading.Condition(threading.Lock())
        self._pending_outputs: list[tuple[_Run, EncoderOutput]] = []
        self._pending_status: dict[Modality, ModalityStatus] = {}
        self._force_estimate = False
        self._preview: LatestSlot[VideoFrame] = LatestSlot()
        self._level: tuple[float, float] | None = None
        self._fused_last: dict[Modality, ModalityPrediction] = {}

        self._running = False
        self._closing = False
        self._fusion_stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- listeners ----------------------------------------------------------------------

    def add_listener(self, listener: Any) -> None:
        with self._lock:
            if listener not in self._listeners:
                self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Any) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    def _emit(self, method: str, *args: Any) -> None:
        for listener in self._listeners:
            fn = getattr(listener, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:  # a consumer's bug must not stop the session (logged)
                log.exception("session listener %r failed in %s", listener, method)

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Open the sources and start the worker threads and the fusion thread."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._closing = False
            self._fusion_stop = threading.Event()
            self._preview = LatestSlot()
            fusion = threading.Thread(
                target=self._fusion_loop,
                args=(self._fusion_stop,),
                name="emoapp-fusion",
                daemon=True,
            )
            self._threads.append(fusion)
            fusion.start()
            for m in Modality:
                if self._entries[m].enabled:
                    self._start_run(m)
        for m in Modality:
            self._refresh_status(m)

    def stop(self, timeout: float = 5.0) -> list[str]:
        """Close every source and join every thread (waiting ``timeout`` seconds in all).
        Returns the names of threads that did not stop in time (e.g. an encoder stuck in
        a call); they are daemon threads and end with the process."""
        with self._lock:
            was_running = self._running
            self._running = False
            self._closing = True  # no more estimates: they would only say "nothing left"
            for m in Modality:
                if self._entries[m].run is not None:
                    self._stop_run(m, note="stopped")
        if was_running:
            for m in Modality:
                self._refresh_status(m)
        self._fusion_stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is threading.current_thread():
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in threads if t.is_alive() and t is not threading.current_thread()]
        with self._lock:
            self._threads = alive
        if alive:
            log.warning("threads still running after stop(): %s", [t.name for t in alive])
        return [t.name for t in alive]

    def start_modality(self, m: Modality) -> None:
        """Start (or restart after stop_modality) one modality."""
        m = Modality(m)
        with self._lock:
            entry = self._entries[m]
            entry.enabled = True
            if self._running and entry.run is None:
                self._start_run(m)
        self._refresh_status(m)

    def stop_modality(self, m: Modality) -> None:
        """Stop one modality now: close its source, empty its buffers, and remove it from
        fusion (the next estimate, produced at once, no longer includes it)."""
        m = Modality(m)
        with self._lock:
            entry = self._entries[m]
            entry.enabled = False
            if entry.run is not None:
                self._stop_run(m, note="stopped")
            entry.stopped_note = "stopped"
        self._refresh_status(m)

    def set_source(self, m: Modality, source: Source | None) -> None:
        """Replace a modality's source (restarting it if it was running, or starting it
        if it was switched on and waiting for a source)."""
        m = Modality(m)
        if source is not None and source.modality is not m:
            raise ValueError(f"a {source.modality.value} source cannot feed {m.value}")
        with self._lock:
            entry = self._entries[m]
            restart = entry.run is not None
            if restart:
                self._stop_run(m, note="source changed")
            entry.source = source
            if restart or (entry.enabled and self._running):
                self._start_run(m)
        self._refresh_status(m)

    def set_encoder(self, m: Modality, encoder: Encoder | None) -> None:
        """Replace a modality's encoder (restarting it if it was running, or starting it
        if it was switched on and waiting for a model)."""
        m = Modality(m)
        with self._lock:
            entry = self._entries[m]
            restart = entry.run is not None
            if restart:
                self._stop_run(m, note="model changed")
            entry.encoder = encoder
            if encoder is not None:
                entry.unavailable = ""
            if restart or (entry.enabled and self._running):
                self._start_run(m)
        self._refresh_status(m)

    def set_fusion_config(self, config: FusionConfig) -> None:
        with self._fuser_lock:
            self._fuser.config = config
        self._wake(force_estimate=True)

    def submit_text(self, text: str) -> bool:
        """A typed entry, stamped now and encoded by the text worker. False (and
        ignored) when the text modality is not running."""
        entry = TextEntry(clock.now(), text, "typed")
        with self._lock:
            run = self._entries[Modality.TEXT].run
        if run is None:
            return False
        self._on_item(run, entry)
        return True

    # -- reading ------------------------------------------------------------------------

    def latest_estimate(self) -> FusedEstimate | None:
        return self._latest

    def status(self) -> dict[Modality, ModalityStatus]:
        return {m: self._compute_status(m) for m in Modality}

    def metrics(self) -> dict[Modality, ModalityMetricsSnapshot]:
        now = clock.now()
        with self._lock:
            recorders = {m: e.metrics for m, e in self._entries.items()}
        return {m: r.snapshot(now) for m, r in recorders.items() if r is not None}

    def buffered(self) -> dict[Modality, int]:
        """Inputs held for each modality right now (waiting for its worker, and the
        preview frame): 0 for a stopped modality. The voice worker's own window (at most
        one window of audio) lives only as long as the worker."""
        with self._lock:
            runs = {m: e.run for m, e in self._entries.items()}
        held = {m: len(run.buffer) if run is not None else 0 for m, run in runs.items()}
        held[Modality.FACE] += len(self._preview)
        return held

    def sources_finished(self, quiet_s: float = 0.3) -> bool:
        """True once every running modality with a source has come to the end of it
        (replayed file played, or a source that failed for good), its buffered input is
        encoded, and its worker has been idle for ``quiet_s``; False while any device
        source runs, or when no modality has a source."""
        now = clock.now()
        with self._lock:
            runs = [e.run for e in self._entries.values() if e.run is not None]
        with_source = [r for r in runs if r.source is not None]
        if not with_source:
            return False
        for run in with_source:
            if run.source_state not in ("ended", "failed"):
                return False
            if run.source_state == "failed" and run.source.is_device:  # type: ignore[union-attr]
                return False  # a device is retried: it may come back
            if len(run.buffer) or run.metrics.busy_for(now) is not None:
                return False
            if now - run.last_activity < quiet_s:
                return False
        return True

    # -- runs ---------------------------------------------------------------------------

    def _start_run(self, m: Modality) -> None:
        """Start a run of ``m`` (with self._lock held)."""
        entry = self._entries[m]
        if entry.encoder is None or (entry.source is None and m is not Modality.TEXT):
            return
        metrics = ModalityMetrics(m)
        buffer: LatestSlot[Any] | RingBuffer[Any]
        if m is Modality.FACE:
            buffer = LatestSlot()
        elif m is Modality.VOICE:
            buffer = RingBuffer(self.audio_buffer_s, size=lambda chunk: chunk.duration)
        else:
            buffer = RingBuffer(self.text_queue_size)
        self._threads = [t for t in self._threads if t.is_alive()]
        run = _Run(m, entry.source, entry.encoder, metrics, buffer)
        run.source_state = "starting" if entry.source is not None else "running"
        entry.run = run
        entry.metrics = metrics
        entry.unavailable = ""
        entry.stopped_note = None
        entry.speech = None
        worker = threading.Thread(
            target=self._work, args=(run,), name=f"emoapp-{m.value}-worker", daemon=True
        )
        run.threads.append(worker)
        if entry.source is not None:
            supervisor = threading.Thread(
                target=self._supervise,
                args=(run,),
                name=f"emoapp-{m.value}-source",
                daemon=True,
            )
            run.threads.append(supervisor)
        self._threads.extend(run.threads)
        for thread in run.threads:
            thread.start()

    def _stop_run(self, m: Modality, note: str) -> None:
        """Stop the current run of ``m`` at once (with self._lock held): its threads are
        told to stop (and joined later, by stop()), its source closed, its buffer emptied,
        and the modality removed from fusion."""
        entry = self._entries[m]
        run = entry.run
        if run is None:
            return
        entry.run = None
        entry.stopped_note = note
        entry.speech = None
        run.stop.set()
        run.source_events.put((0, "stop", None))
        run.buffer.close()
        with run.source_lock:
            if run.source_open and run.source is not None:
                run.source_open = False
                self._close_source(run.source)
        with self._fuser_lock:
            self._fuser.remove(m)
            self._fused_last.pop(m, None)
        if m is Modality.VOICE:
            self._level = None
        if m is Modality.FACE:
            self._preview.clear()
        self._wake(force_estimate=True)

    @staticmethod
    def _close_source(source: Source) -> None:
        try:
            source.close()
        except Exception:  # a driver failing to close must not stop the session (logged)
            log.exception("closing %s failed", source.name)

    # -- source side --------------------------------------------------------------------

    def _on_item(self, run: _Run, item: SourceItem) -> None:
        """A source callback: hand the item over and return. Runs on the source's thread."""
        if run.stop.is_set():
            return
        buffer = run.buffer
        dropped_before = buffer.dropped
        if not buffer.put(item):
            return
        if isinstance(item, VideoFrame):
            run.metrics.record_input(1)
            run.metrics.record_dropped(buffer.dropped - dropped_before)
            self._preview.put(item)
        elif isinstance(item, AudioChunk):
            self._level = (item.t, rms_dbfs(item.samples))
        elif isinstance(item, TextEntry):
            run.metrics.record_input(1)
            run.metrics.record_dropped(buffer.dropped - dropped_before)

    def _set_source_state(self, run: _Run, state: str, message: str) -> None:
        with self._lock:
            run.source_state = state
            run.source_message = message
        self._refresh_status(run.modality)

    def _supervise(self, run: _Run) -> None:
        """Open the source, start it, and reopen it with backoff when it fails."""
        source = run.source
        assert source is not None
        backoff = self.retry_initial_s
        attempt = 0
        ever_ran = False
        while not run.stop.is_set():
            attempt += 1
            if not ever_ran or attempt == 1:
                self._set_source_state(run, "starting", f"opening {source.name}")
            problem = self._open_and_start(run, source, attempt)
            if problem is None:
                if run.stop.is_set():
                    return
                ever_ran = True
                opened_at = clock.now()
                self._set_source_state(run, "running", "")
                while True:
                    tag, kind, payload = run.source_events.get()
                    if kind == "stop":
                        return
                    if tag == attempt:
                        break
                with run.source_lock:
                    if run.source_open:
                        run.source_open = False
                        self._close_source(source)
                if kind == "end":
                    note = payload or f"end of {source.name}"
                    self._set_source_state(run, "ended", note)
                    return
                problem = one_line(payload)
                if clock.now() - opened_at > 10 * self.retry_max_s:
                    backoff = self.retry_initial_s  # it worked for a good while: start over
            elif problem.startswith("!"):
                self._set_source_state(run, "failed", problem[1:])
                return
            state = "retrying" if ever_ran else "failed"
            self._set_source_state(run, state, f"{problem}; retrying in {backoff:.1f} s")
            if run.stop.wait(backoff):
                return
            backoff = min(backoff * 2.0, self.retry_max_s)

    def _open_and_start(self, run: _Run, source: Source, attempt: int) -> str | None:
        """None when the source runs; otherwise why not (prefixed "!" when permanent)."""
        try:
            self._open_source(source)
        except (PermanentSourceError, MissingDependencyError) as exc:
            return f"!{exc}"
        except EmoappError as exc:
            return str(exc)
        except Exception as exc:  # drivers raise anything; logged, and the source is retried
            log.exception("opening %s failed", source.name)
            return f"{source.name}: {type(exc).__name__}: {one_line(exc)}"

        def on_error(error: BaseException) -> None:
            run.source_events.put((attempt, "error", error))

        def on_end(note: str = "") -> None:
            run.source_events.put((attempt, "end", note))

        with run.source_lock:
            if run.stop.is_set():
                self._close_source(source)
                return None
            try:
                source.start(lambda item: self._on_item(run, item), on_error, on_end)
            except EmoappError as exc:
                self._close_source(source)
                return str(exc)
            except Exception as exc:  # drivers raise anything; logged, source retried
                log.exception("starting %s failed", source.name)
                self._close_source(source)
                return f"{source.name}: {type(exc).__name__}: {one_line(exc)}"
            run.source_open = True
        return None

    # -- worker side --------------------------------------------------------------------

    def _work(self, run: _Run) -> None:
        """One modality's worker: newest input -> encoder -> fusion thread."""
        m = run.modality
        try:
            run.encoder.load()
        except Exception as exc:  # noqa: BLE001 - any load failure disables this modality only
            message = f"{m.value} model failed to load: {one_line(exc)}"
            log.warning("%s", message)
            with self._lock:
                entry = self._entries[m]
                if entry.run is run:
                    self._stop_run(m, note="")
                    entry.unavailable = message
            self._refresh_status(m)
            return
        self._refresh_status(m)  # the device is known once loaded
        windows = None
        overflow_seen = 0.0
        if m is Modality.VOICE:
            from emoapp.encoders.voice import WindowBuffer

            windows = WindowBuffer(self.voice_window_s, self.voice_hop_s)
        while not run.stop.is_set():
            if isinstance(run.buffer, LatestSlot):
                frame = run.buffer.take(timeout=0.1)
                items: list[Any] = [] if frame is None else [frame]
            elif windows is None:
                items = run.buffer.drain(timeout=0.1)
            else:
                chunks = run.buffer.drain(timeout=0.1)
                lost = run.buffer.dropped_size - overflow_seen
                if lost > 0:
                    # Audio fell out of the ring while the encoder was busy: the windows
                    # it would have made count as inputs dropped, and the stream restarts.
                    overflow_seen = run.buffer.dropped_size
                    lost_windows = max(1, round(lost / self.voice_hop_s))
                    run.metrics.record_input(lost_windows)
                    run.metrics.record_dropped(lost_windows)
                    windows.reset()
                completed: list[AudioChunk] = []
                for chunk in chunks:
                    try:
                        completed.extend(windows.push(chunk))
                    except ValueError as exc:
                        log.warning("%s: unusable audio chunk: %s", m.value, exc)
                        windows.reset()
                if completed:
                    run.metrics.record_input(len(completed))
                    run.metrics.record_dropped(len(completed) - 1)
                items = completed[-1:]  # only the newest window: stale audio is not queued
            if not items or run.stop.is_set():
                continue
            run.last_activity = clock.now()
            self._encode(run, items)
            run.last_activity = clock.now()

    def _encode(self, run: _Run, items: list[Any]) -> None:
        m = run.modality
        run.metrics.encoder_started()
        started = time.perf_counter()
        try:
            outputs = run.encoder.encode(items)
        # An encoder may fail in any way (torch, a bad input, a bug): the worker must
        # survive, and the reason is carried to the modality's status.
        except Exception as exc:  # noqa: BLE001
            run.metrics.encoder_finished(time.perf_counter() - started, ok=False)
            message = f"{m.value} encoder failed: {type(exc).__name__}: {one_line(exc)}"
            if message != run.encoder_error:
                log.warning("%s", message)
            with self._lock:
                run.encoder_error = message
            self._refresh_status(m)
            return
        run.metrics.encoder_finished(time.perf_counter() - started)
        if run.stop.is_set():
            return
        with self._lock:
            run.encoder_error = ""
            run.outputs += len(outputs)
        if m is Modality.VOICE and outputs:
            self._entries[m].speech = _speech_flag(outputs[-1])
        with self._cond:
            self._pending_outputs.extend((run, out) for out in outputs)
            # Bounded: when listeners are too slow to keep up, the oldest outputs go.
            del self._pending_outputs[:-256]
            self._cond.notify()
        self._refresh_status(m)

    # -- status -------------------------------------------------------------------------

    def _compute_status(self, m: Modality) -> ModalityStatus:
        with self._lock:
            entry = self._entries[m]
            run = entry.run
            encoder = entry.encoder
            source = entry.source
            source_name = (
                source.name if source is not None else ("typed text" if m is Modality.TEXT else "")
            )
            model_id = encoder.model_id if encoder is not None else ""
            device = _encoder_device(encoder) if encoder is not None else ""
            baseline = bool(encoder.baseline) if encoder is not None else False

            source_open = run is not None and run.source_open

            def status(state: str, message: str = "") -> ModalityStatus:
                return ModalityStatus(
                    m, state, source_name, model_id, device, baseline, message, source_open
                )

            if run is None:
                if entry.unavailable:
                    return status("failed", entry.unavailable)
                if entry.stopped_note:
                    return status("stopped", entry.stopped_note)
                if encoder is None:
                    return status("off", f"no {m.value} model")
                if source is None and m is not Modality.TEXT:
                    return status("off", f"no {'camera' if m is Modality.FACE else 'microphone'}")
                return status("off")
            busy = run.metrics.busy_for()
            fell_back = getattr(encoder, "fell_back_to_cpu", None)
            if run.source_state == "failed":
                state, message = "failed", run.source_message
            elif run.source_state == "retrying":
                state, message = "degraded", run.source_message
            elif run.source_state == "ended":
                state, message = "stopped", run.source_message
            elif run.encoder_error:
                state, message = "degraded", run.encoder_error
            elif busy is not None and busy > self.stall_after_s:
                state = "degraded"
                message = f"the {m.value} encoder has not returned for {int(busy)} s"
            elif (
                m is not Modality.TEXT
                and run.source_state == "running"
                and (idle := run.metrics.idle_for()) is not None
                and idle > self.stall_after_s
            ):
                # A source that stops delivering without an error (a frozen driver, a
                # stalled file read) must not look healthy.
                state = "degraded"
                message = f"no input from {source_name or 'the source'} for {idle:.0f} s"
            elif run.source_state == "starting":
                state, message = "starting", run.source_message
            elif run.outputs == 0 and m is not Modality.TEXT:
                state, message = "starting", "waiting for the first result"
            else:
                state, message = "running", ""
            if fell_back:
                message = f"{message}; {fell_back}" if message else str(fell_back)
                if state == "running":
                    state = "degraded"
            return status(state, message)

    def _refresh_status(self, m: Modality) -> None:
        """Recompute a modality's status; hand it to the listeners if it changed."""
        status = self._compute_status(m)
        with self._lock:
            entry = self._entries[m]
            if status == entry.last_status:
                return
            entry.last_status = status
        with self._cond:
            self._pending_status[m] = status
            self._cond.notify()

    # -- fusion thread ------------------------------------------------------------------

    def _wake(self, force_estimate: bool = False) -> None:
        with self._cond:
            self._force_estimate = self._force_estimate or force_estimate
            self._cond.notify()

    def _fusion_loop(self, stop: threading.Event) -> None:
        period = 1.0 / self.rate_hz
        frame_period = 1.0 / PREVIEW_MAX_HZ
        level_period = 1.0 / LEVEL_MAX_HZ
        next_tick = clock.now()
        last_frame_sent = last_level_sent = float("-inf")
        level_sent: tuple[float, float] | None = None
        next_stall_check = clock.now()
        while True:
            with self._cond:
                while not (
                    stop.is_set()
                    or self._pending_outputs
                    or self._pending_status
                    or self._force_estimate
                ):
                    now = clock.now()
                    wait = next_tick - now
                    if len(self._preview):
                        wait = min(wait, last_frame_sent + frame_period - now)
                    if self._level is not None and self._level is not level_sent:
                        wait = min(wait, last_level_sent + level_period - now)
                    if wait <= 0:
                        break
                    self._cond.wait(min(wait, frame_period))
                outputs, self._pending_outputs = self._pending_outputs, []
                statuses, self._pending_status = self._pending_status, {}
                force, self._force_estimate = self._force_estimate, False
            for status in statuses.values():
                self._emit("on_status", status)
            if stop.is_set():
                with self._cond:
                    statuses, self._pending_status = self._pending_status, {}
                for status in statuses.values():
                    self._emit("on_status", status)
                return
            if self._closing:  # stop() is under way: nothing more to fuse or show
                with self._cond:
                    self._cond.wait(0.05)
                continue
            now = clock.now()
            tick = now >= next_tick
            if tick:
                # A steady schedule; after a stall, start afresh rather than catch up.
                next_tick = next_tick + period if next_tick + period > now else now + period
            estimate = self._fuse(outputs, force or tick)
            for _, output in outputs:
                self._emit("on_output", output)
            if estimate is not None:
                self._emit("on_estimate", estimate)
            now = clock.now()
            if now - last_frame_sent >= frame_period:
                frame = self._preview.take(timeout=0)
                if frame is not None:
                    last_frame_sent = now
                    self._emit("on_frame", frame)
            level = self._level
            if (
                level is not None
                and level is not level_sent
                and now - last_level_sent >= level_period
            ):
                level_sent, last_level_sent = level, now
                self._emit(
                    "on_audio_level", level[0], level[1], self._entries[Modality.VOICE].speech
                )
            if now >= next_stall_check:
                next_stall_check = now + 1.0
                for m in Modality:
                    self._refresh_status(m)

    def _captured(self, prediction: ModalityPrediction) -> float:
        """When the newest input behind a prediction was captured: the end of a voice
        window (``t`` is its start), the capture time of a frame or entry otherwise."""
        if prediction.modality is not Modality.VOICE:
            return prediction.t
        end = prediction.detail.get("window_end")
        if isinstance(end, (int, float)):
            return float(end)
        return prediction.t + self.voice_window_s

    def _fuse(self, outputs: list[tuple[_Run, EncoderOutput]], due: bool) -> FusedEstimate | None:
        """Feed new predictions to the fuser; an estimate when due or when any came."""
        fresh = False
        with self._lock:
            current = {m: e.run for m, e in self._entries.items()}
        with self._fuser_lock:
            for run, output in outputs:
                if run.stop.is_set() or current.get(run.modality) is not run:
                    continue  # from a run stopped meanwhile: it must not come back
                if isinstance(output, ModalityPrediction):
                    self._fuser.update(output)
                    fresh = True
            if not (fresh or due):
                return None
            estimate = self._fuser.estimate(clock.now())
            for m, maybe_run in current.items():
                if maybe_run is not None and maybe_run.outputs:
                    maybe_run.metrics.record_presence(m in estimate.inputs)
            for m, prediction in estimate.inputs.items():
                recorder = self._entries[m].metrics
                if recorder is None:
                    continue
                age = estimate.t - self._captured(prediction)
                recorder.record_age(age)
                if self._fused_last.get(m) is not prediction:
                    self._fused_last[m] = prediction
                    recorder.record_latency(age)
        self._latest = estimate
        return estimate
