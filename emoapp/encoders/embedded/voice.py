"""The embedded voice model: acoustic statistics of a 2 s window (and, where the model
asks for it, a pretrained speaker embedding), adapted to the speaker, and a small
classifier trained by this project on five acted speech corpora
(``scripts/train_embedded_voice.py``).

Per window (16 kHz mono, after the same cleaning and voice-activity gate as the
transformers voice encoder, :func:`emoapp.encoders.voice.gate_windows`):

- a 512-point STFT (25 ms frames every 10 ms) gives a log-mel spectrogram, MFCCs and
  their deltas, spectral contrast, flatness, centroid, roll-off and the zero-crossing
  rate; the pitch track is librosa's YIN (vectorised numpy, no per-frame Python loop, so
  the window does not hold the GIL for long; pYIN is not used: it holds it ~100 ms);
- statistics (mean, spread, range) over the window's *active* frames (within
  ``active_db`` of the loudest frames), so leading or trailing silence does not dilute
  them. Loudness only enters relative to the window's own loudest frames: the level at
  which it was recorded (microphone gain, distance) does not move the features;
- optionally the 256-d speaker embedding of the window
  (:mod:`emoapp.encoders.speaker_embedding`) is appended;
- **per-speaker adaptation** (:mod:`emoapp.encoders.adaptation`): the vector is moved by
  the speaker's shrunk offset from the population reference, with statistics from the
  speaker's recording (offline: :meth:`EmbeddedVoiceEncoder.encode_speaker`), from a
  running estimate over the session's speech and/or a stored "calibrate to me" recording
  (live: :meth:`EmbeddedVoiceEncoder.encode`);
- the feature vector is standardised with the training set's mean and scale and goes
  through a softmax classifier (logistic regression or a one-hidden-layer MLP, in numpy),
  its logits divided by a temperature fitted on held-out data: one number, or (models
  whose ``meta.json`` has ``confidence``) one that depends on how familiar the speaker's
  statistics look (:mod:`emoapp.encoders.novelty`: the conservative end for a speaker
  with no statistics or little speech).

The artefact folder holds ``weights.npz`` (arrays written deterministically) and
``meta.json`` with ``labels`` (raw labels in output order), ``features`` (the settings
below) and ``model`` (its kind), so training and inference share one feature function:
:func:`window_features`.
"""

from __future__ import annotations

import threading
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from emoapp.core.errors import MissingDependencyError, ModelLoadError
from emoapp.core.messages import AudioChunk, EncoderOutput, Modality, NoPrediction
from emoapp.encoders.adaptation import AdaptationError, AdaptationSpec, SpeakerStats
from emoapp.encoders.embedded.base import EmbeddedEncoder
from emoapp.encoders.novelty import ARRAYS as NOVELTY_ARRAYS
from emoapp.encoders.novelty import NEUTRAL_ARRAYS, NoveltyTemperature
from emoapp.registry import ModelSpec

SAMPLE_RATE = 16_000
WEIGHTS = "weights.npz"

DEFAULT_FEATURES: dict[str, Any] = {
    "sample_rate": SAMPLE_RATE,
    "n_fft": 512,
    "win_length": 400,
    "hop_length": 160,
    "n_mels": 40,
    "n_mfcc": 20,
    "delta_width": 9,
    "pitch_fmin_hz": 65.0,
    "pitch_fmax_hz": 500.0,
    "pitch_frame_length": 1024,
    "active_db": 35.0,
    "mel_means": False,
}
"""Feature settings; the trained model's own are in its ``meta.json``."""

_EPS = 1e-10


def _librosa() -> Any:
    try:
        import librosa
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("librosa", "the embedded voice model") from exc
    return librosa


_MEL_CACHE: dict[tuple[int, int, int], np.ndarray] = {}


def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    key = (sr, n_fft, n_mels)
    basis = _MEL_CACHE.get(key)
    if basis is None:
        basis = _librosa().filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float64)
        _MEL_CACHE[key] = basis
    return basis


def _stats(x: np.ndarray) -> list[float]:
    """Mean and standard deviation along the frames (last axis)."""
    return [*np.mean(x, axis=-1).ravel(), *np.std(x, axis=-1).ravel()]


