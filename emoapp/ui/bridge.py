"""The one door between the live session's worker threads and the Qt UI thread.

:class:`SessionBridge` implements the session's listener protocol. Its ``on_*`` methods
are called from worker threads: they only put the message in a bounded mailbox and, if
the UI has not already been told, post one queued wake-up to the UI thread. The UI
thread then drains the mailboxes and re-emits each message as a Qt signal that widgets
connect to. So:

- a worker never blocks on the UI and never touches a widget;
- the Qt event queue holds at most one pending wake-up, however fast workers produce;
- preview frames and audio levels are latest-wins (the UI draws only the newest, stale
  ones are dropped and counted); estimates, outputs and statuses keep their order in
  bounded queues (the oldest are dropped, and counted, if the UI falls behind);
- a withdrawn capture (``on_withdrawn``) empties every mailbox of what came from it at
  once, on the session's thread, and whatever still arrives from before the withdrawal
  is dropped when the UI thread drains (:mod:`emoapp.core.provenance`); ``withdrawn``
  is emitted first, so views forget what they show from it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, Qt, Signal, Slot

from emoapp.core.messages import EncoderOutput, FusedEstimate, Modality, VideoFrame
from emoapp.core.provenance import Provenance, Withdrawals

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AudioLevel:
    """The microphone level the session reported at ``t``."""

    t: float
    rms_dbfs: float
    speech: bool | None


class LatestSlot(Generic[T]):
    """Holds only the newest item; putting over an untaken item drops (and counts) it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: T | None = None
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._lock:
            if self._item is not None:
                self.dropped += 1
            self._item = item

    def take(self) -> T | None:
        with self._lock:
            item, self._item = self._item, None
            return item

    def discard_if(self, unwanted: Callable[[T], bool]) -> None:
        with self._lock:
            if self._item is not None and unwanted(self._item):
                self._item = None


class BoundedMailbox(Generic[T]):
    """A first-in first-out queue that drops (and counts) its oldest item when full."""

    def __init__(self, capacity: int) -> None:
        self._lock = threading.Lock()
        self._items: deque[T] = deque()
        self.capacity = capacity
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._lock:
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)

    def take_all(self) -> list[T]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items

    def discard_if(self, unwanted: Callable[[T], bool]) -> None:
        with self._lock:
            self._items = deque(item for item in self._items if not unwanted(item))


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """How many messages the UI never saw because newer ones replaced them."""

    frames_dropped: int
    estimates_dropped: int
    outputs_dropped: int
    wakeups: int


