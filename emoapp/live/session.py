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

Withdrawal is one path (:meth:`LiveSession.withdraw`; every stop of a modality takes
it, whether a person revoked consent, a consent expired or a modality was switched off).
Stopping modality ``m`` at time ``T`` records ``T`` in the session's
:class:`~emoapp.core.provenance.Withdrawals` *first*, then closes the source, empties its
buffers (heard entries waiting for the text worker, for the microphone), tells the
transcriber to forget its audio and void a transcription under way, drops the
explanation worker's held input, and removes from fusion every prediction made from the
capture (a text prediction of heard words, for the microphone). Every delivery point
checks provenance against the register *at delivery*: the worker when its encoder call
returns, the transcriber and the explanation worker when they finish, the session when
heard text arrives, and the fusion thread right before each listener call. Nothing
captured from ``m`` at or before ``T`` reaches a listener after the withdrawal returns.

The pieces, each in its own module (:class:`LiveSession` is the façade that owns the
state and the threads and wires them together):

- :mod:`emoapp.live.runs`: what is held per modality (settings, the current run);
- :mod:`emoapp.live.supervisor`: opening sources with retries and backoff, and the
  status of each modality;
- :mod:`emoapp.live.workers`: the worker loop, one thread per modality;
- :mod:`emoapp.live.fusion_loop`: the fusion thread, the only one calling listeners.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from emoapp.capture.base import Source, SourceItem
from emoapp.core import clock
from emoapp.core.explanation import Explanation
from emoapp.core.fusion import FusionConfig
from emoapp.core.messages import (
    CONTEXT_TURNS,
    AudioChunk,
    EncoderOutput,
    FusedEstimate,
    Modality,
    TextEntry,
    VideoFrame,
    with_context,
)
from emoapp.core.provenance import Withdrawals, origin_of, provenance_of
from emoapp.encoders.base import Encoder
from emoapp.encoders.vad import rms_dbfs
from emoapp.live import workers
from emoapp.live.explaining import ExplanationCost, ExplanationWorker
from emoapp.live.fusion_loop import LEVEL_MAX_HZ, PREVIEW_MAX_HZ, FusionLoop
from emoapp.live.metrics import ModalityMetrics, ModalityMetricsSnapshot
from emoapp.live.runs import STATES, Entry, ModalityStatus, Run, input_buffer
from emoapp.live.supervisor import SourceSupervisor, close_source, modality_status
from emoapp.live.threads import ThreadPlan, apply_plan, plan_for_session

if TYPE_CHECKING:
    from emoapp.live.transcriber import LiveTranscriber

__all__ = [
    "LEVEL_MAX_HZ",
    "PREVIEW_MAX_HZ",
    "STATES",
    "LiveSession",
    "ModalityStatus",
    "SessionListener",
]

log = logging.getLogger(__name__)