def feature_names(settings: Mapping[str, Any] | None = None) -> list[str]:
    """Names of :func:`window_features`' outputs, in order."""
    s = {**DEFAULT_FEATURES, **(settings or {})}
    n = int(s["n_mfcc"])
    names = [f"mfcc{i}_mean" for i in range(1, n)] + [f"mfcc{i}_std" for i in range(1, n)]
    names += [f"dmfcc{i}_std" for i in range(1, n)]
    names += ["energy_std", "energy_range", "denergy_std"]
    names += [f"contrast{i}_mean" for i in range(7)] + [f"contrast{i}_std" for i in range(7)]
    for what in ("flatness", "centroid_khz", "rolloff_khz", "zcr"):
        names += [f"{what}_mean", f"{what}_std"]
    names += ["f0_median_st", "f0_range_st", "f0_std_st", "f0_slope_std", "voiced_fraction"]
    names += ["active_fraction"]
    if s["mel_means"]:
        names += [f"mel{i}_rel_mean" for i in range(int(s["n_mels"]))]
    return names


def window_features(samples: np.ndarray, settings: Mapping[str, Any] | None = None) -> np.ndarray:
    """The feature vector (float64) of one mono window at ``settings['sample_rate']``.

    Every statistic is taken over the active frames; none depends on the recording level
    (a window scaled by any non-zero gain gives the same features, up to rounding).
    """
    librosa = _librosa()
    s = {**DEFAULT_FEATURES, **(settings or {})}
    sr, hop = int(s["sample_rate"]), int(s["hop_length"])
    n_fft, n_mfcc = int(s["n_fft"]), int(s["n_mfcc"])
    y = np.asarray(samples, dtype=np.float32).reshape(-1)
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    y = y - np.float32(y.mean())
    peak = float(np.max(np.abs(y)))
    if peak > 0:  # level-free from the start (also keeps YIN's thresholds meaningful)
        y = y / np.float32(peak)

    mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=int(s["win_length"])))
    mag = mag.astype(np.float64)
    power = mag**2
    mel_db = 10.0 * np.log10(_mel_basis(sr, n_fft, int(s["n_mels"])) @ power + _EPS)
    frame_db = 10.0 * np.log10(power.sum(axis=0) + _EPS)
    ref = float(np.percentile(frame_db, 95))
    active = frame_db > ref - float(s["active_db"])
    if active.sum() < 3:
        active = np.ones_like(active)

    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc)[1:]  # c0 is level: see energy
    width = int(s["delta_width"])
    if mfcc.shape[1] < width:
        width = max(3, mfcc.shape[1] // 2 * 2 - 1)
    dmfcc = librosa.feature.delta(mfcc, width=width, mode="nearest")
    energy = frame_db - ref
    denergy = np.diff(energy, prepend=energy[:1])
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n_fft)
    flatness = librosa.feature.spectral_flatness(S=mag)
    centroid = librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=n_fft) / 1000.0
    rolloff = librosa.feature.spectral_rolloff(S=mag, sr=sr, n_fft=n_fft) / 1000.0
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=int(s["win_length"]), hop_length=hop)

    fmin, fmax = float(s["pitch_fmin_hz"]), float(s["pitch_fmax_hz"])
    f0 = librosa.yin(
        y, fmin=fmin, fmax=fmax, sr=sr, frame_length=int(s["pitch_frame_length"]), hop_length=hop
    )
    n = min(f0.size, active.size, zcr.shape[1])
    # YIN gives a pitch for every frame: keep active, periodic-looking frames whose
    # estimate is not stuck at the search limits.
    voiced = active[:n] & (zcr[0, :n] < 0.25) & (f0[:n] > fmin * 1.05) & (f0[:n] < fmax * 0.95)
    if voiced.sum() >= 3:
        st = 12.0 * np.log2(f0[:n][voiced] / 100.0)
        p10, p50, p90 = np.percentile(st, [10, 50, 90])
        slope = np.clip(np.diff(st), -2.0, 2.0) if st.size > 1 else np.zeros(1)
        pitch = [p50, p90 - p10, float(np.std(st)), float(np.std(slope))]
    else:
        pitch = [0.0, 0.0, 0.0, 0.0]
    voiced_fraction = float(voiced.sum()) / max(1, int(active[:n].sum()))

    a = active
    out: list[float] = []
    out += _stats(mfcc[:, a])
    out += list(np.std(dmfcc[:, a], axis=1))
    e = energy[a]
    out += [float(np.std(e)), float(np.percentile(e, 90) - np.percentile(e, 10))]
    out += [float(np.std(denergy[a]))]
    out += _stats(contrast[:, a])
    for feat in (flatness, centroid, rolloff, zcr):
        out += _stats(feat[:, a])
    out += [*pitch, voiced_fraction]
    out += [float(a.mean())]
    if s["mel_means"]:
        out += list(np.mean(mel_db[:, a], axis=1) - ref)
    vec = np.asarray(out, dtype=np.float64)
    return np.where(np.isfinite(vec), vec, 0.0)


