"""A camera and a microphone that record every time they are opened and closed.

They stand in for the device layer *under* the real :class:`CameraSource` and
:class:`MicrophoneSource` (OpenCV's ``VideoCapture`` and sounddevice's ``InputStream``),
so a test goes through the real sources, the real consent gate and the real session:
``install_fake_devices(monkeypatch)`` patches ``import_cv2`` / ``import_sounddevice`` in
the capture modules and returns the recorders.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from emoapp.core import clock


@dataclass
class DeviceLog:
    """What happened to one kind of device."""

    opened: list[Any] = field(default_factory=list)
    """Each open, by device index or name, in order."""
    closed_at: list[float] = field(default_factory=list)
    """Session-clock times at which an open device was released."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def open_now(self) -> int:
        with self.lock:
            return len(self.opened) - len(self.closed_at)


class FakeCapture:
    """``cv2.VideoCapture`` for a camera that exists: ``frame`` (BGR; grey by default)
    over and over at ``fps``."""

    def __init__(
        self, log: DeviceLog, index: int, frame: np.ndarray | None = None, fps: float = 30.0
    ) -> None:
        self.log = log
        self.index = index
        self.fps = fps
        self.frame = frame if frame is not None else np.full((48, 64, 3), 128, np.uint8)
        self.released = False

    def isOpened(self) -> bool:
        return not self.released

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        import cv2

        height, width = self.frame.shape[:2]
        return {
            cv2.CAP_PROP_FRAME_WIDTH: float(width),
            cv2.CAP_PROP_FRAME_HEIGHT: float(height),
        }.get(prop, self.fps if prop == cv2.CAP_PROP_FPS else 0.0)

    def getBackendName(self) -> str:
        return "fake"

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.released:
            return False, None
        time.sleep(1.0 / self.fps)
        return True, self.frame.copy()

    def release(self) -> None:
        if not self.released:
            self.released = True
            with self.log.lock:
                self.log.closed_at.append(clock.now())


class RecordingCV2:
    """OpenCV, with ``VideoCapture`` replaced by :class:`FakeCapture`."""

    def __init__(self, frame: np.ndarray | None = None) -> None:
        import cv2

        self._cv2 = cv2
        self.frame = frame
        self.log = DeviceLog()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cv2, name)

    def VideoCapture(self, index: int) -> FakeCapture:
        with self.log.lock:
            self.log.opened.append(index)
        return FakeCapture(self.log, index, self.frame)


class FakeInputStream:
    """``sounddevice.InputStream``: a quiet 220 Hz tone in blocks, from its own thread,
    as PortAudio calls back."""

    def __init__(self, log: DeviceLog, **kwargs: Any) -> None:
        self.log = log
        self.samplerate = int(kwargs["samplerate"])
        self.blocksize = int(kwargs["blocksize"])
        self.callback = kwargs["callback"]
        self.finished_callback = kwargs.get("finished_callback")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.closed = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-portaudio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        period = self.blocksize / self.samplerate
        while not self._stop.wait(period):
            t = (np.arange(self.blocksize) + n) / self.samplerate
            block = (0.1 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)[:, None]
            n += self.blocksize
            self.callback(block, self.blocksize, None, None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self.finished_callback is not None:
            self.finished_callback()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with self.log.lock:
                self.log.closed_at.append(clock.now())


class RecordingSoundDevice:
    """sounddevice, with ``InputStream`` replaced by :class:`FakeInputStream`."""

    class PortAudioError(Exception):
        pass

    def __init__(self) -> None:
        self.log = DeviceLog()
        self.default = SimpleNamespace(device=(0, 0))

    def InputStream(self, **kwargs: Any) -> FakeInputStream:
        with self.log.lock:
            self.log.opened.append(kwargs.get("device"))
        return FakeInputStream(self.log, **kwargs)

    def query_devices(self) -> list[dict[str, Any]]:
        return [{"name": "fake mic", "max_input_channels": 1, "default_samplerate": 16000.0}]

    def query_hostapis(self) -> list[dict[str, Any]]:
        return [{"name": "fake"}]


@dataclass
class FakeDevices:
    camera: RecordingCV2
    microphone: RecordingSoundDevice


def install_fake_devices(monkeypatch: Any, frame: np.ndarray | None = None) -> FakeDevices:
    """Put the recording camera (showing ``frame``) and microphone under the real
    capture sources."""
    cv2 = RecordingCV2(frame)
    sd = RecordingSoundDevice()
    monkeypatch.setattr("emoapp.capture.camera.import_cv2", lambda: cv2)
    monkeypatch.setattr("emoapp.capture.microphone.import_sounddevice", lambda: sd)
    return FakeDevices(cv2, sd)


def first_frame(video: Any) -> np.ndarray:
    """The first frame of a video file, as OpenCV reads it (BGR)."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok, f"cannot read {video}"
    return frame
