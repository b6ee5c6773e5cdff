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

SPEECH_DOMAIN = "speech"
"""The text domain of what a recogniser without punctuation heard: lower-case words, no
marks. The embedded text model reads it with weights fitted on such text; a text model
without that domain reads it in its default one."""

UNPUNCTUATED_RECOGNISERS = frozenset({EMBEDDED_ASR})
"""Recognisers whose words come without punctuation (PocketSphinx); Whisper writes it."""


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
    times, else the segment's span. A recogniser that writes no punctuation marks its
    text as the ``speech`` domain."""
    text = " ".join(segment.text.split())
    if not text:
        return None
    # With word times, the entry spans the words (not the segment's padding).
    t, end = (
        (segment.words[0].t, segment.words[-1].end) if segment.words else (segment.t, segment.end)
    )
    domain = SPEECH_DOMAIN if segment.model_id in UNPUNCTUATED_RECOGNISERS else None
    return TextEntry(t=t, text=text, source=HEARD_PREFIX + segment.model_id, end=end, domain=domain)


def to_asr_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz, clipped to [-1, 1], NaN and inf made 0."""
    x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1), posinf=0.0, neginf=0.0)
    if x.size:
        x = resample(x, sample_rate, ASR_RATE)
    return np.clip(x, -1.0, 1.0)
