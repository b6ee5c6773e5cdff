"""Replay twins of the live sources: a video, audio or text file played at real-time pace.

:class:`VideoReplaySource` stands in for a camera, :class:`AudioReplaySource` for a
microphone and :class:`TextReplaySource` for a person typing. They go through exactly the
same callback path as the devices, so the whole live pipeline runs (and is tested) with
no hardware. Decoding is :mod:`emoapp.capture.media` (PyAV); each frame or chunk is held
back until its media time is due on the session clock (divided by ``speed``) and
re-stamped with that clock time, as a device would stamp it.

Audio is delivered in short blocks (``block_s``, 50 ms by default, like a sound card) and
stamped on a steady sample clock, so consecutive chunks line up exactly even when the
delivering thread is late. At the end of the file the source calls ``on_end`` (or, with
``loop``, starts again); a file cut short ends with a note saying so.
"""

from __future__ import annotations

import threading
from pathlib import Path

from emoapp.capture.base import ItemCallback, Pacer, PermanentSourceError, ThreadedSource
from emoapp.core.errors import MediaError
from emoapp.core.messages import AudioChunk, Modality, TextEntry, VideoFrame


def _check_speed(speed: float) -> float:
    if not speed > 0:
        raise ValueError(f"replay speed must be positive, not {speed}")
    return float(speed)


class VideoReplaySource(ThreadedSource):
    """A video file played as a camera: RGB frames at the file's frame rate (or ``fps``)."""

    modality = Modality.FACE
    is_device = False

    def __init__(
        self,
        path: str | Path,
        speed: float = 1.0,
        loop: bool = False,
        fps: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.speed = _check_speed(speed)
        self.loop = loop
        self.fps = fps
        self.name = name or self.path.name
        self.duration: float | None = None

    def open(self) -> None:
        self.duration = _probe_playable(self.path, "video", "video stream to play as a camera")
        self._mark_open()

    def run(self, stop: threading.Event, emit: ItemCallback) -> str:
        from emoapp.capture import media

        pacer = Pacer(self.speed)
        offset = 0.0  # media time at which the current pass of the file started
        index = 0
        while True:
            last_t = None
            note = ""
            try:
                for frame in media.iter_video_frames(self.path, fps=self.fps):
                    t = offset + frame.t
                    if not pacer.wait_until(t, stop):
                        return ""
                    emit(VideoFrame(pacer.clock_time(t), frame.image, index, self.name))
                    index += 1
                    last_t = frame.t
            except media.TruncatedMediaError as exc:
                note = str(exc)
            if not self.loop or last_t is None or stop.is_set():
                return note
            frame_s = 1.0 / self.fps if self.fps else 1.0 / 30.0
            offset += max(self.duration or 0.0, last_t + frame_s)

    def release(self) -> None:
        """Nothing is held between passes: each pass opens the file afresh."""


def _probe_playable(path: Path, stream: str, what: str) -> float | None:
    """The duration of a file that has the ``stream`` ("video" or "audio") a replay
    source needs; a PermanentSourceError (never retried) otherwise."""
    from emoapp.capture import media

    try:
        info = media.probe(path)
    except MediaError as exc:
        raise PermanentSourceError(str(exc)) from exc
    if not (info.has_video if stream == "video" else info.has_audio):
        raise PermanentSourceError(f"{path}: has no {what}")
    return info.duration


class AudioReplaySource(ThreadedSource):
    """An audio file (or a video's audio track) played as a microphone: mono float32
    blocks at ``sample_rate``."""

    modality = Modality.VOICE
    is_device = False

    def __init__(
        self,
        path: str | Path,
        speed: float = 1.0,
        loop: bool = False,
        sample_rate: int = 16_000,
        block_s: float = 0.05,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if sample_rate <= 0 or block_s <= 0:
            raise ValueError("sample_rate and block_s must be positive")
        self.path = Path(path)
        self.speed = _check_speed(speed)
        self.loop = loop
        self.sample_rate = int(sample_rate)
        self.block_s = float(block_s)
        self.name = name or self.path.name
        self.duration: float | None = None

    def open(self) -> None:
        self.duration = _probe_playable(self.path, "audio", "audio track to play as a microphone")
        self._mark_open()

    def run(self, stop: threading.Event, emit: ItemCallback) -> str:
        from emoapp.capture import media

        pacer = Pacer(self.speed)
        played = 0.0  # media seconds delivered over all passes
        while True:
            delivered = 0
            note = ""
            try:
                chunks = media.iter_audio_chunks(
                    self.path, sample_rate=self.sample_rate, chunk_s=self.block_s
                )
                for chunk in chunks:
                    start = played
                    played += chunk.duration
                    # A block is delivered once its last sample has been "captured".
                    if not pacer.wait_until(played, stop):
                        return ""
                    emit(
                        AudioChunk(
                            pacer.clock_time(start), chunk.samples, chunk.sample_rate, self.name
                        )
                    )
                    delivered += 1
            except media.TruncatedMediaError as exc:
                note = str(exc)
            if not self.loop or delivered == 0 or stop.is_set():
                return note

    def release(self) -> None:
        """Nothing is held between passes: each pass opens the file afresh."""


class TextReplaySource(ThreadedSource):
    """A text file played as typing: one non-empty line every ``interval_s`` seconds,
    the first after ``first_s``."""

    modality = Modality.TEXT
    is_device = False

    def __init__(
        self,
        path: str | Path,
        interval_s: float = 3.0,
        first_s: float = 1.0,
        speed: float = 1.0,
        loop: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if interval_s <= 0 or first_s < 0:
            raise ValueError("interval_s must be positive and first_s not negative")
        self.path = Path(path)
        self.interval_s = float(interval_s)
        self.first_s = float(first_s)
        self.speed = _check_speed(speed)
        self.loop = loop
        self.name = name or self.path.name
        self.lines: list[str] = []

    def open(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise PermanentSourceError(f"{self.path}: no such file") from exc
        except UnicodeDecodeError as exc:
            raise PermanentSourceError(f"{self.path}: not UTF-8 text") from exc
        except OSError as exc:
            raise PermanentSourceError(f"{self.path}: cannot read: {exc.strerror or exc}") from exc
        self.lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not self.lines:
            raise PermanentSourceError(f"{self.path}: has no text lines")
        self._mark_open()

    def run(self, stop: threading.Event, emit: ItemCallback) -> str:
        pacer = Pacer(self.speed)
        due = self.first_s
        while True:
            for line in self.lines:
                if not pacer.wait_until(due, stop):
                    return ""
                emit(TextEntry(pacer.clock_time(due), line, self.name))
                due += self.interval_s
            if not self.loop:
                return ""

    def release(self) -> None:
        self.lines = []
