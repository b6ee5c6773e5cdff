"""What every speech recogniser shares: the heard words and segments it returns, the
shape a recogniser has (:class:`SpeechRecognizer`), the rate it takes, and how heard text
is marked as heard (``source = "heard:<recogniser>"``). The recognisers
(:mod:`emoapp.encoders.whisper`, :mod:`emoapp.encoders.embedded.asr_sphinx`) and the
choosing and segmenting code (:mod:`emoapp.encoders.asr`) import it; it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from emoapp.core.messages import TextEntry
from emoapp.core.provenance import HEARD_PREFIX as HEARD_PREFIX  # heard text is microphone data
from emoapp.core.provenance import is_heard as is_heard
from emoapp.encoders.voice import resample

EMBEDDED_ASR = "embedded/asr-pocketsphinx"
"""The registry id of the embedded recogniser (CMU PocketSphinx, model inside its wheel)."""


ASR_RATE = 16_000
"""Both recognisers take 16 kHz mono; other rates are resampled."""


@dataclass(frozen=True, slots=True)
class HeardWord:
    """One recognised word and its time span (seconds, on the segment's clock)."""

    word: str
    t: float
    end: float


@dataclass(frozen=True, slots=True)
class HeardSegment:
    """What a recogniser heard in one speech segment (``text`` may be empty)."""

    t: float
    end: float
    text: str
    model_id: str
    words: tuple[HeardWord, ...] = ()
    latency_s: float = 0.0


@runtime_checkable
class SpeechRecognizer(Protocol):
    """Anything that turns a mono speech segment into words."""

    @property
    def model_id(self) -> str: ...

    def load(self) -> None:
        """Load the model (idempotent). Raises ModelLoadError or MissingDependencyError."""

    def transcribe(self, samples: np.ndarray, sample_rate: int, t: float = 0.0) -> HeardSegment:
        """The words in ``samples`` (mono float in [-1, 1]) whose first sample is at ``t``."""


def recognizer_of(entry: TextEntry) -> str | None:
    """The recogniser that heard ``entry``, or None for typed text or a transcript."""
    return entry.source.removeprefix(HEARD_PREFIX) if is_heard(entry) else None


def heard_entry(segment: HeardSegment) -> TextEntry | None:
    """The text entry for a finished segment (None when nothing was recognised): from
    its first word's start to its last word's end where the recogniser gives word
    times, else the segment's span."""
    text = " ".join(segment.text.split())
    if not text:
        return None
    # With word times, the entry spans the words (not the segment's padding).
    t, end = (
        (segment.words[0].t, segment.words[-1].end) if segment.words else (segment.t, segment.end)
    )
    return TextEntry(t=t, text=text, source=HEARD_PREFIX + segment.model_id, end=end)


def to_asr_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz, clipped to [-1, 1], NaN and inf made 0."""
    x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1), posinf=0.0, neginf=0.0)
    if x.size:
        x = resample(x, sample_rate, ASR_RATE)
    return np.clip(x, -1.0, 1.0)
