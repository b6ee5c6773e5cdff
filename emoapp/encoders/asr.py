"""Speech recognition: what was said in a speech segment, as a text entry for the text
encoder.

- :class:`SpeechRecognizer` is the shape every recogniser has: ``load()``, then
  ``transcribe(samples, sample_rate, t)`` -> a :class:`HeardSegment` (its words, each
  with its time span where the recogniser gives one). Two kinds exist: Whisper-family
  models through Hugging Face ``transformers`` (:mod:`emoapp.encoders.whisper`), and the
  embedded CMU PocketSphinx recogniser (:mod:`emoapp.encoders.embedded.asr_sphinx`),
  which installs from PyPI with its English model inside and needs no download.
- :class:`SpeechSegmenter` cuts a stream of audio chunks into speech segments (one
  utterance each) with a voice-activity gate (:mod:`emoapp.encoders.vad`): the unit a
  recogniser transcribes, live and in ``emoapp analyze``.
- :func:`heard_entry` turns a segment into a :class:`~emoapp.core.messages.TextEntry`
  with the segment's time span and ``source = "heard:<recogniser>"``, so the text
  modality's age means the same as for typed text and the window can mark it as heard.
- The recognisers of the registry live in ``models/registry.toml`` under ``[asr]``
  (one per profile, pinned like the other models): :func:`asr_registry`,
  :func:`resolve_recognizer`.

Transcripts live in memory only: nothing here writes anything.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from emoapp.core.errors import EmoappError
from emoapp.core.messages import AudioChunk, TextEntry
from emoapp.core.provenance import HEARD_PREFIX as HEARD_PREFIX
from emoapp.encoders.vad import EnergyVAD, VoiceActivityGate
from emoapp.encoders.voice import resample

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


def is_heard(entry: TextEntry) -> bool:
    return entry.source.startswith(HEARD_PREFIX)


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


# --- segmenting a stream into utterances -------------------------------------------------


@dataclass
class SegmenterConfig:
    """How speech is cut into segments. Times in seconds."""

    block_s: float = 0.128
    """The gate judges blocks this long (four 32 ms frames)."""
    speech_fraction: float = 0.5
    """A block is speech when at least this share of its frames is."""
    end_silence_s: float = 0.5
    """A segment ends after this much silence."""
    min_speech_s: float = 0.25
    """Segments with less speech than this are dropped (a cough, a click)."""
    max_segment_s: float = 15.0
    """A segment longer than this is cut (Whisper reads at most 30 s at once)."""
    pad_s: float = 0.2
    """Audio kept before the first speech block and after the last one."""

    def __post_init__(self) -> None:
        if min(self.block_s, self.end_silence_s, self.max_segment_s) <= 0:
            raise ValueError("block_s, end_silence_s and max_segment_s must be positive")
        if not 0.0 < self.speech_fraction <= 1.0:
            raise ValueError("speech_fraction must be in (0, 1]")
        if self.min_speech_s < 0 or self.pad_s < 0:
            raise ValueError("min_speech_s and pad_s must not be negative")


GAP_TOLERANCE_S = 0.1
"""A chunk stamped further than this from where the previous one ended starts afresh."""


class SpeechSegmenter:
    """Cuts a stream of :class:`AudioChunk` into speech segments, each an
    :class:`AudioChunk` spanning one utterance (with a little padding).

    Feed chunks in time order with :meth:`push`; it returns the segments that finished.
    A gap or overlap in the chunks' times, or a change of sample rate, ends the current
    segment. Memory holds at most one segment (``max_segment_s``) plus the padding.
    """

    def __init__(
        self, gate: VoiceActivityGate | None = None, config: SegmenterConfig | None = None
    ) -> None:
        self.gate = gate or EnergyVAD()
        self.config = config or SegmenterConfig()
        self._rate: int | None = None
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_t = 0.0
        self._next_t: float | None = None
        self._preroll: deque[np.ndarray] = deque()
        self._blocks: list[np.ndarray] = []
        self._start_t = 0.0
        self._speech_blocks = 0
        self._trailing_silence = 0
        self._source = ""

    @property
    def in_speech(self) -> bool:
        return bool(self._blocks)

    def reset(self) -> None:
        """Forget everything (the current segment is dropped)."""
        self._next_t = None
        self._pending = np.zeros(0, dtype=np.float32)
        self._preroll.clear()
        self._blocks = []
        self._speech_blocks = 0
        self._trailing_silence = 0

    def current(self) -> AudioChunk | None:
        """The segment in progress so far (for partial results), or None."""
        if not self._blocks or self._rate is None:
            return None
        return AudioChunk(self._start_t, np.concatenate(self._blocks), self._rate, self._source)

    def push(self, chunk: AudioChunk) -> list[AudioChunk]:
        samples = np.asarray(chunk.samples, dtype=np.float32).reshape(-1)
        if chunk.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        finished: list[AudioChunk] = []
        restart = self._next_t is not None and (
            chunk.sample_rate != self._rate or abs(chunk.t - self._next_t) > GAP_TOLERANCE_S
        )
        if restart:
            # A gap, an overlap or a new rate: the stream restarts.
            finished.extend(self.flush())
            self._pending = np.zeros(0, dtype=np.float32)
            self._preroll.clear()
        # Times follow each chunk's own stamp (as the voice window buffer's do), so a
        # file replayed faster than real time still reads as one stream.
        self._pending_t = chunk.t - self._pending.size / chunk.sample_rate
        self._next_t = chunk.t + samples.size / chunk.sample_rate
        self._rate = chunk.sample_rate
        self._source = chunk.source
        self._pending = np.concatenate([self._pending, np.nan_to_num(samples)])
        block = max(1, round(self.config.block_s * self._rate))
        n_blocks = self._pending.size // block
        if n_blocks == 0:
            return finished
        blocks = [self._pending[i * block : (i + 1) * block] for i in range(n_blocks)]
        activity = self.gate.measure_many(blocks, self._rate)
        for i, (samples_i, act) in enumerate(zip(blocks, activity, strict=True)):
            t = self._pending_t + i * block / self._rate
            segment = self._step(samples_i, t, act.speech_fraction >= self.config.speech_fraction)
            if segment is not None:
                finished.append(segment)
        self._pending = self._pending[n_blocks * block :].copy()
        self._pending_t += n_blocks * block / self._rate
        return finished

    def flush(self) -> list[AudioChunk]:
        """End the current segment now (end of the stream): it, if it had enough speech."""
        segment = self._finish() if self._blocks else None
        return [segment] if segment is not None else []

    def _step(self, block: np.ndarray, t: float, speech: bool) -> AudioChunk | None:
        assert self._rate is not None
        cfg = self.config
        if self._blocks:
            held = sum(b.size for b in self._blocks)
            if (held + block.size) / self._rate > cfg.max_segment_s + 1e-9:
                # Too long: this segment ends here and the block starts afresh.
                cut = self._finish(keep_silence=True)
                self._open(block, t, speech)
                return cut
            self._blocks.append(block)
            if speech:
                self._speech_blocks += 1
                self._trailing_silence = 0
            else:
                self._trailing_silence += 1
            if self._trailing_silence * block.size / self._rate >= cfg.end_silence_s - 1e-9:
                return self._finish()
            return None
        self._open(block, t, speech)
        return None

    def _open(self, block: np.ndarray, t: float, speech: bool) -> None:
        """Outside a segment: a speech block opens one (with the pre-roll); silence is
        kept as pre-roll, at most ``pad_s``."""
        assert self._rate is not None
        if speech:
            pre = list(self._preroll)
            self._start_t = t - sum(b.size for b in pre) / self._rate
            self._blocks = [*pre, block]
            self._preroll.clear()
            self._speech_blocks = 1
            self._trailing_silence = 0
            return
        self._preroll.append(block)
        while self._preroll and sum(b.size for b in self._preroll) / self._rate > (
            self.config.pad_s + 1e-9
        ):
            self._preroll.popleft()

    def _finish(self, keep_silence: bool = False) -> AudioChunk | None:
        assert self._rate is not None
        blocks, speech_blocks, silence = self._blocks, self._speech_blocks, self._trailing_silence
        self._blocks, self._speech_blocks, self._trailing_silence = [], 0, 0
        block_n = blocks[-1].size
        if not keep_silence and silence:
            keep_pad = int(np.ceil(self.config.pad_s * self._rate / max(block_n, 1)))
            cut = max(0, silence - keep_pad)
            if cut:
                blocks = blocks[:-cut]
        if speech_blocks * block_n / self._rate < self.config.min_speech_s - 1e-9:
            return None
        return AudioChunk(self._start_t, np.concatenate(blocks), self._rate, self._source)


def segment_audio(
    chunks: Sequence[AudioChunk], gate: VoiceActivityGate | None = None
) -> list[AudioChunk]:
    """All the speech segments of a finite list of chunks."""
    segmenter = SpeechSegmenter(gate)
    out: list[AudioChunk] = []
    for chunk in chunks:
        out.extend(segmenter.push(chunk))
    out.extend(segmenter.flush())
    return out


# --- the recognisers of the registry -----------------------------------------------------

EMBEDDED_ASR = "embedded/asr-pocketsphinx"


@dataclass(frozen=True)
class AsrEntry:
    """One speech recogniser of the registry (``[asr.models."ID"]``)."""

    id: str
    backend: str = "transformers"
    task: str = "automatic-speech-recognition"
    revision: str | None = None
    architecture: str = ""
    size_mb: float = 0.0
    license: str = ""
    training_data: str = ""
    reported: str = ""
    limits: str = ""
    language: str = "en"


@dataclass(frozen=True)
class AsrRegistry:
    models: dict[str, AsrEntry]
    profiles: dict[str, str | None] = field(default_factory=dict)
    """Profile name -> recogniser id (None: no transcription under that profile)."""


class AsrError(EmoappError):
    """An unknown recogniser, or one that cannot run here."""


def _registry_path() -> Path:
    from emoapp.registry import data_dir

    return data_dir("models") / "registry.toml"


@functools.cache
def asr_registry() -> AsrRegistry:
    """The ``[asr]`` part of ``models/registry.toml``."""
    path = _registry_path()
    with path.open("rb") as fh:
        raw = tomllib.load(fh).get("asr", {})
    allowed = set(AsrEntry.__dataclass_fields__) - {"id"}
    models = {}
    for model_id, fields in raw.get("models", {}).items():
        unknown = set(fields) - allowed
        if unknown:
            raise AsrError(f"recogniser {model_id!r} in {path}: unknown keys {sorted(unknown)}")
        models[model_id] = AsrEntry(id=model_id, **fields)
    profiles: dict[str, str | None] = {}
    for name, ref in raw.get("profiles", {}).items():
        value = str(ref).strip()
        profiles[name] = None if value.lower() in {"none", "off", ""} else value
    return AsrRegistry(models, profiles)


@dataclass(frozen=True)
class AsrSpec:
    """A resolved recogniser: what to load."""

    model: str
    backend: str = "transformers"
    revision: str | None = None
    entry: AsrEntry | None = None


ASR_OFF = frozenset({"off", "none", "no"})


def resolve_recognizer(ref: str) -> AsrSpec | None:
    """A recogniser reference: a registry id, a hub id[@revision], a local Whisper
    directory, or ``off``/``none`` (None)."""
    ref = ref.strip()
    if ref.lower() in ASR_OFF or not ref:
        return None
    model, _, revision = ref.partition("@")
    entries = asr_registry().models
    entry = entries.get(model)
    if entry is not None:
        return AsrSpec(entry.id, entry.backend, revision or entry.revision, entry)
    if model.startswith("embedded/"):
        known = ", ".join(k for k, e in entries.items() if e.backend == "embedded")
        raise AsrError(f"unknown embedded recogniser {model!r}; known: {known}")
    path = Path(model).expanduser()
    if path.exists() and not path.is_dir():
        raise AsrError(f"--asr {model!r} is a file; give a model directory or a hub id")
    if path.is_dir():
        return AsrSpec(str(path))
    if "/" not in model:
        raise AsrError(
            f"--asr {ref!r}: give auto, off, a registry id ({', '.join(entries)}), a hub id "
            "(org/name[@revision]) or a local Whisper directory"
        )
    return AsrSpec(model, revision=revision or None)


def profile_recognizer(profile: str) -> AsrSpec | None:
    """The recogniser a profile names (None: that profile does not transcribe)."""
    ref = asr_registry().profiles.get(profile)
    return None if ref is None else resolve_recognizer(ref)


def build_recognizer(
    spec: AsrSpec,
    device: str = "auto",
    dtype: str = "auto",
    cache_dir: str | None = None,
    allow_download: bool = False,
) -> SpeechRecognizer:
    """An (unloaded) recogniser for ``spec``."""
    if spec.backend == "embedded":
        if spec.model != EMBEDDED_ASR:
            raise AsrError(f"unknown embedded recogniser {spec.model!r}")
        from emoapp.encoders.embedded.asr_sphinx import SphinxRecognizer

        return SphinxRecognizer()
    from emoapp.encoders.base import EncoderConfig
    from emoapp.encoders.whisper import WhisperRecognizer

    return WhisperRecognizer(
        EncoderConfig(
            model=spec.model,
            revision=spec.revision,
            device=device,
            dtype=dtype,
            local_files_only=not allow_download,
            cache_dir=cache_dir,
        )
    )


# --- text normalisation for scoring --------------------------------------------------------

_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def normalise_words(text: str) -> list[str]:
    """Lower-case words with punctuation removed (how word error rates are scored)."""
    return _NON_WORD.sub(" ", text.lower().replace("-", " ")).split()