class SessionBridge(QObject):
    """Session listener (any thread) -> Qt signals (UI thread)."""

    estimate_received = Signal(object)  # FusedEstimate
    output_received = Signal(object)  # ModalityPrediction | NoPrediction
    frame_received = Signal(object)  # VideoFrame
    audio_level_received = Signal(object)  # AudioLevel
    status_received = Signal(object)  # ModalityStatus
    explanation_received = Signal(object)  # Explanation (emoapp.core.explanation)
    heard_received = Signal(object)  # TextEntry heard by the speech recogniser
    withdrawn = Signal(object, float)  # Modality (a capture) withdrawn, at t (session clock)

    _wake = Signal()

    def __init__(self, parent: QObject | None = None, capacity: int = 256) -> None:
        super().__init__(parent)
        self._estimates: BoundedMailbox[FusedEstimate] = BoundedMailbox(capacity)
        self._outputs: BoundedMailbox[EncoderOutput] = BoundedMailbox(capacity)
        self._heard: BoundedMailbox[Any] = BoundedMailbox(capacity)
        self._frame: LatestSlot[VideoFrame] = LatestSlot()
        self._level: LatestSlot[AudioLevel] = LatestSlot()
        self._status_lock = threading.Lock()
        self._statuses: dict[Modality, Any] = {}
        self._explanations: dict[Modality, Any] = {}  # the newest per modality
        self._withdrawals = Withdrawals()
        self._withdrawn: list[tuple[Modality, float]] = []
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._wakeups = 0
        self._closed = False
        # Queued even when emitted from the UI thread itself: draining is always a
        # separate, later event, so a listener call never runs widget code re-entrantly.
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)

    # -- SessionListener: called from worker threads; must return quickly -------------

    def on_estimate(self, estimate: FusedEstimate) -> None:
        self._estimates.put(estimate)
        self._notify()

    def on_output(self, output: EncoderOutput) -> None:
        self._outputs.put(output)
        self._notify()

    def on_heard(self, entry: Any) -> None:
        self._heard.put(entry)
        self._notify()

    def on_frame(self, frame: VideoFrame) -> None:
        self._frame.put(frame)
        self._notify()

    def on_audio_level(self, t: float, rms_dbfs: float, speech: bool | None) -> None:
        self._level.put(AudioLevel(t, rms_dbfs, speech))
        self._notify()

    def on_status(self, status: Any) -> None:
        with self._status_lock:
            self._statuses[status.modality] = status
        self._notify()

    def on_explanation(self, explanation: Any) -> None:
        with self._status_lock:
            self._explanations[explanation.modality] = explanation
        self._notify()

    def on_withdrawn(self, origin: Modality, t: float) -> None:
        self._withdrawals.withdraw(origin, t)
        gone = self._gone
        for box in (self._estimates, self._outputs, self._heard, self._frame):
            box.discard_if(gone)
        if origin is Modality.VOICE:
            self._level.discard_if(lambda level: level.t <= t)
        with self._status_lock:
            self._explanations = {
                m: e
                for m, e in self._explanations.items()
                # a text explanation may be of heard words: when in doubt, it goes
                if not gone(e) and not (origin is Modality.VOICE and m is Modality.TEXT)
            }
            self._withdrawn.append((origin, t))
        self._notify()

    def _gone(self, thing: Any) -> bool:
        return not self._withdrawals.admits_thing(thing)

    # -- plumbing ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop delivering: later listener calls are dropped without waking the UI."""
        with self._wake_lock:
            self._closed = True

    def stats(self) -> BridgeStats:
        return BridgeStats(
            frames_dropped=self._frame.dropped,
            estimates_dropped=self._estimates.dropped,
            outputs_dropped=self._outputs.dropped,
            wakeups=self._wakeups,
        )

    def _notify(self) -> None:
        with self._wake_lock:
            if self._wake_pending or self._closed:
                return
            self._wake_pending = True
        self._wake.emit()

    @Slot()
    def _drain(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
            if self._closed:
                return
            self._wakeups += 1
        # Statuses first, so a widget sees "failed" before any output that follows it;
        # then outputs before estimates (an estimate is built from outputs).
        with self._status_lock:
            statuses = list(self._statuses.values())
            self._statuses.clear()
            withdrawn, self._withdrawn = self._withdrawn, []
        for origin, at in withdrawn:
            self.withdrawn.emit(origin, at)
        for status in statuses:
            self.status_received.emit(status)
        gone = self._gone
        for entry in self._heard.take_all():
            if not gone(entry):
                self.heard_received.emit(entry)
        for output in self._outputs.take_all():
            if not gone(output):
                self.output_received.emit(output)
        with self._status_lock:
            explanations = list(self._explanations.values())
            self._explanations.clear()
        for explanation in explanations:
            if not gone(explanation):
                self.explanation_received.emit(explanation)
        for estimate in self._estimates.take_all():
            if not gone(estimate):
                self.estimate_received.emit(estimate)
        level = self._level.take()
        if level is not None and self._withdrawals.admits(Provenance(Modality.VOICE, level.t)):
            self.audio_level_received.emit(level)
        frame = self._frame.take()
        if frame is not None and not gone(frame):
            self.frame_received.emit(frame)
