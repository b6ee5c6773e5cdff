"""Speech into the text channel, live. (Which recogniser runs and transcribing a
recording: :mod:`emoapp.recorded.transcribe`.)

- :class:`LiveTranscriber`: its own thread. The live session hands it every audio chunk
  (a cheap, bounded append that never blocks the source or the other workers); it cuts
  speech segments with the voice-activity gate, transcribes the newest finished segment
  (latest wins: older finished segments waiting behind a slow recogniser are dropped and
  counted), and hands each result on as a heard text entry for the text encoder. Partial
  results of the segment in progress may be reported for display; they are never fused.
  On Linux its thread runs 10 steps nicer than the process, so that on a busy CPU the
  face and voice workers come first.

Transcripts are held in memory only and handed on; nothing here writes anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from emoapp.capture.base import one_line
from emoapp.core.errors import EmoappError
from emoapp.core.messages import AudioChunk, TextEntry
from emoapp.encoders.asr import (
    SegmenterConfig,
    SpeechSegmenter,
)
from emoapp.encoders.heard import HeardSegment, SpeechRecognizer, heard_entry
from emoapp.encoders.vad import VoiceActivityGate
from emoapp.live.threads import lower_thread_priority

log = logging.getLogger(__name__)

# --- live ----------------------------------------------------------------------------------

EntryCallback = Callable[[TextEntry], object]
PartialCallback = Callable[[HeardSegment], None]


@dataclass
class TranscriberStats:
    segments: int = 0
    """Finished speech segments."""
    transcribed: int = 0
    dropped: int = 0
    """Finished segments dropped because a newer one was waiting (latest wins)."""
    entries: int = 0
    """Segments that gave words (handed on)."""
    failures: int = 0
    speech_s: float = 0.0
    transcribe_s: float = 0.0
    discarded: int = 0
    """Transcriptions finished after :meth:`LiveTranscriber.forget` dropped their audio
    (the microphone was withdrawn meanwhile): never handed on."""


class LiveTranscriber:
    """Transcribes a live audio stream's speech segments on its own thread.

    ``feed`` (from the audio source's thread) only appends to a bounded queue. The worker
    segments the audio, transcribes the newest finished segment and calls
    ``on_entry(entry)`` with a heard :class:`TextEntry` (the segment's time span, source
    ``heard:<recogniser>``). With ``partial_every_s`` set, the segment in progress is
    transcribed that often while no finished segment waits, and ``on_partial`` gets the
    result (for display only)."""

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        on_entry: EntryCallback,
        gate: VoiceActivityGate | None = None,
        *,
        on_partial: PartialCallback | None = None,
        on_error: Callable[[str], None] | None = None,
        partial_every_s: float | None = None,
        max_buffer_s: float = 30.0,
        segmenter: SegmenterConfig | None = None,
        idle_end_s: float = 0.75,
        nice: int = 10,
    ) -> None:
        self.recognizer = recognizer
        self.on_entry = on_entry
        self.on_partial = on_partial
        self.on_error = on_error
        self.partial_every_s = partial_every_s
        self.max_buffer_s = float(max_buffer_s)
        self.idle_end_s = float(idle_end_s)
        self.nice = int(nice)
        self._working = False
        self._generation = 0
        """Bumped by :meth:`forget`: a transcription of audio taken before is dropped
        at delivery."""
        self._segmenter = SpeechSegmenter(gate, segmenter)
        self._chunks: deque[AudioChunk] = deque()
        self._buffered_s = 0.0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = TranscriberStats()
        self.error = ""
        self.enabled = True
        self.admits: Callable[[AudioChunk], bool] | None = None
        """Whether a chunk may still be taken (its capture not withdrawn since); the
        live session sets it, so audio of a withdrawn microphone is never held."""
        self.on_loaded: Callable[[], None] | None = None
        """Called on the transcriber's thread once the recogniser is loaded (the live
        session applies its thread plan there: :mod:`emoapp.live.threads`)."""

    @property
    def model_id(self) -> str:
        return self.recognizer.model_id

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name="emoapp-asr", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the worker and forget all audio; True when the thread ended in time."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        self.forget()
        return thread is None or not thread.is_alive()

    def forget(self) -> None:
        """Drop all audio held (queued chunks and the segment in progress), and every
        transcription already running: its words are discarded when it finishes,
        never handed on (checked at delivery)."""
        with self._cond:
            self._generation += 1
            self._chunks.clear()
            self._buffered_s = 0.0
            self._segmenter.reset()

    def set_enabled(self, enabled: bool) -> None:
        """Switch transcription on or off; off drops the audio held."""
        self.enabled = bool(enabled)
        if not enabled:
            self.forget()

    @property
    def busy(self) -> bool:
        """Audio waiting, a segment open, or a transcription running."""
        with self._cond:
            return bool(self._chunks) or self._segmenter.in_speech or self._working

    @property
    def buffered(self) -> int:
        """Audio chunks waiting (for privacy views and tests)."""
        with self._cond:
            return len(self._chunks)

    def feed(self, chunk: AudioChunk) -> None:
        """Hand over one audio chunk (cheap; never blocks on the recogniser). When the
        worker falls more than ``max_buffer_s`` behind, the oldest audio is dropped."""
        if not self.enabled or self._stop.is_set():
            return
        with self._cond:  # checked under the lock forget() takes: never held after it
            if self.admits is not None and not self.admits(chunk):
                return
            self._chunks.append(chunk)
            self._buffered_s += chunk.duration
            while self._buffered_s > self.max_buffer_s and len(self._chunks) > 1:
                old = self._chunks.popleft()
                self._buffered_s -= old.duration
            self._cond.notify()

    def _take(self) -> tuple[list[AudioChunk], int]:
        """The audio waiting, and the generation it belongs to."""
        with self._cond:
            if not self._chunks and not self._stop.is_set():
                self._cond.wait(0.1)
            chunks = list(self._chunks)
            self._chunks.clear()
            self._buffered_s = 0.0
            self._working = bool(chunks) or self._working
            return chunks, self._generation

    def _work(self) -> None:
        lower_thread_priority(self.nice)
        try:
            self.recognizer.load()
        except Exception as exc:  # noqa: BLE001 - any load failure turns transcription off
            self._fail(f"speech recognition failed to load: {one_line(exc)}")
            return
        if self.on_loaded is not None:
            self.on_loaded()
        last_partial = last_audio = time.monotonic()
        while not self._stop.is_set():
            chunks, generation = self._take()
            finished: list[AudioChunk] = []
            with self._cond:
                if generation != self._generation:
                    chunks = []  # forgotten since they were taken
                    generation = self._generation
                self._working = bool(chunks)
                for chunk in chunks:
                    try:
                        finished.extend(self._segmenter.push(chunk))
                    except (ValueError, EmoappError) as exc:
                        log.warning("speech recognition: unusable audio chunk: %s", exc)
                        self._segmenter.reset()
                now = time.monotonic()
                if chunks:
                    last_audio = now
                elif self._segmenter.in_speech and now - last_audio >= self.idle_end_s:
                    # The audio stopped mid-utterance (a replayed file ended, a device
                    # closed): the utterance is over.
                    finished.extend(self._segmenter.flush())
                    self._working = bool(finished)
            if self._stop.is_set():
                break
            if finished:
                self.stats.segments += len(finished)
                self.stats.dropped += len(finished) - 1
                self._transcribe(finished[-1], generation)
                last_partial = time.monotonic()
            elif (
                self.partial_every_s is not None
                and self.on_partial is not None
                and time.monotonic() - last_partial >= self.partial_every_s
            ):
                last_partial = time.monotonic()
                with self._cond:
                    current = self._segmenter.current()
                if current is not None:
                    heard = self._run(current)
                    if heard is not None and heard.text and self._current(generation):
                        self.on_partial(heard)
            with self._cond:
                self._working = False
        self.forget()

    def _run(self, segment: AudioChunk) -> HeardSegment | None:
        try:
            return self.recognizer.transcribe(segment.samples, segment.sample_rate, segment.t)
        except Exception as exc:  # noqa: BLE001 - a failing call must not end the worker
            self.stats.failures += 1
            self._fail(f"speech recognition failed: {type(exc).__name__}: {one_line(exc)}")
            return None

    def _current(self, generation: int) -> bool:
        """True while no :meth:`forget` came since ``generation`` was read."""
        with self._cond:
            return generation == self._generation

    def _transcribe(self, segment: AudioChunk, generation: int) -> None:
        heard = self._run(segment)
        if heard is None:
            return
        self.error = ""
        self.stats.transcribed += 1
        self.stats.speech_s += segment.duration
        self.stats.transcribe_s += heard.latency_s
        entry = heard_entry(heard)
        if not self._current(generation):
            self.stats.discarded += 1  # its audio was forgotten while it was transcribed
            return
        if entry is not None and not self._stop.is_set() and self.enabled:
            self.stats.entries += 1
            self.on_entry(entry)

    def _fail(self, message: str) -> None:
        if message != self.error:
            log.warning("%s", message)
        self.error = message
        if self.on_error is not None:
            self.on_error(message)