class SessionListener(Protocol):
    """What a session tells its consumers. Every method is optional (looked up with
    ``getattr``); all are called from the session's fusion thread and must return
    quickly without blocking (e.g. emit a queued Qt signal)."""

    def on_estimate(self, estimate: FusedEstimate) -> None: ...

    def on_output(self, output: EncoderOutput) -> None: ...

    def on_frame(self, frame: VideoFrame) -> None: ...

    def on_audio_level(self, t: float, rms_dbfs: float, speech: bool | None) -> None: ...

    def on_status(self, status: ModalityStatus) -> None: ...

    def on_explanation(self, explanation: Explanation) -> None: ...

    def on_heard(self, entry: TextEntry) -> None: ...

    def on_withdrawn(self, origin: Modality, t: float) -> None:
        """A capture was withdrawn at ``t`` (session clock): forget whatever you hold
        that came from it (heard text, for the microphone); nothing more of it comes."""


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
        threads: int | None = None,
        plan_threads: bool = True,
        face_detect_every: int = 0,
        transcriber: LiveTranscriber | None = None,
        face_reclassify_after: float = 0.0,
    ) -> None:
        """``unavailable`` gives, per modality with no encoder, why (e.g. the model
        failed to load); it is shown as that modality's failed status.
        ``audio_buffer_s`` bounds the audio waiting for the voice worker (default: two
        windows, at least 4 s). An encoder call running longer than ``stall_after_s``
        shows as degraded. Sources are opened with ``source.open()``: a camera or
        microphone asks its own consent check there (ConsentRequiredError, an
        EmoappError: the session shows the reason and asks again at each retry).

        With ``plan_threads`` the libraries' thread pools are sized at :meth:`start` by
        :mod:`emoapp.live.threads` (``threads``: the per-worker count by hand; None:
        ``EMOAPP_THREADS`` or chosen from the cores); :attr:`thread_plan` says what was
        set. ``face_detect_every`` > 1 makes the face encoder detect faces on one frame in
        that many and track them in between (:class:`~emoapp.encoders.face.TrackingLocator`);
        ``face_reclassify_after`` > 0 then lets a tracked face that neither moved nor
        changed keep its classification for up to that many seconds
        (:class:`~emoapp.encoders.face.ClassifyReuse`).
        ``transcriber`` (a :class:`~emoapp.live.transcriber.LiveTranscriber`) hears
        the voice source's audio and hands each finished speech segment to the text worker
        as a heard entry; it stops with the session and forgets its audio when the voice
        stops."""
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
        self.threads = threads
        self.plan_threads = bool(plan_threads)
        self.face_detect_every = int(face_detect_every)
        if face_reclassify_after < 0:
            raise ValueError("face_reclassify_after must not be negative")
        self.face_reclassify_after = float(face_reclassify_after)
        self.thread_plan: ThreadPlan | None = None

        self._lock = threading.RLock()  # session and per-modality state
        self._said: list[str] = []  # the last texts typed or heard, context for the next
        self._entries: dict[Modality, Entry] = {}
        for m in Modality:
            source = sources.get(m)
            encoder = encoders.get(m)
            if source is not None and source.modality is not m:
                raise ValueError(f"a {source.modality.value} source cannot feed {m.value}")
            entry = Entry(m, source, encoder, (unavailable or {}).get(m, ""))
            entry.enabled = encoder is not None and (source is not None or m is Modality.TEXT)
            entry.metrics = ModalityMetrics(m)
            self._entries[m] = entry
        self._listeners: tuple[Any, ...] = ()
        self.withdrawals = Withdrawals()
        """When each capture was last withdrawn (:mod:`emoapp.core.provenance`)."""

        self._fusion = FusionLoop(
            fusion,
            self.rate_hz,
            self.voice_window_s,
            emit=self._emit,
            current_runs=self._current_runs,
            recorder=lambda m: self._entries[m].metrics,
            speech=lambda: self._entries[Modality.VOICE].speech,
            closing=lambda: self._closing,
            refresh_statuses=self._refresh_all,
            withdrawals=self.withdrawals,
        )
        self._supervisor = SourceSupervisor(
            self._on_item,
            self._set_source_state,
            self.retry_initial_s,
            self.retry_max_s,
        )

        self._worker_host = workers.WorkerHost(
            self._load_failed,
            self._encoder_failed,
            self._deliver,
            self._refresh_status,
            self._offer,
            self.withdrawals.admits_thing,
        )
        self._explainer: ExplanationWorker | None = None

        self._running = False
        self._closing = False
        self._fusion_stop = threading.Event()
        self._threads: list[threading.Thread] = []

        self.transcriber = transcriber
        if transcriber is not None:
            transcriber.on_entry = self.submit_heard
            transcriber.admits = self.withdrawals.admits_thing
            transcriber.on_loaded = self._apply_plan_on_asr_thread

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
            self._fusion.reset_preview()
            fusion = threading.Thread(
                target=self._fusion.run,
                args=(self._fusion_stop,),
                name="emoapp-fusion",
                daemon=True,
            )
            self._threads.append(fusion)
            fusion.start()
            for m in Modality:
                if self._entries[m].enabled:
                    self._start_run(m)
            if self._explainer is not None:
                self._threads.append(self._explainer.start())
            if self.transcriber is not None:
                self.transcriber.start()
        self._refresh_all()

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
        self._fusion.barrier()
        if self.transcriber is not None:
            self.transcriber.stop(timeout)
        if was_running:
            self._refresh_all()
        self._fusion_stop.set()
        self._fusion.notify_stop()
        if self._explainer is not None:
            self._explainer.stop(timeout=0)
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

    def stop_modality(self, m: Modality, note: str = "stopped") -> None:
        """Stop one modality now, through the withdrawal path (:meth:`withdraw`)."""
        self.withdraw(m, note)

    def withdraw(self, m: Modality, note: str = "stopped") -> float:
        """Withdraw modality ``m`` now (consent revoked or expired, or switched off):
        its capture stops, in-flight work from it is dropped at delivery, what is held
        from it is purged (see the module docstring), and the next estimate, produced at
        once, no longer includes it. When this returns, no listener call admitted
        before it is still running. Returns the withdrawal time (session clock)."""
        m = Modality(m)
        with self._lock:
            entry = self._entries[m]
            entry.enabled = False
            if entry.run is not None:
                self._stop_run(m, note=note)
            else:
                self._purge(m, self.withdrawals.withdraw(m))
            entry.stopped_note = note
            at = self.withdrawals.withdrawn_at(m)
        self._fusion.barrier()
        self._refresh_status(m)
        return at if at is not None else clock.now()

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
        self._fusion.set_config(config)

    def submit_text(self, text: str) -> bool:
        """A typed entry, stamped now and encoded by the text worker. False (and
        ignored) when the text modality is not running."""
        with self._lock:
            run = self._entries[Modality.TEXT].run
            if run is None:
                return False
            entry = self._in_conversation(TextEntry(clock.now(), text, "typed"))
        self._on_item(run, entry)
        return True

    def _in_conversation(self, entry: TextEntry) -> TextEntry:
        """``entry`` with the session's last few texts (typed or heard) as its context;
        remembers it for the next one. Call with the lock held."""
        [entry] = with_context([entry], before=self._said)
        if entry.text.strip():
            self._said = [*self._said, entry.text][-CONTEXT_TURNS:]
        return entry

    def submit_heard(self, entry: TextEntry) -> bool:
        """A heard (transcribed) entry, with its segment's time span, for the text
        worker; listeners' ``on_heard`` get it too (from the fusion thread). False when
        text is not running, or when the microphone was withdrawn after the words were
        spoken (heard text is microphone data: checked here, at delivery)."""
        with self._lock:
            run = self._entries[Modality.TEXT].run
            if run is None or not self.withdrawals.admits_thing(entry):
                return False
            entry = self._in_conversation(entry)
            self._fusion.post_heard(entry)
            self._on_item(run, entry)
        return True

    # -- explanations -------------------------------------------------------------------

    def enable_explanations(self, every_s: float | None = None) -> None:
        """Explain the newest prediction of each modality on :meth:`request_explanation`
        and, with ``every_s``, at most that often, on one low-priority thread
        (:mod:`emoapp.live.explaining`); listeners get ``on_explanation``."""
        with self._lock:
            if self._explainer is None:
                self._explainer = ExplanationWorker(
                    self._fusion.post_explanation,
                    every_s=every_s,
                    admits=self.withdrawals.admits_thing,
                    with_provenance=True,
                )
                if self._running:
                    self._threads.append(self._explainer.start())
            else:
                self._explainer.set_every(every_s)

    def request_explanation(self, m: Modality | None = None) -> bool:
        """Explain the newest prediction of ``m`` (all: None) now. False when
        explanations are not enabled."""
        explainer = self._explainer
        if explainer is None:
            return False
        explainer.request(m)
        return True

    def explanation_costs(self) -> dict[Modality, ExplanationCost]:
        """What explanations have cost so far, per modality (empty when not enabled)."""
        explainer = self._explainer
        return explainer.costs() if explainer is not None else {}

    # -- reading ------------------------------------------------------------------------

    def latest_estimate(self) -> FusedEstimate | None:
        return self._fusion.latest

    def encoder(self, m: Modality) -> Encoder | None:
        """The encoder ``m`` runs (None: none)."""
        with self._lock:
            return self._entries[Modality(m)].encoder

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
        held[Modality.FACE] += len(self._fusion.preview)
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
        if self.transcriber is not None and self.transcriber.running:
            # Heard text still on its way: the recogniser, then the text worker.
            text = self._entries[Modality.TEXT].run
            if self.transcriber.busy or (
                text is not None and (len(text.buffer) or text.metrics.busy_for(now) is not None)
            ):
                return False
            if text is not None and now - text.last_activity < quiet_s:
                return False
        return True

    def _replan_threads(self) -> None:
        """Size the libraries' thread pools for the model workers now running (with
        self._lock held): called whenever a run starts. Speech recognition counts as a
        worker (``asr``) when the session has a transcriber."""
        if not self.plan_threads:
            return
        workers = [
            m.value
            for m, e in self._entries.items()
            if e.run is not None
            and e.encoder is not None
            and not getattr(e.encoder, "baseline", False)
        ]
        if self.transcriber is not None:
            workers.append("asr")
        plan = plan_for_session(workers, self.threads)
        if self.thread_plan is None or dataclasses.replace(self.thread_plan, applied=()) != plan:
            self.thread_plan = apply_plan(plan)

    def _apply_plan_on_asr_thread(self) -> None:
        """The transcriber's thread, once its recogniser is loaded: the recogniser may
        have imported torch only now, after the plan was applied; apply it again."""
        with self._lock:
            plan = self.thread_plan
            if plan is not None and self.plan_threads:
                self.thread_plan = apply_plan(dataclasses.replace(plan, applied=()))

    # -- runs ---------------------------------------------------------------------------

    def _current_runs(self) -> dict[Modality, Run | None]:
        with self._lock:
            return {m: e.run for m, e in self._entries.items()}

    def _start_run(self, m: Modality) -> None:
        """Start a run of ``m`` (with self._lock held): its worker thread and, when it
        has a source, its supervisor thread."""
        entry = self._entries[m]
        if entry.encoder is None or (entry.source is None and m is not Modality.TEXT):
            return
        metrics = ModalityMetrics(m)
        buffer = input_buffer(m, self.audio_buffer_s, self.text_queue_size)
        self._threads = [t for t in self._threads if t.is_alive()]
        run = Run(m, entry.source, entry.encoder, metrics, buffer)
        if m is Modality.FACE:
            run.face_detect_every = self.face_detect_every
            run.face_reclassify_after = self.face_reclassify_after
        run.source_state = "starting" if entry.source is not None else "running"
        entry.run = run
        entry.metrics = metrics
        entry.unavailable = ""
        entry.stopped_note = None
        entry.speech = None
        self._replan_threads()
        worker = threading.Thread(
            target=workers.work,
            args=(run, self._worker_host, self.voice_window_s, self.voice_hop_s),
            name=f"emoapp-{m.value}-worker",
            daemon=True,
        )
        run.threads.append(worker)
        if entry.source is not None:
            supervisor = threading.Thread(
                target=self._supervisor.supervise,
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
        if m is Modality.TEXT:
            self._said = []  # the conversation context goes with the text run
        entry = self._entries[m]
        run = entry.run
        if run is None:
            return
        at = self.withdrawals.withdraw(m)  # first: every delivery after this checks it
        entry.run = None
        entry.stopped_note = note
        entry.speech = None
        run.stop.set()
        run.source_events.put((0, "stop", None))
        run.buffer.close()
        with run.source_lock:
            if run.source_open and run.source is not None:
                run.source_open = False
                close_source(run.source)
        self._purge(m, at)

    def _purge(self, m: Modality, at: float) -> None:
        """Drop what is held from capture ``m`` (with self._lock held): heard entries
        waiting for the text worker and the transcriber's audio (microphone), the
        explanation worker's held input, and its predictions in fusion."""
        if m is Modality.VOICE:
            if self.transcriber is not None:
                self.transcriber.forget()
            # The conversation context may hold heard words: microphone data.
            self._said = []
            text = self._entries[Modality.TEXT].run
            if text is not None and hasattr(text.buffer, "discard_if"):
                text.buffer.discard_if(lambda item: origin_of(item) is Modality.VOICE)
        if self._explainer is not None:
            self._explainer.forget(m)
        self._fusion.forget(m, at)

    # -- source side (called by the supervisor and on the sources' threads) -------------

    def _on_item(self, run: Run, item: SourceItem) -> None:
        """A source callback: hand the item over and return. Runs on the source's thread."""
        if run.stop.is_set() or not self.withdrawals.admits(provenance_of(item)):
            return
        buffer = run.buffer
        dropped_before = buffer.dropped
        if not buffer.put(item):
            return
        if isinstance(item, VideoFrame):
            run.metrics.record_input(1)
            run.metrics.record_dropped(buffer.dropped - dropped_before)
            self._fusion.show_frame(item)
        elif isinstance(item, AudioChunk):
            self._fusion.set_level(item.t, rms_dbfs(item.samples))
            if self.transcriber is not None:
                self.transcriber.feed(item)
        elif isinstance(item, TextEntry):
            run.metrics.record_input(1)
            run.metrics.record_dropped(buffer.dropped - dropped_before)

    def _set_source_state(self, run: Run, state: str, message: str) -> None:
        with self._lock:
            run.source_state = state
            run.source_message = message
        self._refresh_status(run.modality)

    # -- worker side (the workers' WorkerHost, called on the workers' threads) ----------

    def _load_failed(self, run: Run, message: str) -> None:
        m = run.modality
        with self._lock:
            entry = self._entries[m]
            if entry.run is run:
                self._stop_run(m, note="")
                entry.unavailable = message
        self._refresh_status(m)

    def _encoder_failed(self, run: Run, message: str) -> None:
        with self._lock:
            run.encoder_error = message
        self._refresh_status(run.modality)

    def _deliver(self, run: Run, outputs: list[EncoderOutput]) -> None:
        m = run.modality
        with self._lock:
            run.encoder_error = ""
            run.outputs += len(outputs)
        if m is Modality.VOICE and outputs:
            self._entries[m].speech = workers.speech_flag(outputs[-1])
        self._fusion.post_outputs(run, outputs)
        self._refresh_status(m)

    def _offer(self, run: Run, items: list[Any], outputs: list[EncoderOutput]) -> None:
        explainer = self._explainer
        if explainer is None or len(items) != len(outputs):
            return
        for item, output in zip(items, outputs, strict=True):
            explainer.offer(run.modality, run.encoder, item, output)

    # -- status -------------------------------------------------------------------------

    def _compute_status(self, m: Modality) -> ModalityStatus:
        with self._lock:
            return modality_status(self._entries[m], self.stall_after_s)

    def _refresh_status(self, m: Modality) -> None:
        """Recompute a modality's status; hand it to the listeners if it changed."""
        status = self._compute_status(m)
        with self._lock:
            entry = self._entries[m]
            if status == entry.last_status:
                return
            entry.last_status = status
        self._fusion.post_status(status)

    def _refresh_all(self) -> None:
        for m in Modality:
            self._refresh_status(m)
