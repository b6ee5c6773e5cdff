"""The embedded voice model: acoustic statistics of a 2 s window and a small classifier
trained by this project on RAVDESS speech (``scripts/train_embedded_voice.py``).

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
- the feature vector is standardised with the training set's mean and scale and goes
  through a softmax classifier (logistic regression or a one-hidden-layer MLP, in numpy).

The artefact folder holds ``weights.npz`` (arrays written deterministically) and
``meta.json`` with ``labels`` (raw labels in output order), ``features`` (the settings
below) and ``model`` (its kind), so training and inference share one feature function:
:func:`window_features`.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from emoapp.core.errors import MissingDependencyError, ModelLoadError
from emoapp.core.messages import AudioChunk, EncoderOutput, Modality, NoPrediction
from emoapp.encoders.embedded.base import EmbeddedEncoder
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


def softmax_classifier(x: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
    """Class probabilities of feature rows ``x`` (n, d): standardise, then a linear layer
    (logistic regression) or a ReLU hidden layer and a linear layer (MLP)."""
    z = (x - weights["mean"]) / weights["scale"]
    if "hidden_w" in weights:
        z = np.maximum(z @ weights["hidden_w"] + weights["hidden_b"], 0.0)
    logits = z @ weights["out_w"] + weights["out_b"]
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


class RavdessVoiceEncoder(EmbeddedEncoder):
    """Emotion of a speech window from acoustic statistics (see the module docstring).

    Windows arrive as :class:`AudioChunk` at any rate and channel count; they are made
    mono 16 kHz and gated exactly as by :class:`emoapp.encoders.voice.VoiceEncoder`:
    ``NoPrediction("silence")`` for a silent window, ``NoPrediction("no speech (...)")``
    when the voice-activity gate finds less than ``min_speech_s`` of speech.
    """

    modality: ClassVar[Modality] = Modality.VOICE

    def __init__(self, spec: ModelSpec, voice: Any = None, gate: Any = None) -> None:
        super().__init__(spec)
        from emoapp.encoders.voice import VoiceConfig

        self.voice = voice if voice is not None else VoiceConfig()
        self.gate = gate
        self._gate_given = gate is not None
        self.features: dict[str, Any] = dict(DEFAULT_FEATURES)
        self.weights: dict[str, np.ndarray] = {}

    def _load_artefact(self, folder: Path, meta: dict[str, Any]) -> None:
        features = meta.get("features")
        if not isinstance(features, dict):
            raise ModelLoadError(f"{folder}/meta.json has no feature settings")
        settings = {**DEFAULT_FEATURES, **features}
        if int(settings["sample_rate"]) != SAMPLE_RATE:
            raise ModelLoadError(f"{folder}: the model expects {SAMPLE_RATE} Hz features")
        n_features = len(feature_names(settings))
        self.weights = load_weights(folder / WEIGHTS, n_features, len(meta["labels"]))
        self.features = settings
        # Warm up librosa (lazy submodules, YIN) here rather than on the first window.
        probe = np.sin(2 * np.pi * 150 * np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE)
        window_features(probe.astype(np.float32), settings)
        if not self._gate_given:
            from emoapp.encoders.vad import make_gate

            self.gate = make_gate(self.voice.vad, self.voice.vad_threshold, self.voice.energy_dbfs)

    def probabilities(self, samples_16k: np.ndarray) -> np.ndarray:
        """Raw-label probabilities of one 16 kHz mono window (no gate)."""
        self.load()
        x = window_features(samples_16k, self.features)[None, :]
        return softmax_classifier(x, self.weights)[0]

    def encode(self, items: Sequence[AudioChunk]) -> list[EncoderOutput]:
        from emoapp.encoders.voice import gate_windows

        self.load()
        started = time.perf_counter()
        gated = gate_windows(items, SAMPLE_RATE, self.voice, self.gate)
        gate_each = (time.perf_counter() - started) / max(1, len(items))
        outputs: list[EncoderOutput] = []
        for index, item in enumerate(items):
            t = float(item.t) if isinstance(item, AudioChunk) else 0.0
            window = gated.speech.get(index)
            if window is None:
                reason = gated.skipped.get(index, "no prediction")
                outputs.append(NoPrediction(self.modality, t, reason, self.model_id, gate_each))
                continue
            began = time.perf_counter()
            x = window_features(window.samples, self.features)[None, :]
            raw = softmax_classifier(x, self.weights)[0]
            latency = gate_each + time.perf_counter() - began
            outputs.append(
                self.prediction(
                    t,
                    raw,
                    latency,
                    t_end=window.detail.get("window_end"),
                    detail=window.detail,
                )
            )
        return outputs
