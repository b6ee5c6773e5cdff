"""The webcam as a source: OpenCV ``VideoCapture`` read on a thread of its own.

The person chooses the device index, and may ask for a resolution and frame rate (the
driver gives the nearest it can; :attr:`CameraSource.actual` says what it gave). Frames
are converted to RGB and stamped with :func:`emoapp.core.clock.now` as they are read.
A camera that cannot be opened raises ``SourceError("no camera at index N")``; one that
stops delivering frames mid-stream (unplugged, taken by another program) is reported
through ``on_error``, and the live session retries it.

Consent: a camera opens, and cameras are probed, only with a consent grant for the face
modality (see :mod:`emoapp.capture.base`): ``CameraSource(..., consent=gate)`` and
``list_cameras(consent=gate)``; without one they raise ConsentRequiredError.

OpenCV is imported when a camera is opened or listed, never at import time, and its
warnings about indices with no camera are silenced while probing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from emoapp.capture.base import (
    ConsentCheck,
    ItemCallback,
    PermanentSourceError,
    ThreadedSource,
    require_consent,
)
from emoapp.core import clock
from emoapp.core.errors import MissingDependencyError, SourceError
from emoapp.core.messages import Modality, VideoFrame

MAX_PROBED_INDEX = 10
""":func:`list_cameras` probes indices 0 to 9."""


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError("opencv-python-headless", "the camera") from exc
    return cv2


@contextlib.contextmanager
def quiet_opencv(cv2: Any) -> Iterator[None]:
    """Silence OpenCV's log (e.g. "can't open camera by index") inside the block."""
    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_mod is None:
        yield
        return
    previous = logging_mod.getLogLevel()
    logging_mod.setLogLevel(logging_mod.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging_mod.setLogLevel(previous)


@dataclass(frozen=True)
class CameraSettings:
    """What a camera delivers (as reported by the driver)."""

    width: int
    height: int
    fps: float | None


@dataclass(frozen=True)
class CameraInfo:
    """A camera found by :func:`list_cameras`."""

    index: int
    name: str
    settings: CameraSettings
    backend: str


def _settings(cap: Any, cv2: Any) -> CameraSettings:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return CameraSettings(
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        fps=fps if fps > 0 else None,
    )


def _backend(cap: Any) -> str:
    try:
        return str(cap.getBackendName())
    except Exception:  # noqa: BLE001 - cv2.error when the backend has no name; cosmetic only
        return ""


@dataclass(frozen=True)
class CameraProbe:
    """What :func:`list_cameras` shows the consent check: it opens real cameras."""

    name: str = "camera probe"
    modality: Modality = Modality.FACE
    is_device: bool = True


def list_cameras(
    *, consent: ConsentCheck | None, max_index: int = MAX_PROBED_INDEX
) -> list[CameraInfo]:
    """The cameras that open, probing indices ``0 .. max_index - 1`` quietly. Probing
    opens each camera briefly, so it needs camera consent (ConsentRequiredError)."""
    require_consent(consent, Modality.FACE, CameraProbe())
    cv2 = import_cv2()
    found: list[CameraInfo] = []
    with quiet_opencv(cv2):
        for index in range(max_index):
            cap = cv2.VideoCapture(index)
            try:
                if cap.isOpened():
                    backend = _backend(cap)
                    found.append(CameraInfo(index, f"camera {index}", _settings(cap, cv2), backend))
            finally:
                cap.release()
    return found


class CameraSource(ThreadedSource):
    """Frames from camera ``index``, optionally at a requested size and frame rate."""

    modality = Modality.FACE
    is_device = True

    lost_after_s: float = 2.0
    """No frame for this long (while reads fail) means the camera is gone."""

    def __init__(
        self,
        index: int = 0,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        name: str | None = None,
        *,
        consent: ConsentCheck | None = None,
    ) -> None:
        """``consent``: the check asked before every open (the run's consent gate);
        without one the camera never opens."""
        super().__init__()
        if index < 0:
            raise ValueError("camera index must not be negative")
        if (width is not None and width <= 0) or (height is not None and height <= 0):
            raise ValueError("camera width and height must be positive")
        if fps is not None and fps <= 0:
            raise ValueError("camera fps must be positive")
        self.index = index
        self.width = width
        self.height = height
        self.fps = fps
        self.name = name or f"camera {index}"
        self.actual: CameraSettings | None = None
        self.consent = consent
        self._cap: Any = None

    def open(self) -> None:
        """Open the device (the one place a camera is opened), after asking ``consent``:
        ConsentRequiredError without a grant, SourceError if absent."""
        require_consent(self.consent, self.modality, self)
        try:
            cv2 = import_cv2()
        except MissingDependencyError as exc:
            raise PermanentSourceError(str(exc)) from exc
        with quiet_opencv(cv2):
            cap = cv2.VideoCapture(self.index)
            if not cap.isOpened():
                cap.release()
                raise SourceError(f"no camera at index {self.index}")
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.width))
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.height))
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, float(self.fps))
            self.actual = _settings(cap, cv2)
        self._cap = cap
        self._mark_open()

    def run(self, stop: threading.Event, emit: ItemCallback) -> str:
        cv2 = import_cv2()
        cap = self._cap
        if cap is None:
            raise SourceError(f"{self.name}: not open")
        index = 0
        last_frame = clock.now()
        while not stop.is_set():
            ok, bgr = cap.read()
            if not ok or bgr is None:
                if clock.now() - last_frame > self.lost_after_s:
                    raise SourceError(
                        f"{self.name} stopped delivering frames (unplugged or in use?)"
                    )
                time.sleep(0.02)
                continue
            t = clock.now()
            last_frame = t
            if bgr.ndim == 2:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
            else:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            emit(VideoFrame(t, rgb, index, self.name))
            index += 1
        return ""

    def release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
