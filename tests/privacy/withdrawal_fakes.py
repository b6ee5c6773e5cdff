"""Fakes for the withdrawal tests: sources the test pushes into, encoders and a speech
recogniser that tag every output with the ids of the inputs behind it, and a log that
puts pushes, withdrawals and everything the session hands its listeners in one order.

Inputs carry their id where the session keeps it: a frame's ``index``, an audio chunk's
``source`` (``a<id>``), a typed entry's text (``k<id>``). The recogniser hears the ids
of the audio chunks in its segment and says them (``h<id> <id> ...``), so a heard entry,
and the text prediction made from it, name the microphone inputs they came from.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoapp.core import clock
from emoapp.core.explanation import FaceExplanation, TextExplanation, VoiceExplanation
from emoapp.core.messages import (
    AudioChunk,
    EncoderOutput,
    FusedEstimate,
    Modality,
    ModalityPrediction,
    TextEntry,
    VideoFrame,
)
from emoapp.core.taxonomy import CANONICAL_LABELS, NUM_LABELS
from emoapp.encoders.base import EncoderInfo
from emoapp.encoders.heard import HeardSegment
from tests.hardening.live import wait_for as wait_for  # re-exported with the fakes

FACE, VOICE, TEXT = Modality.FACE, Modality.VOICE, Modality.TEXT
RATE = 16_000
CHUNK_S = 0.1


class PushSource:
    """A source that delivers exactly what the test pushes (on the test's thread)."""

    is_device = False

    def __init__(self, modality: Modality) -> None:
        self.modality = modality
        self.name = f"push {modality.value}"
        self._lock = threading.Lock()
        self._callback: Callable[[Any], None] | None = None

    def open(self) -> None:
        pass

    def start(self, callback: Any, on_error: Any = None, on_end: Any = None) -> None:
        with self._lock:
            self._callback = callback

    def close(self) -> None:
        with self._lock:
            self._callback = None

    @property
    def started(self) -> bool:
        with self._lock:
            return self._callback is not None

    def push(self, item: Any) -> bool:
        with self._lock:
            callback = self._callback
        if callback is None:
            return False
        callback(item)
        return True


@dataclass
class Log:
    """One order for pushes, withdrawals and listener calls (see the module docstring)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    inputs: dict[int, tuple[Modality, int]] = field(default_factory=dict)
    """input id -> (its capture, its position in the log)"""
    chunks: dict[int, tuple[float, float]] = field(default_factory=dict)
    """audio chunk id -> (t, end)"""
    withdrawals: list[tuple[Modality, int]] = field(default_factory=list)
    events: list[tuple[int, str, frozenset[tuple[Modality, int]]]] = field(default_factory=list)
    next_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_input(self, origin: Modality) -> int:
        with self.lock:
            n = next(self.next_id)
            self.inputs[n] = (origin, next(self.seq))
            return n

    def withdrawn(self, origin: Modality) -> None:
        with self.lock:
            self.withdrawals.append((origin, next(self.seq)))

    def event(self, kind: str, derived: frozenset[tuple[Modality, int]]) -> None:
        with self.lock:
            self.events.append((next(self.seq), kind, derived))

    def chunk_ids(self, t: float, end: float) -> list[int]:
        with self.lock:
            return [n for n, (a, b) in self.chunks.items() if a < end - 1e-6 and b > t + 1e-6]

    def violations(self) -> list[str]:
        """Listener calls that came after a withdrawal of a capture and carry an input
        of it pushed before that withdrawal."""
        with self.lock:
            events, withdrawals, inputs = list(self.events), list(self.withdrawals), self.inputs
            bad = []
            for at, kind, derived in events:
                for origin, n in derived:
                    pushed = inputs[n][1]
                    for w_origin, w_at in withdrawals:
                        if w_origin is origin and pushed < w_at < at:
                            bad.append(
                                f"{kind} at {at} carries {origin.value} input {n} "
                                f"(pushed at {pushed}) after its withdrawal at {w_at}"
                            )
            return bad


def ids_of(text: str) -> list[int]:
    return [int(x) for x in text[1:].split()] if len(text) > 1 else []


def derived_of(thing: Any) -> frozenset[tuple[Modality, int]]:
    """The (capture, input id) pairs behind an output, estimate, explanation or entry."""
    if isinstance(thing, FusedEstimate):
        return frozenset().union(*(derived_of(p) for p in thing.inputs.values()))
    if isinstance(thing, ModalityPrediction):
        return frozenset(thing.detail.get("derived", ()))
    if isinstance(thing, TextEntry):
        origin = VOICE if thing.text.startswith("h") else TEXT
        return frozenset((origin, n) for n in ids_of(thing.text))
    if isinstance(thing, VideoFrame):
        return frozenset({(FACE, thing.index)})
    if isinstance(thing, FaceExplanation | VoiceExplanation | TextExplanation):
        return frozenset(
            (Modality(o), int(n))
            for part in thing.method.split(";")[1:]
            for o, n in [part.split(":")]
        )
    return frozenset()


class Recorder:
    """A session listener that logs what it is handed, with the inputs behind it."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.heard: list[TextEntry] = []
        self.outputs: list[EncoderOutput] = []
        self.estimates: list[FusedEstimate] = []
        self.explanations: list[Any] = []

    def on_output(self, output: EncoderOutput) -> None:
        self.outputs.append(output)
        self.log.event("output", derived_of(output))

    def on_estimate(self, estimate: FusedEstimate) -> None:
        self.estimates.append(estimate)
        self.log.event("estimate", derived_of(estimate))

    def on_heard(self, entry: TextEntry) -> None:
        self.heard.append(entry)
        self.log.event("heard", derived_of(entry))

    def on_frame(self, frame: VideoFrame) -> None:
        self.log.event("frame", derived_of(frame))

    def on_explanation(self, explanation: Any) -> None:
        self.explanations.append(explanation)
        self.log.event("explanation", derived_of(explanation))


class TaggingEncoder:
    """A model-free encoder whose predictions name the inputs behind them
    (``detail["derived"]``); ``delay`` makes it slow, ``hold`` blocks it until set."""

    baseline = False
    device = "cpu"
    fell_back_to_cpu = None

    def __init__(self, modality: Modality, log: Log, delay: float = 0.0) -> None:
        self.modality = modality
        self.model_id = f"tagging-{modality.value}"
        self.log = log
        self.delay = delay
        self.hold: threading.Event | None = None
        self.calls = 0
        probs = np.full(NUM_LABELS, 0.3 / (NUM_LABELS - 1))
        probs[CANONICAL_LABELS.index("happy")] = 0.7
        self.probs = probs

    def load(self) -> None:
        pass

    def _derived(self, item: Any) -> set[tuple[Modality, int]]:
        if isinstance(item, VideoFrame):
            return {(FACE, item.index)}
        if isinstance(item, AudioChunk):
            return {(VOICE, n) for n in self.log.chunk_ids(item.t, item.end)}
        return set(derived_of(item))

    def encode(self, items: Sequence[Any]) -> list[EncoderOutput]:
        self.calls += 1
        if self.hold is not None:
            self.hold.wait(10)
        if self.delay:
            time.sleep(self.delay)
        mask = np.ones(NUM_LABELS, dtype=bool)
        return [
            ModalityPrediction(
                self.modality,
                item.t,
                self.probs,
                mask,
                0.7,
                self.model_id,
                t_end=getattr(item, "end", None),
                detail={"derived": sorted(self._derived(item))},
            )
            for item in items
        ]

    def info(self) -> EncoderInfo:
        return EncoderInfo(self.modality, self.model_id, self.device, "float32", False)


class TaggingRecognizer:
    """Hears the ids of the audio chunks in its segment (``h<id> ...``); ``hold`` blocks
    it until set, ``started`` is set when a transcription begins."""

    model_id = "tagging/asr"

    def __init__(self, log: Log, delay: float = 0.0) -> None:
        self.log = log
        self.delay = delay
        self.hold: threading.Event | None = None
        self.started = threading.Event()

    def load(self) -> None:
        pass

    def transcribe(self, samples: np.ndarray, sample_rate: int, t: float = 0.0) -> HeardSegment:
        self.started.set()
        if self.hold is not None:
            self.hold.wait(10)
        if self.delay:
            time.sleep(self.delay)
        end = t + samples.size / sample_rate
        ids = self.log.chunk_ids(t, end)
        text = "h" + " ".join(str(n) for n in ids) if ids else ""
        return HeardSegment(t, end, text, self.model_id)


class TaggingExplainer:
    """Explains by naming the inputs behind the prediction (in ``method``)."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.hold = hold
        self.calls = 0

    def explain(self, item: Any, prediction: ModalityPrediction) -> Any:
        self.calls += 1
        if self.hold is not None:
            self.hold.wait(10)
        method = ";".join(
            ["tagging", *(f"{o.value}:{n}" for o, n in prediction.detail.get("derived", ()))]
        )
        if prediction.modality is FACE:
            return FaceExplanation(prediction.t, prediction.model_id, method, ())
        if prediction.modality is VOICE:
            return VoiceExplanation(prediction.t, prediction.model_id, method, "happy", ())
        return TextExplanation(prediction.t, prediction.model_id, method, "happy", ())


def utterance(log: Log, speech_s: float = 0.5, silence_s: float = 0.9) -> list[AudioChunk]:
    """Audio chunks of one utterance (a tone, then silence), stamped as captured over
    the time just past (a device stamps what it has recorded), each with a new id."""
    n_speech, n_silence = round(speech_s / CHUNK_S), round(silence_s / CHUNK_S)
    total = (n_speech + n_silence) * CHUNK_S
    t0 = clock.now() - total
    step = int(CHUNK_S * RATE)
    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(step) / RATE)).astype(np.float32)
    silence = np.zeros(step, dtype=np.float32)
    chunks = []
    for i in range(n_speech + n_silence):
        n = log.new_input(VOICE)
        t = t0 + i * CHUNK_S
        with log.lock:
            log.chunks[n] = (t, t + CHUNK_S)
        chunks.append(AudioChunk(t, tone if i < n_speech else silence, RATE, f"a{n}"))
    return chunks


def frame(log: Log) -> VideoFrame:
    n = log.new_input(FACE)
    return VideoFrame(clock.now(), np.zeros((4, 4, 3), np.uint8), n, "push")
