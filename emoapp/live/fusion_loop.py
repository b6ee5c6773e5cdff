"""The fusion loop of a live session: the one thread that fuses and talks to listeners.

Workers post their outputs and the session posts status changes here; the loop feeds
predictions to the :class:`~emoapp.core.fusion.Fuser`, produces an estimate at about
``rate_hz`` and on each new prediction (coalesced), and hands estimates, outputs,
preview frames (at most 30 a second), audio levels (at most 20 a second), status
changes and explanations (:mod:`emoapp.live.explaining`) to the listeners. It is the
only thread that calls listeners, never with a session lock held; a slow listener only
delays this thread, whose pending work is bounded.

Withdrawal (:mod:`emoapp.core.provenance`): everything the loop hands to a listener is
checked against the session's :class:`~emoapp.core.provenance.Withdrawals` right before
it is handed over (outputs, estimates, explanations, heard text, preview frames, audio
levels), and :meth:`FusionLoop.forget` removes from the fuser every prediction made from
the withdrawn capture (a text prediction of heard words included), resets the smoothing
that carried them, and drops what is pending. The check and the calls that follow it
hold the loop's delivery lock; :meth:`FusionLoop.barrier` waits for it, so once a
withdrawal has returned no listener call admitted before it is still running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from emoapp.core import clock
from emoapp.core.explanation import Explanation
from emoapp.core.fusion import Fuser, FusionConfig
from emoapp.core.messages import (
    EncoderOutput,
    FusedEstimate,
    Modality,
    ModalityPrediction,
    TextEntry,
    VideoFrame,
)
from emoapp.core.provenance import Provenance, Withdrawals, origin_of, provenance_of
from emoapp.live.metrics import ModalityMetrics
from emoapp.live.runs import ModalityStatus, Run
from emoapp.live.slots import LatestSlot

PREVIEW_MAX_HZ = 30.0
LEVEL_MAX_HZ = 20.0

PENDING_OUTPUTS_MAX = 256
"""Outputs waiting for the loop beyond this many are dropped, oldest first (when the
listeners are too slow to keep up)."""


class FusionLoop:
    """Fuses the outputs of a session's runs and tells the listeners.

    ``emit(method, *args)`` calls the listeners; ``current_runs()`` gives each
    modality's current run (outputs of any other run are ignored); ``recorder(m)`` the
    metrics of a modality; ``speech()`` whether the voice run last heard speech;
    ``closing()`` is True while the session stops (nothing more is fused or shown);
    ``refresh_statuses()`` is called about once a second (to notice stalls)."""

    def __init__(
        self,
        fusion: FusionConfig | None,
        rate_hz: float,
        voice_window_s: float,
        emit: Callable[..., None],
        current_runs: Callable[[], Mapping[Modality, Run | None]],
        recorder: Callable[[Modality], ModalityMetrics | None],
        speech: Callable[[], bool | None],
        closing: Callable[[], bool],
        refresh_statuses: Callable[[], None],
        withdrawals: Withdrawals | None = None,
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.voice_window_s = float(voice_window_s)
        self._emit = emit
        self._current_runs = current_runs
        self._recorder = recorder
        self._speech = speech
        self._closing = closing
        self._refresh_statuses = refresh_statuses
        self.withdrawals = withdrawals if withdrawals is not None else Withdrawals()
        self._delivery = threading.RLock()
        """Held from the admission check to the end of the listener calls it admitted."""

        self._fuser = Fuser(fusion)
        self._fuser_lock = threading.Lock()
        self._latest: FusedEstimate | None = None
        # Hand-over to the fusion thread (never held while calling anything else).
        self._cond = threading.Condition(threading.Lock())
        self._pending_outputs: list[tuple[Run, EncoderOutput]] = []
        self._pending_status: dict[Modality, ModalityStatus] = {}
        # the newest per modality, with the provenance of the prediction explained
        self._pending_explanations: dict[Modality, tuple[Explanation, Provenance | None]] = {}
        self._pending_heard: list[TextEntry] = []
        self._pending_withdrawn: list[tuple[Modality, float]] = []
        self._force_estimate = False
        self.preview: LatestSlot[VideoFrame] = LatestSlot()
        self._level: tuple[float, float] | None = None
        self._fused_last: dict[Modality, ModalityPrediction] = {}

    # -- from other threads -------------------------------------------------------------

    @property
    def latest(self) -> FusedEstimate | None:
        return self._latest

    def set_config(self, config: FusionConfig) -> None:
        with self._fuser_lock:
            self._fuser.config = config
        self.wake(force_estimate=True)

    def wake(self, force_estimate: bool = False) -> None:
        with self._cond:
            self._force_estimate = self._force_estimate or force_estimate
            self._cond.notify()

    def notify_stop(self) -> None:
        """Wake every fusion thread waiting (their stop event is set)."""
        with self._cond:
            self._cond.notify_all()

    def post_outputs(self, run: Run, outputs: list[EncoderOutput]) -> None:
        with self._cond:
            self._pending_outputs.extend((run, out) for out in outputs)
            # Bounded: when listeners are too slow to keep up, the oldest outputs go.
            del self._pending_outputs[:-PENDING_OUTPUTS_MAX]
            self._cond.notify()

    def post_status(self, status: ModalityStatus) -> None:
        with self._cond:
            self._pending_status[status.modality] = status
            self._cond.notify()

    def post_explanation(
        self, explanation: Explanation, provenance: Provenance | None = None
    ) -> None:
        """An explanation (:mod:`emoapp.core.explanation`) for the listeners'
        ``on_explanation``; a newer one of the same modality replaces it. ``provenance``:
        that of the prediction explained (default: the explanation's modality and time)."""
        if provenance is None:
            provenance = provenance_of(explanation)
        with self._cond:
            self._pending_explanations[explanation.modality] = (explanation, provenance)
            self._cond.notify()

    def post_heard(self, entry: TextEntry) -> None:
        """Heard text for the listeners' ``on_heard`` (checked again when handed over)."""
        with self._cond:
            self._pending_heard.append(entry)
            del self._pending_heard[:-PENDING_OUTPUTS_MAX]
            self._cond.notify()

    def show_frame(self, frame: VideoFrame) -> None:
        self.preview.put(frame)

    def set_level(self, t: float, dbfs: float) -> None:
        self._level = (t, dbfs)

    def reset_preview(self) -> None:
        self.preview = LatestSlot()

    def forget(self, m: Modality, withdrawn_at: float | None = None) -> None:
        """Remove ``m`` from fusion (its run stopped), with every prediction made from
        its capture (a text prediction of heard words, for the microphone) and the
        smoothing state they shaped; drop what is pending from it. The next estimate,
        produced at once, no longer includes it; listeners' ``on_withdrawn(m, t)`` is
        called first (``withdrawn_at``: when the capture was withdrawn)."""
        with self._fuser_lock:
            self._fuser.remove(m)
            for gone in self._fuser.withdraw(m):
                self._fused_last.pop(gone, None)
            self._fused_last.pop(m, None)
        with self._cond:
            self._pending_outputs = [
                (run, out)
                for run, out in self._pending_outputs
                if run.modality is not m and origin_of(out) is not m
            ]
            self._pending_heard = [e for e in self._pending_heard if origin_of(e) is not m]
            self._pending_explanations = {
                k: (e, p)
                for k, (e, p) in self._pending_explanations.items()
                if k is not m and (p is None or p.origin is not m)
            }
            if withdrawn_at is not None:
                self._pending_withdrawn.append((m, withdrawn_at))
        if m is Modality.VOICE:
            self._level = None
        if m is Modality.FACE:
            self.preview.clear()
        self.wake(force_estimate=True)

    def barrier(self, timeout: float = 1.0) -> bool:
        """Wait until no listener call admitted before now is still running (False:
        one still ran after ``timeout``). Never call it holding a lock a listener may
        take."""
        if not self._delivery.acquire(timeout=timeout):
            return False
        self._delivery.release()
        return True

    def _admits(self, thing: object) -> bool:
        return self.withdrawals.admits_thing(thing)

    # -- the fusion thread --------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """The fusion thread's loop, until ``stop`` is set (the statuses still pending
        then are delivered first)."""
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
                    or self._pending_explanations
                    or self._pending_heard
                    or self._pending_withdrawn
                    or self._force_estimate
                ):
                    now = clock.now()
                    wait = next_tick - now
                    if len(self.preview):
                        wait = min(wait, last_frame_sent + frame_period - now)
                    if self._level is not None and self._level is not level_sent:
                        wait = min(wait, last_level_sent + level_period - now)
                    if wait <= 0:
                        break
                    self._cond.wait(min(wait, frame_period))
                outputs, self._pending_outputs = self._pending_outputs, []
                statuses, self._pending_status = self._pending_status, {}
                explained, self._pending_explanations = self._pending_explanations, {}
                heard, self._pending_heard = self._pending_heard, []
                withdrawn, self._pending_withdrawn = self._pending_withdrawn, []
                force, self._force_estimate = self._force_estimate, False
            for status in statuses.values():
                self._emit("on_status", status)
            if stop.is_set():
                with self._cond:
                    statuses, self._pending_status = self._pending_status, {}
                for status in statuses.values():
                    self._emit("on_status", status)
                return
            if self._closing():  # stop() is under way: nothing more to fuse or show
                with self._cond:
                    self._cond.wait(0.05)
                continue
            now = clock.now()
            tick = now >= next_tick
            if tick:
                # A steady schedule; after a stall, start afresh rather than catch up.
                next_tick = next_tick + period if next_tick + period > now else now + period
            with self._delivery:  # admission checks and the calls they admit
                for m, at in withdrawn:
                    self._emit("on_withdrawn", m, at)
                estimate = self._fuse(outputs, force or tick)
                for entry in heard:
                    if self._admits(entry):
                        self._emit("on_heard", entry)
                for _, output in outputs:
                    if self._admits(output):
                        self._emit("on_output", output)
                if estimate is not None and self._admits(estimate):
                    self._emit("on_estimate", estimate)
                for explanation, provenance in explained.values():
                    if self.withdrawals.admits(provenance):
                        self._emit("on_explanation", explanation)
                now = clock.now()
                if now - last_frame_sent >= frame_period:
                    frame = self.preview.take(timeout=0)
                    if frame is not None and self._admits(frame):
                        last_frame_sent = now
                        self._emit("on_frame", frame)
                level = self._level
                if (
                    level is not None
                    and level is not level_sent
                    and now - last_level_sent >= level_period
                ):
                    level_sent, last_level_sent = level, now
                    if self.withdrawals.admits(Provenance(Modality.VOICE, level[0])):
                        self._emit("on_audio_level", level[0], level[1], self._speech())
            if now >= next_stall_check:
                next_stall_check = now + 1.0
                self._refresh_statuses()

    def _captured(self, prediction: ModalityPrediction) -> float:
        """When the newest input behind a prediction was captured: the end of a voice
        window (``t`` is its start), the capture time of a frame or entry otherwise."""
        if prediction.modality is not Modality.VOICE:
            return prediction.t
        end = prediction.detail.get("window_end")
        if isinstance(end, (int, float)):
            return float(end)
        return prediction.t + self.voice_window_s

    def _fuse(self, outputs: list[tuple[Run, EncoderOutput]], due: bool) -> FusedEstimate | None:
        """Feed new predictions to the fuser; an estimate when due or when any came."""
        fresh = False
        current = self._current_runs()
        with self._fuser_lock:
            for run, output in outputs:
                if run.stop.is_set() or current.get(run.modality) is not run:
                    continue  # from a run stopped meanwhile: it must not come back
                if not self._admits(output):
                    continue  # its capture was withdrawn while it was on its way
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
                recorder = self._recorder(m)
                if recorder is None:
                    continue
                age = estimate.t - self._captured(prediction)
                recorder.record_age(age)
                if self._fused_last.get(m) is not prediction:
                    self._fused_last[m] = prediction
                    recorder.record_latency(age)
        self._latest = estimate
        return estimate