# --- the classifier -------------------------------------------------------------------


def softmax_classifier(
    x: np.ndarray, weights: Mapping[str, np.ndarray], temperature: float = 1.0
) -> np.ndarray:
    """Class probabilities of feature rows ``x`` (n, d): standardise, then a linear layer
    (logistic regression) or a ReLU hidden layer and a linear layer (MLP); the logits are
    divided by ``temperature``."""
    z = (x - weights["mean"]) / weights["scale"]
    if "hidden_w" in weights:
        z = np.maximum(z @ weights["hidden_w"] + weights["hidden_b"], 0.0)
    logits = (z @ weights["out_w"] + weights["out_b"]) / temperature
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def load_weights(path: Path, n_features: int, n_labels: int) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = {k: np.asarray(data[k], dtype=np.float64) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path} cannot be read: {exc}") from exc
    missing = {"mean", "scale", "out_w", "out_b"} - set(weights)
    if missing:
        raise ModelLoadError(f"{path} lacks {', '.join(sorted(missing))}")
    width = weights["hidden_w"].shape[1] if "hidden_w" in weights else n_features
    if (
        weights["mean"].shape != (n_features,)
        or weights["scale"].shape != (n_features,)
        or weights["out_w"].shape != (width, n_labels)
        or weights["out_b"].shape != (n_labels,)
    ):
        raise ModelLoadError(
            f"{path}: weight shapes do not fit {n_features} features and {n_labels} labels"
        )
    return weights


@dataclass
class _Described:
    """A gated window's feature vector, or why it has none."""

    t: float
    vector: np.ndarray | None
    reason: str
    latency_s: float
    t_end: float | None = None
    detail: dict[str, Any] | None = None
    seconds: float = 0.0


