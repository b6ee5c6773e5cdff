"""The one protocol every live source follows, and the helpers the sources share.

A source pushes what it captures: :meth:`Source.start` hands it a callback, and the
source's own thread (or the device driver's callback thread, e.g. PortAudio's) calls it
with each :class:`~emoapp.core.messages.VideoFrame`, :class:`AudioChunk` or
:class:`TextEntry`. The callback only puts the item into a latest-wins slot or a bounded
ring buffer (see :mod:`emoapp.live.slots`); it never touches a model or the UI, so a
source is never slowed down by what happens downstream.

Lifecycle: ``open()`` acquires the device or file (nothing is captured before it
returns), ``start(callback, on_error, on_end)``
begins delivery, ``close()`` stops delivery and releases everything; ``close()`` is
idempotent and may be called from any thread except the source's own.

Failures are data, not crashes: ``open()`` raises :class:`SourceError` (or
:class:`PermanentSourceError` when retrying cannot help, e.g. a missing file); a failure
during delivery is handed to ``on_error`` and delivery stops. A file replay calls
``on_end`` once its file is played to the end. The live session retries opening a failed
device with backoff, so a camera that comes back brings its modality back.

**Consent by construction.** A real camera or microphone (``is_device``) carries its
consent check, ``source.consent`` (the :class:`~emoapp.privacy.consent.ConsentGate` of the
run, given when the source is built or handed over by ``gate.open(source)``), and its
``open()`` asks it first: without a check, or without a grant for its modality, it raises
:class:`~emoapp.core.errors.ConsentRequiredError` and touches no device, whoever called
it. Probing cameras (:func:`emoapp.capture.camera.list_cameras`) asks the same way.
Replayed files need none.

Live sources stamp items with :func:`emoapp.core.clock.now`; replays re-stamp media
time onto the same clock as they pace it out.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from emoapp.core import clock
from emoapp.core.errors import ConsentRequiredError, EmoappError, SourceError
from emoapp.core.messages import AudioChunk, Modality, TextEntry, VideoFrame

log = logging.getLogger(__name__)

SourceItem = VideoFrame | AudioChunk | TextEntry
ItemCallback = Callable[[SourceItem], None]
ErrorCallback = Callable[[SourceError], None]
EndCallback = Callable[[str], None]
"""Called with a one-line note (empty, or e.g. why a truncated file ended early)."""


_DEVICE_NAME = {Modality.FACE: "camera", Modality.VOICE: "microphone"}
_ALLOW_FLAG = {Modality.FACE: "--allow-camera", Modality.VOICE: "--allow-mic"}


class ConsentCheck(Protocol):
    """What a device source asks before it opens: the consent gate
    (:class:`emoapp.privacy.consent.ConsentGate`), which raises ConsentRequiredError
    unless the modality is granted (saved in the consent store, or by a flag for this
    run)."""

    def require(self, modality: Modality, source: object) -> None: ...


def require_consent(consent: ConsentCheck | None, modality: Modality, source: object) -> None:
    """Raise ConsentRequiredError unless ``consent`` grants ``modality`` now. No check
    at all is a refusal: a device never opens by default."""
    if consent is None:
        device = _DEVICE_NAME.get(modality, modality.value)
        flag = _ALLOW_FLAG.get(modality)
        raise ConsentRequiredError(
            modality,
            f"{device} not opened: no consent given; grant it in the window"
            + (f" or pass {flag}" if flag else ""),
        )
    consent.require(modality, source)


class PermanentSourceError(SourceError):
    """A source failure that retrying cannot fix (a missing or undecodable file, a missing
    package): the session marks the modality failed and does not retry."""


@runtime_checkable
class Source(Protocol):
    """A camera, microphone, text feed or file replay that pushes timestamped items."""

    name: str
    """Shown to the person: ``camera 0``, ``microphone: USB Audio``, ``clip.mp4``."""
    modality: Modality
    is_device: bool
    """True for real capture devices (camera, microphone), False for replayed files."""

    def open(self) -> None:
        """Acquire the device or file. Raises SourceError (PermanentSourceError when
        retrying cannot help); a device without a consent grant raises
        ConsentRequiredError and stays shut."""

    def start(
        self,
        callback: ItemCallback,
        on_error: ErrorCallback | None = None,
        on_end: EndCallback | None = None,
    ) -> None:
        """Begin delivering items to ``callback`` (after ``open``)."""

    def close(self) -> None:
        """Stop delivering and release the device or file (idempotent)."""


def one_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class ThreadedSource(ABC):
    """Base of the sources that deliver from a thread of their own (camera, replays).

    Subclasses implement :meth:`open`, :meth:`run` (the delivery loop, which returns at
    the end of its input or when ``stop`` is set) and :meth:`release`.
    """

    name: str
    modality: Modality
    is_device: bool = False
    join_timeout_s: float = 2.0

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._opened = False
        self._release_by_thread: threading.Thread | None = None

    # -- what subclasses write -------------------------------------------------------

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def run(self, stop: threading.Event, emit: ItemCallback) -> str:
        """Deliver items until the input ends (return a note, usually "") or ``stop`` is
        set. Raise SourceError (or MediaError) on failure."""

    @abstractmethod
    def release(self) -> None:
        """Free what ``open`` acquired (called once delivery has stopped)."""

    # -- lifecycle -------------------------------------------------------------------

    def _mark_open(self) -> None:
        with self._lock:
            self._opened = True

    @property
    def is_open(self) -> bool:
        return self._opened

    def start(
        self,
        callback: ItemCallback,
        on_error: ErrorCallback | None = None,
        on_end: EndCallback | None = None,
    ) -> None:
        with self._lock:
            if not self._opened:
                raise SourceError(f"{self.name}: start() before open()")
            if self._thread is not None and self._thread.is_alive():
                raise SourceError(f"{self.name}: already started")
            # A fresh event per start: a thread that outlived an earlier close() stays stopped.
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._deliver,
                args=(self._stop, callback, on_error, on_end),
                name=f"emoapp-source-{self.modality.value}",
                daemon=True,
            )
            self._thread.start()

    def _deliver(
        self,
        stop: threading.Event,
        callback: ItemCallback,
        on_error: ErrorCallback | None,
        on_end: EndCallback | None,
    ) -> None:
        try:
            note = self.run(stop, callback)
        except SourceError as exc:
            error: SourceError | None = exc
        except EmoappError as exc:  # MediaError and the like: carried on as a SourceError
            error = SourceError(f"{self.name}: {exc}")
        except Exception as exc:  # a device thread must report any failure, never die silently
            log.exception("%s: delivery failed", self.name)
            error = SourceError(f"{self.name}: {type(exc).__name__}: {one_line(exc)}")
        else:
            error = None
        finally:
            with self._lock:
                release_here = self._release_by_thread is threading.current_thread()
                if release_here:
                    self._release_by_thread = None
            if release_here:
                self.release()
        if stop.is_set():
            return
        if error is not None:
            if on_error is not None:
                on_error(error)
            else:
                log.warning("%s", error)
        elif on_end is not None:
            on_end(note)

    def close(self) -> None:
        with self._lock:
            self._stop.set()
            thread, self._thread = self._thread, None
            was_open, self._opened = self._opened, False
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_timeout_s)
            if thread.is_alive():
                # Releasing a device under a thread still reading it is unsafe (OpenCV):
                # the thread releases it itself when its read returns.
                log.warning(
                    "%s: delivery thread did not stop within %.1f s", self.name, self.join_timeout_s
                )
                with self._lock:
                    if was_open and thread.is_alive():
                        self._release_by_thread = thread
                        return
        if was_open:
            self.release()


class Pacer:
    """Plays media time out at real-time pace (times ``speed``) on the session clock."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self.t0 = clock.now()

    def clock_time(self, media_t: float) -> float:
        """When media time ``media_t`` is (was) due on the session clock."""
        return self.t0 + media_t / self.speed

    def wait_until(self, media_t: float, stop: threading.Event) -> bool:
        """Sleep until ``media_t`` is due; False when ``stop`` was set meanwhile."""
        delay = self.clock_time(media_t) - clock.now()
        if delay > 0:
            return not stop.wait(delay)
        return not stop.is_set()
