"""Fault-injection helpers for the live session: scripted sources and wrapped encoders.

Sources here are :class:`~emoapp.capture.base.ThreadedSource` subclasses that deliver a
script (frames, chunks, garbage, pauses, failures) through the same callback path as a
camera or microphone. Encoders wrap a real one (or stand alone) and misbehave on demand:
raise, hang, run out of memory, or return garbage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from emoapp.capture.base import ItemCallback, ThreadedSource
from emoapp.core import clock
from emoapp.core.messages import (
    AudioChunk,
    EncoderOutput,
    FusedEstimate,
    Modality,
    ModalityPrediction,
    VideoFrame,
)
from emoapp.core.taxonomy import CANONICAL_LABELS, NUM_LABELS
from emoapp.encoders.base import EncoderInfo
from emoapp.live.session import ModalityStatus

FACE, VOICE, TEXT = Modality.FACE, Modality.VOICE, Modality.TEXT


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


class Probe:
    """A listener that records what the session says, with arrival times."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.estimates: list[FusedEstimate] = []
        self.outputs: list[tuple[float, EncoderOutput]] = []
        self.statuses: list[ModalityStatus] = []

    def on_estimate(self, estimate: FusedEstimate) -> None:
        with self.lock:
            self.estimates.append(estimate)

    def on_output(self, output: EncoderOutput) -> None:
        with self.lock:
            self.outputs.append((clock.now(), output))

    def on_status(self, status: ModalityStatus) -> None:
        with self.lock:
            self.statuses.append(status)

    def predictions(self, m: Modality, since: float = float("-inf")) -> list[ModalityPrediction]:
        with self.lock:
            return [
                o
                for at, o in self.outputs
                if at >= since and o.modality is m and isinstance(o, ModalityPrediction)
            ]

    def outputs_of(self, m: Modality, since: float = float("-inf")) -> list[EncoderOutput]:
        with self.lock:
            return [o for at, o in self.outputs if at >= since and o.modality is m]

    def estimates_since(self, since: float) -> list[FusedEstimate]:
        with self.lock:
            return [e for e in self.estimates if e.t >= since]

    def has_state(self, m: Modality, state: str, contains: str = "") -> bool:
        with self.lock:
            return any(
                s.modality is m and s.state == state and contains in s.message
                for s in self.statuses
            )


# --- sources ---------------------------------------------------------------------------

Step = Any
"""A scripted source step: an item to deliver (VideoFrame/AudioChunk payload made by a
callable), ``("pause", seconds)``, ``("stall", event)`` (wait until the event is set),
or ``("raise", exception)``."""


class ScriptedSource(ThreadedSource):
    """Delivers ``script()`` (a fresh iterator per start) at ``rate`` items a second.

    Items are built by the script with the delivery time, so they carry the session
    clock like a device's. Steps ``("pause", s)``, ``("stall", event)`` and
    ``("raise", exc)`` pause, stall until the event is set, or fail delivery.
    """

    def __init__(
        self,
        modality: Modality,
        script: Callable[[], Iterator[Step]],
        rate: float,
        name: str = "scripted",
        is_device: bool = True,
    ) -> None:
        super().__init__()
        self.modality = modality
        self.script = script
        self.rate = rate
        self.name = name
        self.is_device = is_device
        self.opens = 0
        self.delivered = 0

    def open(self) -> None:
        self.opens += 1
        self._mark_open()

    def run(self, stop: threading.Event, emit: ItemCallback) -> str:
        for step in self.script():
            if isinstance(step, tuple):
                kind, arg = step
                if kind == "pause":
                    if stop.wait(arg):
                        return ""
                    continue
                if kind == "stall":
                    while not arg.wait(0.05):
                        if stop.is_set():
                            return ""
                    continue
                if kind == "raise":
                    raise arg
                raise ValueError(f"unknown step {kind!r}")
            if stop.wait(1.0 / self.rate):
                return ""
            emit(step(clock.now(), self.delivered))
            self.delivered += 1
        return ""

    def release(self) -> None:
        pass


def frame_of(image: Any) -> Callable[[float, int], VideoFrame]:
    return lambda t, i: VideoFrame(t, image, i, "scripted")


def chunk_of(samples: Any, sample_rate: int = 16_000) -> Callable[[float, int], AudioChunk]:
    return lambda t, i: AudioChunk(t, samples, sample_rate, "scripted")


def tone_block(seconds: float = 0.05, sample_rate: int = 16_000, hz: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


# --- encoders --------------------------------------------------------------------------


def fixed_probs(label: str = "happy") -> np.ndarray:
    probs = np.full(NUM_LABELS, 0.3 / (NUM_LABELS - 1))
    probs[CANONICAL_LABELS.index(label)] = 0.7
    return probs


class FakeEncoder:
    """No model: a fixed distribution for every input. ``fail`` makes the next calls
    raise it; ``hang`` (an event) makes them wait for it; ``garbage`` replaces the
    outputs with what it returns."""

    def __init__(self, modality: Modality, label: str = "happy") -> None:
        self.modality = modality
        self.model_id = f"fake-{modality.value}"
        self.baseline = False
        self.device = "cpu"
        self.fell_back_to_cpu: str | None = None
        self.fail: BaseException | None = None
        self.hang: threading.Event | None = None
        self.garbage: Callable[[Sequence[Any]], list[Any]] | None = None
        self.calls = 0
        self.probs = fixed_probs(label)

    def load(self) -> None:
        pass

    def encode(self, items: Sequence[Any]) -> list[EncoderOutput]:
        self.calls += 1
        if self.hang is not None:
            self.hang.wait()
        if self.fail is not None:
            raise self.fail
        if self.garbage is not None:
            return self.garbage(items)
        mask = np.ones(NUM_LABELS, dtype=bool)
        return [
            ModalityPrediction(self.modality, item.t, self.probs, mask, 0.7, self.model_id)
            for item in items
        ]

    def info(self) -> EncoderInfo:
        return EncoderInfo(self.modality, self.model_id, self.device, "float32", False)


class CountingEncoder:
    """Wraps a real encoder and counts the items it was given and what came back."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.modality = inner.modality
        self.items = 0
        self.lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def baseline(self) -> bool:
        return self.inner.baseline

    @property
    def device(self) -> Any:
        return getattr(self.inner, "device", None)

    @property
    def fell_back_to_cpu(self) -> str | None:
        return getattr(self.inner, "fell_back_to_cpu", None)

    def load(self) -> None:
        self.inner.load()

    def encode(self, items: Sequence[Any]) -> list[EncoderOutput]:
        with self.lock:
            self.items += len(items)
        return self.inner.encode(items)

    def info(self) -> EncoderInfo:
        return self.inner.info()