class EmbeddedVoiceEncoder(EmbeddedEncoder):
    """Emotion of a speech window from acoustic statistics (see the module docstring).

    Windows arrive as :class:`AudioChunk` at any rate and channel count; they are made
    mono 16 kHz and gated exactly as by :class:`emoapp.encoders.voice.VoiceEncoder`:
    ``NoPrediction("silence")`` for a silent window, ``NoPrediction("no speech (...)")``
    when the voice-activity gate finds less than ``min_speech_s`` of speech.

    Adaptation state (models whose ``meta.json`` has ``adaptation``):

    - :meth:`encode` (live, and any caller that sees one stream): each window is
      classified with the statistics known so far (a stored calibration set with
      :meth:`set_calibration`, plus the running estimate over the speech heard so far
      when ``running`` is on), then added to the running estimate;
    - :meth:`encode_speaker` (offline): the windows of one speaker (a file, a channel, a
      diarized speaker) are described first, their statistics estimated, then every
      window classified with them.
    """

    modality: ClassVar[Modality] = Modality.VOICE

    def __init__(
        self, spec: ModelSpec, voice: Any = None, gate: Any = None, running: bool = True
    ) -> None:
        super().__init__(spec)
        from emoapp.encoders.voice import VoiceConfig

        self.voice = voice if voice is not None else VoiceConfig()
        self.gate = gate
        self._gate_given = gate is not None
        self.features: dict[str, Any] = dict(DEFAULT_FEATURES)
        self.weights: dict[str, np.ndarray] = {}
        self.temperature = 1.0
        self.speaker_embedding = False
        self.adaptation: AdaptationSpec | None = None
        self.novelty_temperature: NoveltyTemperature | None = None
        self.running_enabled = running
        self._state_lock = threading.Lock()
        self._running: SpeakerStats | None = None
        self._calibration: SpeakerStats | None = None

    # --- loading ------------------------------------------------------------------------

    def _load_artefact(self, folder: Path, meta: dict[str, Any]) -> None:
        features = meta.get("features")
        if not isinstance(features, dict):
            raise ModelLoadError(f"{folder}/meta.json has no feature settings")
        settings = {**DEFAULT_FEATURES, **features}
        if int(settings["sample_rate"]) != SAMPLE_RATE:
            raise ModelLoadError(f"{folder}: the model expects {SAMPLE_RATE} Hz features")
        self.speaker_embedding = bool(meta.get("speaker_embedding", False))
        n_features = len(feature_names(settings)) + (256 if self.speaker_embedding else 0)
        temperature = float(meta.get("temperature", 1.0))
        if not temperature > 0:
            raise ModelLoadError(f"{folder}/meta.json: temperature must be positive")
        n_inputs = n_features
        if "adaptation" in meta:
            try:
                spec = AdaptationSpec.from_json(meta["adaptation"])
            except AdaptationError as exc:
                raise ModelLoadError(f"{folder}/meta.json: {exc}") from exc
            if spec.size != n_features:
                raise ModelLoadError(f"{folder}/meta.json: adaptation does not fit the features")
            self.adaptation = spec
            n_inputs = spec.input_size
        weights = load_weights(folder / WEIGHTS, n_inputs, len(meta["labels"]))
        arrays = {k: weights.pop(k) for k in NOVELTY_ARRAYS + NEUTRAL_ARRAYS if k in weights}
        confidence = None
        if "confidence" in meta:
            if self.adaptation is None:
                raise ModelLoadError(
                    f"{folder}/meta.json: a speaker-dependent temperature needs adaptation"
                )
            try:
                confidence = NoveltyTemperature.from_artefact(meta["confidence"], arrays)
            except AdaptationError as exc:
                raise ModelLoadError(f"{folder}: {exc}") from exc
            if confidence.size != self.adaptation.size:
                raise ModelLoadError(f"{folder}: the novelty reference does not fit the features")
        self.weights = weights
        self.features = settings
        self.temperature = temperature
        self.novelty_temperature = confidence
        if self.speaker_embedding:
            from emoapp.encoders.speaker_embedding import SpeakerEmbedder

            self._embedder = SpeakerEmbedder.load()
        # Warm up librosa (lazy submodules, YIN) here rather than on the first window.
        probe = np.sin(2 * np.pi * 150 * np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE)
        self.vector(probe.astype(np.float32))
        if not self._gate_given:
            from emoapp.encoders.vad import make_gate

            self.gate = make_gate(self.voice.vad, self.voice.vad_threshold, self.voice.energy_dbfs)

    # --- features and classification ---------------------------------------------------

    def vector(self, samples_16k: np.ndarray) -> np.ndarray:
        """The model's input vector of one 16 kHz mono window (before adaptation)."""
        x = window_features(samples_16k, self.features)
        if self.speaker_embedding:
            x = np.concatenate([x, self._embedder.embed(samples_16k).astype(np.float64)])
        return x

    def temperature_for(self, stats: SpeakerStats | None) -> float:
        """The temperature for a speaker with these statistics: the speaker-dependent one
        (:mod:`emoapp.encoders.novelty`; its conservative end with no statistics) where
        the model has it, else the model's single temperature."""
        if self.novelty_temperature is None:
            return self.temperature
        return self.novelty_temperature.temperature(stats)

    def classify(self, x: np.ndarray, stats: SpeakerStats | None = None) -> np.ndarray:
        """Raw-label probabilities of input vectors ``x`` (n, d), adapted with ``stats``
        (None: the population model) at :meth:`temperature_for` ``stats``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if self.adaptation is not None:
            x = self.adaptation.inputs(x, stats)
        return softmax_classifier(x, self.weights, self.temperature_for(stats))

    def probabilities(
        self, samples_16k: np.ndarray, stats: SpeakerStats | None = None
    ) -> np.ndarray:
        """Raw-label probabilities of one 16 kHz mono window (no gate)."""
        self.load()
        return self.classify(self.vector(samples_16k)[None, :], stats)[0]

    # --- adaptation state ---------------------------------------------------------------

    @property
    def adaptive(self) -> bool:
        self.load()
        return self.adaptation is not None

    def set_calibration(self, stats: SpeakerStats | None) -> None:
        """Use a "calibrate to me" recording's statistics (None: forget them)."""
        self.load()
        if stats is not None:
            if self.adaptation is None:
                raise AdaptationError(f"{self.model_id} does not adapt to speakers")
            self.adaptation.check(stats)
        with self._state_lock:
            self._calibration = stats

    def reset_adaptation(self, calibration: bool = True) -> None:
        """Forget the running estimate (and the calibration): on consent withdrawal, or a
        new speaker."""
        with self._state_lock:
            self._running = None
            if calibration:
                self._calibration = None

    def current_stats(self) -> SpeakerStats | None:
        """What :meth:`encode` adapts with now: the calibration (each of its windows
        counting ``calibration_weight``) plus the running estimate."""
        with self._state_lock:
            stats = None
            if self._calibration is not None and self.adaptation is not None:
                stats = self._calibration.scaled(self.adaptation.calibration_weight)
            if self._running is not None:
                stats = (
                    self._running.merged(stats) if stats is None else stats.merged(self._running)
                )
            return stats

    def calibration_stats(self, samples_16k: np.ndarray) -> SpeakerStats:
        """Statistics of a neutral reference recording (any length; cut into the model's
        windows and gated like any other speech)."""
        from emoapp.encoders.voice import sliding_windows

        self.load()
        if self.adaptation is None:
            raise AdaptationError(f"{self.model_id} does not adapt to speakers")
        windows = list(
            sliding_windows(samples_16k, SAMPLE_RATE, 0.0, self.voice.window_s, self.voice.hop_s)
        )
        described = [d for d in self._describe(windows) if d.vector is not None]
        if not described:
            raise AdaptationError("no speech found in the calibration recording")
        stats = SpeakerStats.empty(self.adaptation.size, "calibration")
        for d in described:
            stats.add(d.vector, 1.0, self.voice.hop_s)  # type: ignore[arg-type]
        stats.seconds = len(samples_16k) / SAMPLE_RATE
        stats.reading = stats.weight  # all of it is a neutral reading
        return stats

    # --- encoding -----------------------------------------------------------------------

    def _describe(self, items: Sequence[AudioChunk]) -> list[_Described]:
        from emoapp.encoders.voice import gate_windows

        started = time.perf_counter()
        gated = gate_windows(items, SAMPLE_RATE, self.voice, self.gate)
        gate_each = (time.perf_counter() - started) / max(1, len(items))
        out: list[_Described] = []
        for index, item in enumerate(items):
            t = float(item.t) if isinstance(item, AudioChunk) else 0.0
            window = gated.speech.get(index)
            if window is None:
                reason = gated.skipped.get(index, "no prediction")
                out.append(_Described(t, None, reason, gate_each))
                continue
            began = time.perf_counter()
            x = self.vector(window.samples)
            out.append(
                _Described(
                    t,
                    x,
                    "",
                    gate_each + time.perf_counter() - began,
                    window.detail.get("window_end"),
                    window.detail,
                    len(window.samples) / SAMPLE_RATE,
                )
            )
        return out

    def _output(self, d: _Described, raw: np.ndarray, extra_s: float) -> EncoderOutput:
        return self.prediction(d.t, raw, d.latency_s + extra_s, t_end=d.t_end, detail=d.detail)

    def encode(self, items: Sequence[AudioChunk]) -> list[EncoderOutput]:
        self.load()
        outputs: list[EncoderOutput] = []
        for d in self._describe(items):
            if d.vector is None:
                outputs.append(
                    NoPrediction(self.modality, d.t, d.reason, self.model_id, d.latency_s)
                )
                continue
            began = time.perf_counter()
            stats = self.current_stats() if self.adaptation is not None else None
            raw = self.classify(d.vector[None, :], stats)[0]
            if self.adaptation is not None and self.running_enabled:
                with self._state_lock:
                    if self._running is None:
                        self._running = SpeakerStats.empty(self.adaptation.size, "running")
                    self._running.add(d.vector, 1.0, self.voice.hop_s)
            outputs.append(self._output(d, raw, time.perf_counter() - began))
        return outputs

    def encode_speaker(self, groups: Iterable[Sequence[AudioChunk]]) -> list[list[EncoderOutput]]:
        """Outputs for every window of one speaker's recordings (one group per file or
        segment), adapted with statistics estimated from all of them (shrunk toward the
        population as :class:`AdaptationSpec` says). Leaves the live state alone.
        ``groups`` may be a generator: it is read once, each group described as it comes
        and only its feature vectors kept (a long recording in batches of windows)."""
        self.load()
        described = [self._describe(list(g)) for g in groups]
        stats = None
        if self.adaptation is not None:
            stats = SpeakerStats.empty(self.adaptation.size, "recording")
            for group in described:
                for d in group:
                    if d.vector is not None:
                        stats.add(d.vector, 1.0, self.voice.hop_s)
        results: list[list[EncoderOutput]] = []
        for group in described:
            outs: list[EncoderOutput] = []
            for d in group:
                if d.vector is None:
                    outs.append(
                        NoPrediction(self.modality, d.t, d.reason, self.model_id, d.latency_s)
                    )
                    continue
                began = time.perf_counter()
                raw = self.classify(d.vector[None, :], stats)[0]
                outs.append(self._output(d, raw, time.perf_counter() - began))
            results.append(outs)
        return results


RavdessVoiceEncoder = EmbeddedVoiceEncoder
"""The former name (the first embedded voice model was trained on RAVDESS alone)."""
