"""The microphone as a source: a ``sounddevice`` input stream, 16 kHz mono float32.

PortAudio calls :meth:`MicrophoneSource._on_block` on its own audio thread with each block
(50 ms by default); the block is copied, stamped on a steady sample clock anchored to
:func:`emoapp.core.clock.now` (re-anchored when it drifts), and handed to the callback.
The stream finishing on its own (device unplugged, driver error) is reported through
``on_error`` so the live session can retry the device.

Consent: a microphone opens only with a consent grant for the voice modality
(``MicrophoneSource(..., consent=gate)``, see :mod:`emoapp.capture.base`); without one
``open()`` raises ConsentRequiredError. Listing input devices opens none, so needs none.

``sounddevice`` is imported only when a microphone is opened or listed. Without the
package the error says what to install; without the PortAudio library (``sounddevice``
cannot load it) opening fails with a :class:`SourceError` that says so.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from emoapp.capture.base import (
    ConsentCheck,
    EndCallback,
    ErrorCallback,
    ItemCallback,
    PermanentSourceError,
    one_line,
    require_consent,
)
from emoapp.core import clock
from emoapp.core.errors import MissingDependencyError, SourceError
from emoapp.core.messages import AudioChunk, Modality

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
_REANCHOR_S = 0.05
"""Re-anchor the sample clock when it drifts this far from the session clock."""


def import_sounddevice() -> Any:
    """The ``sounddevice`` module, or a one-line error saying what is missing."""
    try:
        import sounddevice
    except ImportError as exc:
        raise MissingDependencyError("sounddevice", "the microphone") from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise SourceError(
            "the microphone needs the PortAudio library, which could not be loaded "
            f"({one_line(exc)}); install it (e.g. apt install libportaudio2)"
        ) from exc
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    """An audio input device, as :func:`list_input_devices` reports it."""

    index: int
    name: str
    channels: int
    default_sample_rate: float
    is_default: bool
    host_api: str = ""


def list_input_devices() -> list[InputDevice]:
    """Audio devices with at least one input channel."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        default = sd.default.device[0] if sd.default.device is not None else None
        host_apis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise SourceError(f"cannot list audio devices: {one_line(exc)}") from exc
    found: list[InputDevice] = []
    for index, dev in enumerate(devices):
        if int(dev.get("max_input_channels", 0)) <= 0:
            continue
        api = dev.get("hostapi")
        api_name = host_apis[api]["name"] if isinstance(api, int) and api < len(host_apis) else ""
        found.append(
            InputDevice(
                index=index,
                name=str(dev.get("name", f"device {index}")),
                channels=int(dev["max_input_channels"]),
                default_sample_rate=float(dev.get("default_samplerate", 0.0)),
                is_default=index == default,
                host_api=str(api_name),
            )
        )
    return found


class MicrophoneSource:
    """Mono float32 audio from input ``device`` (index, name, or None for the default)."""

    modality = Modality.VOICE
    is_device = True

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int = SAMPLE_RATE,
        block_s: float = 0.05,
        name: str | None = None,
        *,
        consent: ConsentCheck | None = None,
    ) -> None:
        """``consent``: the check asked before every open (the run's consent gate);
        without one the microphone never opens."""
        if sample_rate <= 0 or block_s <= 0:
            raise ValueError("sample_rate and block_s must be positive")
        self.device = device
        self.sample_rate = int(sample_rate)
        self.block_s = float(block_s)
        self.name = name or ("microphone" if device is None else f"microphone {device}")
        self.overflows = 0
        """Blocks PortAudio reported as overflowed (samples lost before we saw them)."""
        self.consent = consent
        self._stream: Any = None
        self._lock = threading.Lock()
        self._callback: ItemCallback | None = None
        self._on_error: ErrorCallback | None = None
        self._closing = False
        self._next_t: float | None = None

    def open(self) -> None:
        """Open the input stream (the one place a microphone is opened), after asking
        ``consent``: ConsentRequiredError without a grant."""
        require_consent(self.consent, self.modality, self)
        try:
            sd = import_sounddevice()
        except MissingDependencyError as exc:
            raise PermanentSourceError(str(exc)) from exc
        with self._lock:
            if self._stream is not None:
                return
            self._closing = False
            self._next_t = None
            try:
                stream = sd.InputStream(
                    device=self.device,
                    channels=1,
                    samplerate=self.sample_rate,
                    dtype="float32",
                    blocksize=max(1, round(self.block_s * self.sample_rate)),
                    callback=self._on_block,
                    finished_callback=self._on_finished,
                )
            except (sd.PortAudioError, ValueError) as exc:
                which = "default input device" if self.device is None else repr(self.device)
                raise SourceError(
                    f"microphone ({which}) cannot be opened: {one_line(exc)}"
                ) from exc
            self._stream = stream

    def start(
        self,
        callback: ItemCallback,
        on_error: ErrorCallback | None = None,
        on_end: EndCallback | None = None,
    ) -> None:
        sd = import_sounddevice()
        with self._lock:
            stream = self._stream
            if stream is None:
                raise SourceError(f"{self.name}: start() before open()")
            self._callback = callback
            self._on_error = on_error
        try:
            stream.start()
        except sd.PortAudioError as exc:
            raise SourceError(f"{self.name} cannot start: {one_line(exc)}") from exc

    def _stamp(self, frames: int) -> float:
        """Capture time of the block's first sample, on a steady sample clock."""
        duration = frames / self.sample_rate
        measured = clock.now() - duration
        t = self._next_t
        if t is None or abs(t - measured) > _REANCHOR_S:
            t = measured
        self._next_t = t + duration
        return t

    def _on_block(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's audio thread: copy, stamp, hand on. Nothing slow happens here."""
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        callback = self._callback
        if callback is None or self._closing:
            return
        samples = indata[:, 0].copy() if indata.ndim == 2 else indata.copy()
        chunk = AudioChunk(self._stamp(frames), samples, self.sample_rate, self.name)
        try:
            callback(chunk)
        except Exception as exc:  # on PortAudio's thread it would abort the stream silently
            log.exception("%s: audio callback failed", self.name)
            on_error = self._on_error
            if on_error is not None:
                on_error(SourceError(f"{self.name}: {type(exc).__name__}: {one_line(exc)}"))

    def _on_finished(self) -> None:
        """The stream stopped; unless we closed it, the device is gone or failed."""
        if self._closing:
            return
        on_error = self._on_error
        if on_error is not None:
            on_error(SourceError(f"{self.name} stopped (device unplugged or failed)"))

    def close(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
            self._closing = True
            self._callback = None
        if stream is None:
            return
        try:
            sd = import_sounddevice()
        except (MissingDependencyError, SourceError):
            return
        try:
            stream.stop()
        except sd.PortAudioError as exc:
            log.warning("%s: stopping the stream failed: %s", self.name, one_line(exc))
        try:
            stream.close()
        except sd.PortAudioError as exc:
            log.warning("%s: closing the stream failed: %s", self.name, one_line(exc))
