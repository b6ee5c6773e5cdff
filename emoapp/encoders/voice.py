"""Voice encoder: classify the emotion in one window of speech with an audio classifier.

One input :class:`~emoapp.core.messages.AudioChunk` is one analysis window. Each window is
made mono float32 (multi-channel arrays are averaged, integer PCM is scaled), NaN/inf
samples are zeroed, and it is resampled to the feature extractor's rate (16 kHz for
wav2vec2-style models). A silent window, or one in which the voice-activity gate
(:mod:`emoapp.encoders.vad`) finds less than ``min_speech_s`` of speech, gives a
:class:`~emoapp.core.messages.NoPrediction` that says why; the rest are classified in
batches.

The caller makes the windows: :func:`sliding_windows` cuts a recording, and
:class:`WindowBuffer` turns a live stream of arbitrary-size chunks into windows, holding
at most one window of samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from emoapp.core.errors import ModelLoadError
from emoapp.core.messages import (
    AudioChunk,
    EncoderOutput,
    Modality,
    ModalityPrediction,
    NoPrediction,
)
from emoapp.encoders.base import EncoderConfig, Prepared, TransformersEncoder
from emoapp.encoders.heads import AUDIO_HEADS, HeadLayout
from emoapp.encoders.vad import VadKind, VoiceActivity, VoiceActivityGate, make_gate, rms_dbfs

MIN_WINDOW_S = 0.1
"""Shorter windows are refused: too short for a wav2vec2-style model to say anything."""
MAX_CHANNELS = 32
_MOSTLY_INVALID = 0.5  # share of NaN/inf samples above which a window is refused


@dataclass
class VoiceConfig:
    """How the voice encoder windows and gates audio."""

    window_s: float = 2.0
    """Length of one analysis window (used by :func:`sliding_windows` / :class:`WindowBuffer`
    when built from this config)."""
    hop_s: float = 0.5
    """Time between the starts of consecutive windows."""
    min_speech_s: float = 0.25
    """A window with less speech than this (by the gate) gives no prediction."""
    vad: VadKind = "silero"
    """``silero`` (falls back to ``energy`` when unavailable), ``energy`` or ``off``."""
    vad_threshold: float = 0.5
    """Silero speech probability at or above which a frame is speech."""
    energy_dbfs: float = -40.0
    """Frame level above which the energy gate calls a frame speech."""
    silence_dbfs: float = -60.0
    """A window whose overall level is below this is silence (no gate, no model)."""

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.hop_s <= 0:
            raise ValueError("window_s and hop_s must be positive")
        if self.min_speech_s < 0:
            raise ValueError("min_speech_s must not be negative")
        if self.vad not in ("silero", "energy", "off"):
            raise ValueError(f"vad must be silero, energy or off, not {self.vad!r}")


# --- waveform helpers -----------------------------------------------------------------


def to_mono_float32(samples: Any) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the number of channels they came from.

    Accepts 1-D arrays, ``(n, channels)`` and ``(channels, n)`` (the smaller axis is taken
    as channels), float or integer PCM (int16/int32 scaled to [-1, 1], uint8 centred).
    Raises ValueError for anything else.
    """
    x = np.asarray(samples)
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    elif x.dtype.kind == "u":
        half = float(2 ** (8 * x.dtype.itemsize - 1))
        x = (x.astype(np.float32) - half) / half
    elif x.dtype.kind in "fb":
        x = x.astype(np.float32, copy=False)
    else:
        raise ValueError(f"audio samples of type {x.dtype} cannot be used")
    if x.ndim == 1:
        return x, 1
    if x.ndim != 2:
        raise ValueError(f"audio samples must be 1-D or 2-D, not {x.ndim}-D")
    channel_axis = 0 if x.shape[0] <= x.shape[1] else 1
    channels = x.shape[channel_axis]
    if channels > MAX_CHANNELS:
        raise ValueError(f"audio array of shape {x.shape} does not look like (samples, channels)")
    if channels == 1:
        return x.reshape(-1), 1
    return x.mean(axis=channel_axis, dtype=np.float32), channels


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``samples`` at ``target_sr`` (librosa's default high-quality resampler)."""
    if orig_sr == target_sr:
        return samples
    import librosa

    return librosa.resample(samples, orig_sr=orig_sr, target_sr=target_sr).astype(np.float32)


def sliding_windows(
    samples: np.ndarray,
    sr: int,
    t0: float = 0.0,
    window_s: float = 2.0,
    hop_s: float = 0.5,
    source: str = "",
) -> Iterator[AudioChunk]:
    """Cut a recording into windows of ``window_s`` every ``hop_s`` seconds.

    Only whole windows are yielded (the tail shorter than a window after the last one is
    not), except that a recording shorter than one window is yielded whole, once. Window
    ``k`` starts at ``t0 + k * hop``, with hop rounded to whole samples.
    """
    if sr <= 0 or window_s <= 0 or hop_s <= 0:
        raise ValueError("sr, window_s and hop_s must be positive")
    mono, _ = to_mono_float32(samples)
    window = max(1, round(window_s * sr))
    hop = max(1, round(hop_s * sr))
    n = mono.size
    if n == 0:
        return
    if n < window:
        yield AudioChunk(t0, mono.copy(), sr, source)
        return
    for start in range(0, n - window + 1, hop):
        yield AudioChunk(t0 + start / sr, mono[start : start + window].copy(), sr, source)


def window_count(duration_s: float, window_s: float = 2.0, hop_s: float = 0.5) -> int:
    """How many windows :func:`sliding_windows` yields for a recording (sample rounding
    aside)."""
    if duration_s <= 0:
        return 0
    if duration_s < window_s:
        return 1
    return 1 + math.floor((duration_s - window_s) / hop_s + 1e-9)


class WindowBuffer:
    """Turns a live stream of audio chunks of any size into analysis windows.

    ``push`` returns the windows completed by a chunk, each with the capture time of its
    first sample. Memory is one window of samples, whatever the chunk sizes. A chunk that
    does not follow on from the previous one (a gap or overlap of more than
    ``gap_tolerance_s``, or a new sample rate) starts the buffer afresh. Times follow the
    chunks' own clock: each chunk re-anchors the buffered samples to its ``t``, so slow
    drift between the sound card and the clock does not accumulate.

    Not thread-safe: one producer (the audio worker) pushes.
    """

    def __init__(
        self, window_s: float = 2.0, hop_s: float = 0.5, gap_tolerance_s: float = 0.1
    ) -> None:
        if window_s <= 0 or hop_s <= 0:
            raise ValueError("window_s and hop_s must be positive")
        self.window_s = float(window_s)
        self.hop_s = float(hop_s)
        self.gap_tolerance_s = float(gap_tolerance_s)
        self.sample_rate: int | None = None
        self._buf = np.zeros(0, dtype=np.float32)
        self._filled = 0
        self._skip = 0  # samples to drop before filling (when hop > window)
        self._start_t = 0.0  # capture time of _buf[0]
        self._next_t: float | None = None  # expected t of the next chunk
        self._window = 0
        self._hop = 0

    @classmethod
    def from_config(cls, config: VoiceConfig) -> WindowBuffer:
        return cls(config.window_s, config.hop_s)

    @property
    def buffered_samples(self) -> int:
        return self._filled

    @property
    def capacity(self) -> int:
        """Samples held at most (one window), 0 before the first chunk."""
        return self._buf.size

    def reset(self) -> None:
        """Forget buffered audio (the next chunk starts a new stream)."""
        self._filled = 0
        self._skip = 0
        self._next_t = None

    def _start(self, chunk: AudioChunk) -> None:
        sr = int(chunk.sample_rate)
        if sr <= 0:
            raise ValueError(f"sample rate must be positive, not {sr}")
        if sr != self.sample_rate:
            self.sample_rate = sr
            self._window = max(1, round(self.window_s * sr))
            self._hop = max(1, round(self.hop_s * sr))
            self._buf = np.zeros(self._window, dtype=np.float32)
        self.reset()
        self._start_t = chunk.t

    def push(self, chunk: AudioChunk) -> list[AudioChunk]:
        """Add a chunk; return the windows it completes, oldest first."""
        samples, _ = to_mono_float32(chunk.samples)
        if (
            self._next_t is None
            or chunk.sample_rate != self.sample_rate
            or abs(chunk.t - self._next_t) > self.gap_tolerance_s
        ):
            self._start(chunk)
        sr = self.sample_rate
        assert sr is not None
        # Re-anchor the buffered samples to this chunk's clock.
        self._start_t = chunk.t - self._filled / sr
        self._next_t = chunk.t + samples.size / sr

        out: list[AudioChunk] = []
        pos = 0
        while pos < samples.size:
            if self._skip:
                step = min(self._skip, samples.size - pos)
                self._skip -= step
                pos += step
                self._start_t = chunk.t + pos / sr
                continue
            step = min(self._window - self._filled, samples.size - pos)
            self._buf[self._filled : self._filled + step] = samples[pos : pos + step]
            self._filled += step
            pos += step
            if self._filled == self._window:
                out.append(AudioChunk(self._start_t, self._buf.copy(), sr, chunk.source))
                self._advance()
        return out

    def _advance(self) -> None:
        sr = self.sample_rate
        assert sr is not None
        if self._hop < self._window:
            keep = self._window - self._hop
            self._buf[:keep] = self._buf[self._hop :]
            self._filled = keep
        else:
            self._filled = 0
            self._skip = self._hop - self._window
        self._start_t += self._hop / sr


# --- cleaning and gating windows (shared by every voice encoder) ----------------------


@dataclass
class _Window:
    """One window after cleaning, before the gate."""

    samples: np.ndarray
    detail: dict[str, Any]


def clean_window(item: Any, sampling_rate: int) -> _Window | str:
    """The window as mono float32 in [-1, 1] at ``sampling_rate`` (NaN/inf zeroed), or
    why it cannot be used."""
    if not isinstance(item, AudioChunk):
        return f"expected an AudioChunk, got {type(item).__name__}"
    if item.sample_rate <= 0:
        return f"invalid sample rate {item.sample_rate}"
    try:
        mono, channels = to_mono_float32(item.samples)
    except ValueError as exc:
        return str(exc)
    if mono.size == 0:
        return "empty audio window"
    duration = mono.size / item.sample_rate
    if duration < MIN_WINDOW_S:
        return f"audio window too short ({duration:.3f} s)"
    detail: dict[str, Any] = {
        "window_end": item.t + duration,
        "sample_rate": int(item.sample_rate),
        "channels": channels,
    }
    finite = np.isfinite(mono)
    bad = int(mono.size - np.count_nonzero(finite))
    if bad:
        if bad > _MOSTLY_INVALID * mono.size:
            return f"audio window is mostly invalid samples ({bad} of {mono.size} NaN/inf)"
        mono = np.where(finite, mono, np.float32(0.0))
        detail["non_finite_samples"] = bad
    mono = np.clip(mono, -1.0, 1.0)
    mono = resample(mono, int(item.sample_rate), sampling_rate)
    detail["resampled"] = int(item.sample_rate) != sampling_rate
    return _Window(np.ascontiguousarray(mono, dtype=np.float32), detail)


@dataclass
class GatedWindows:
    """Windows after cleaning and the voice-activity gate, by their index in the input."""

    speech: dict[int, _Window]
    """Windows with enough speech: these go to the model."""
    skipped: dict[int, str]
    """Why each other window gives no prediction (``silence``, ``no speech (...)``, ...)."""
    detail: dict[int, dict[str, Any]]
    """What was measured on every window that could be read (level, gate, window end)."""


def gate_windows(
    items: Sequence[Any],
    sampling_rate: int,
    voice: VoiceConfig,
    gate: VoiceActivityGate | None,
) -> GatedWindows:
    """Clean every window (:func:`clean_window`), call silent ones (overall level below
    ``voice.silence_dbfs``) ``silence``, and ask ``gate`` about the rest in one call: those
    with less than ``voice.min_speech_s`` of speech are ``no speech``. ``gate=None``
    passes every window that is not silent."""
    skipped: dict[int, str] = {}
    windows: dict[int, _Window] = {}
    for index, item in enumerate(items):
        cleaned = clean_window(item, sampling_rate)
        if isinstance(cleaned, str):
            skipped[index] = cleaned
            continue
        level = rms_dbfs(cleaned.samples)
        cleaned.detail["rms_dbfs"] = level
        if not np.any(cleaned.samples) or level < voice.silence_dbfs:
            skipped[index] = "silence"
            continue
        windows[index] = cleaned

    activity = _measure(gate, windows, sampling_rate)
    speech: dict[int, _Window] = {}
    for index, window in windows.items():
        act, vad_s = activity.get(index, (None, 0.0))
        window.detail["vad"] = act.method if act is not None else "off"
        window.detail["vad_s"] = vad_s
        if act is not None:
            window.detail["speech_fraction"] = act.speech_fraction
            window.detail["speech_prob"] = act.speech_prob
            window.detail["speech_s"] = act.speech_s
            if act.speech_s < voice.min_speech_s:
                skipped[index] = f"no speech (voice activity {act.speech_fraction:.2f})"
                continue
        speech[index] = window
    return GatedWindows(speech, skipped, {i: w.detail for i, w in windows.items()})


def _measure(
    gate: VoiceActivityGate | None, windows: dict[int, _Window], sampling_rate: int
) -> dict[int, tuple[VoiceActivity | None, float]]:
    """Gate every window in one call; the time is shared out evenly."""
    if gate is None or not windows:
        return {}
    started = time.perf_counter()
    found = gate.measure_many([w.samples for w in windows.values()], sampling_rate)
    each = (time.perf_counter() - started) / len(windows)
    return {i: (a, each) for i, a in zip(windows, found, strict=True)}


# --- the encoder ----------------------------------------------------------------------


class VoiceEncoder(TransformersEncoder):
    """Emotion classification of speech windows (``AudioChunk``), gated by voice activity.

    ``gate`` overrides the gate ``voice.vad`` asks for (tests, or a shared detector).
    """

    modality: ClassVar[Modality] = Modality.VOICE
    task: ClassVar[str] = "audio-classification"
    auto_model: ClassVar[str] = "AutoModelForAudioClassification"
    task_mapping: ClassVar[str] = "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES"
    head_layouts: ClassVar[Sequence[HeadLayout]] = AUDIO_HEADS

    def __init__(
        self,
        config: EncoderConfig,
        voice: VoiceConfig | None = None,
        gate: VoiceActivityGate | None = None,
    ) -> None:
        super().__init__(config)
        self.voice = voice or VoiceConfig()
        self.gate: VoiceActivityGate | None = gate
        self._gate_given = gate is not None
        self.sampling_rate = 16_000

    def load_processor(self, transformers: Any, source: str, kwargs: dict[str, Any]) -> Any:
        return transformers.AutoFeatureExtractor.from_pretrained(source, **kwargs)

    def after_load(self) -> None:
        # The rate audio is resampled to comes from the model's own feature extractor,
        # never from an assumption; one that states none, or another rate than the
        # registry describes for this model, is refused.
        rate = getattr(self.processor, "sampling_rate", None)
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            self.model = None
            raise ModelLoadError(
                f"model {self.model_id!r}: its feature extractor states no sampling rate "
                f"({rate!r}), so its audio cannot be prepared as it was trained"
            )
        expected = self.config.expected_sampling_rate
        if expected is not None and rate != expected:
            self.model = None
            raise ModelLoadError(
                f"model {self.model_id!r}: its feature extractor expects {rate} Hz audio, but "
                f"the registry describes this model at {expected} Hz; it is not the model "
                "the registry names (check the revision)"
            )
        self.sampling_rate = rate
        if not self._gate_given:
            self.gate = make_gate(self.voice.vad, self.voice.vad_threshold, self.voice.energy_dbfs)

    def _clean(self, item: Any) -> _Window | str:
        """The window as mono float32 at the model's rate, or why it cannot be used."""
        return clean_window(item, self.sampling_rate)

    def preprocess(self, items: Sequence[Any]) -> Prepared:
        prepared = Prepared()
        gated = gate_windows(items, self.sampling_rate, self.voice, self.gate)
        prepared.skipped.update(gated.skipped)
        # Equal lengths side by side, so batches need little padding.
        for index, window in sorted(gated.speech.items(), key=lambda r: r[1].samples.size):
            prepared.add(index, window.samples)
        prepared.extra["detail"] = gated.detail
        return prepared

    def collate(self, rows: list[np.ndarray]) -> dict[str, Any]:
        return dict(
            self.processor(
                rows, sampling_rate=self.sampling_rate, padding=True, return_tensors="pt"
            )
        )

    def postprocess(
        self, items: Sequence[Any], prepared: Prepared, probs: np.ndarray, latency_s: float
    ) -> list[EncoderOutput]:
        assert self.label_map is not None
        per_item = latency_s / max(1, len(items))
        row_of = {owner: row for row, owner in enumerate(prepared.owners)}
        details: dict[int, dict[str, Any]] = prepared.extra.get("detail", {})
        outputs: list[EncoderOutput] = []
        for index, item in enumerate(items):
            t = item.t if isinstance(item, AudioChunk) else 0.0
            if index not in row_of:
                reason = prepared.skipped.get(index, "no prediction")
                outputs.append(NoPrediction(Modality.VOICE, t, reason, self.model_id, per_item))
                continue
            p = probs[row_of[index]]
            outputs.append(
                ModalityPrediction(
                    modality=Modality.VOICE,
                    t=t,
                    t_end=details.get(index, {}).get("window_end"),
                    probs=p,
                    mask=self.label_map.mask.copy(),
                    confidence=float(p.max()),
                    model_id=self.model_id,
                    latency_s=per_item,
                    detail=details.get(index, {}),
                )
            )
        return outputs
