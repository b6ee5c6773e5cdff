"""Voice-activity gates: how much of an audio window is speech.

The voice encoder asks a gate about each window before it spends a model call on it: a
window with too little speech gives no prediction. Two gates share one protocol:

- :class:`SileroVAD`, the Silero VAD network (``silero-vad`` package, MIT), run on
  512-sample frames at 16 kHz with its state reset for every window;
- :class:`EnergyVAD`, an RMS threshold in dBFS per 32 ms frame: no model, no download, and
  the fallback when Silero is unavailable (:func:`make_gate` says so once on stderr).

Both report the share of the window's frames that are speech and the mean speech
probability. Inputs are mono float32 in [-1, 1]; any sample rate (Silero resamples to
16 kHz itself).
"""

from __future__ import annotations

import math
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from emoapp.core.errors import MissingDependencyError, ModelLoadError

VadKind = Literal["silero", "energy", "off"]

SILERO_RATE = 16_000
SILERO_FRAME = 512  # samples per Silero call at 16 kHz (32 ms)
_DBFS_FLOOR = -120.0


@dataclass(frozen=True, slots=True)
class VoiceActivity:
    """What a gate found in one window."""

    speech_fraction: float
    """Share of the window's frames judged speech, in [0, 1]."""
    speech_prob: float
    """Mean speech probability over the window's frames, in [0, 1]."""
    speech_s: float
    """Seconds of speech: ``speech_fraction`` times the window's duration."""
    method: str
    """Which gate measured it: ``silero`` or ``energy``."""


@runtime_checkable
class VoiceActivityGate(Protocol):
    """Anything that can say how much of a window is speech."""

    name: str

    def measure(self, samples: np.ndarray, sample_rate: int) -> VoiceActivity:
        """Voice activity of one mono window."""

    def measure_many(self, windows: Sequence[np.ndarray], sample_rate: int) -> list[VoiceActivity]:
        """Voice activity of several mono windows at one sample rate, in order."""


def rms_dbfs(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (a full-scale sine is -3 dBFS);
    -120 for silence or an empty array."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return _DBFS_FLOOR
    rms = math.sqrt(float(np.mean(x * x)))
    return max(_DBFS_FLOOR, 20.0 * math.log10(rms)) if rms > 0 else _DBFS_FLOOR


def _frame_activity(
    probs: np.ndarray, speech: np.ndarray, n_samples: int, sample_rate: int, method: str
) -> VoiceActivity:
    if probs.size == 0:
        return VoiceActivity(0.0, 0.0, 0.0, method)
    fraction = float(np.mean(speech))
    return VoiceActivity(
        speech_fraction=fraction,
        speech_prob=float(np.mean(probs)),
        speech_s=fraction * n_samples / sample_rate,
        method=method,
    )


class EnergyVAD:
    """Speech where a frame's RMS level is above ``threshold_dbfs``.

    Crude (a loud fan is "speech"), but it needs nothing. The per-frame probability is a
    logistic of the distance to the threshold (3 dB per step), so it is 0.5 at the
    threshold.
    """

    name = "energy"

    def __init__(self, threshold_dbfs: float = -40.0, frame_s: float = 0.032) -> None:
        if frame_s <= 0:
            raise ValueError("frame_s must be positive")
        self.threshold_dbfs = float(threshold_dbfs)
        self.frame_s = float(frame_s)

    def measure(self, samples: np.ndarray, sample_rate: int) -> VoiceActivity:
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        frame = max(1, round(self.frame_s * sample_rate))
        n_frames = math.ceil(x.size / frame)
        if n_frames == 0:
            return VoiceActivity(0.0, 0.0, 0.0, self.name)
        padded = np.zeros(n_frames * frame)
        padded[: x.size] = x
        frames = padded.reshape(n_frames, frame)
        # The last frame is partial: average over its real samples only.
        counts = np.full(n_frames, frame, dtype=np.float64)
        counts[-1] = x.size - (n_frames - 1) * frame
        rms = np.sqrt((frames * frames).sum(axis=1) / counts)
        with np.errstate(divide="ignore"):
            db = np.maximum(20.0 * np.log10(rms), _DBFS_FLOOR)
        probs = 1.0 / (1.0 + np.exp(-(db - self.threshold_dbfs) / 3.0))
        return _frame_activity(probs, db > self.threshold_dbfs, x.size, sample_rate, self.name)

    def measure_many(self, windows: Sequence[np.ndarray], sample_rate: int) -> list[VoiceActivity]:
        return [self.measure(w, sample_rate) for w in windows]


class SileroVAD:
    """The Silero VAD network (``silero-vad``, MIT licence; weights ship inside the package).

    Each gate owns one model; calls are serialised with a lock because the model keeps a
    recurrent state between frames. The state is reset for every window (or batch of
    windows of equal length, which run through the model together).
    """

    name = "silero"

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("the Silero speech threshold must be in (0, 1)")
        self.threshold = float(threshold)
        self._torch, self._model = _load_silero()
        self._lock = threading.Lock()
        self._sequence = _SequenceSilero.build(self._torch, self._model, self._loop_probs)

    def measure(self, samples: np.ndarray, sample_rate: int) -> VoiceActivity:
        return self.measure_many([samples], sample_rate)[0]

    def measure_many(self, windows: Sequence[np.ndarray], sample_rate: int) -> list[VoiceActivity]:
        prepared = [
            _to_16k(np.asarray(w, dtype=np.float32).reshape(-1), sample_rate) for w in windows
        ]
        results: list[VoiceActivity | None] = [None] * len(prepared)
        # Windows of equal length run as one batch (rows are independent streams).
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(prepared):
            by_length.setdefault(w.size, []).append(i)
        for length, indices in by_length.items():
            probs = self._frame_probs(np.stack([prepared[i] for i in indices]))
            for row, i in enumerate(indices):
                p = probs[row]
                results[i] = _frame_activity(p, p >= self.threshold, length, SILERO_RATE, self.name)
        return [r for r in results if r is not None]

    def frame_probs(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Speech probability of every 32 ms frame of one recording (state carried
        across frames, as in a stream): the frame-level view diarization needs."""
        x = _to_16k(np.asarray(samples, dtype=np.float32).reshape(-1), sample_rate)
        if x.size == 0:
            return np.zeros(0)
        return np.asarray(self._frame_probs(x[None, :])[0], dtype=np.float64)

    def _frame_probs(self, batch: np.ndarray) -> np.ndarray:
        """Speech probability per 512-sample frame: (n_windows, n_frames)."""
        if self._sequence is not None:
            with self._lock:
                return self._sequence.frame_probs(batch)
        return self._loop_probs(batch)

    def _loop_probs(self, batch: np.ndarray) -> np.ndarray:
        """The same, one model call per frame (Silero's own streaming interface)."""
        n_windows, n = batch.shape
        n_frames = math.ceil(n / SILERO_FRAME)
        if n_frames == 0:
            return np.zeros((n_windows, 0))
        padded = np.zeros((n_windows, n_frames * SILERO_FRAME), dtype=np.float32)
        padded[:, :n] = batch
        torch = self._torch
        x = torch.from_numpy(padded)
        out = np.empty((n_windows, n_frames))
        # optimized_execution(False): skips TorchScript's profiling warm-up, which costs
        # 3-8 s on the first calls of each instance and gains nothing for this small model.
        with self._lock, torch.inference_mode(), torch.jit.optimized_execution(False):
            self._model.reset_states()
            for f in range(n_frames):
                chunk = x[:, f * SILERO_FRAME : (f + 1) * SILERO_FRAME]
                out[:, f] = self._model(chunk, SILERO_RATE).reshape(-1).numpy()
            self._model.reset_states()
        return out


class _SequenceSilero:
    """Silero's 16 kHz model over whole windows in three calls instead of one call per
    32 ms frame: the STFT and conv encoder on every frame at once, the LSTM cell as one
    ``nn.LSTM`` over the frames, the decoder on every step at once. Same weights, same
    64-sample context per frame, state reset per window. 63 calls per 2 s window cost
    about 22 ms of CPU; this costs about 3 (docs/benchmarks.md).

    It reaches into the TorchScript module's submodules, so :meth:`build` checks it
    against the per-frame loop on a fixed probe and returns None (keep the loop) if the
    layout differs or the answers disagree."""

    CONTEXT = 64
    TOLERANCE = 1e-3

    def __init__(self, torch: Any, jit_model: Any) -> None:
        inner = jit_model._model
        self._torch = torch
        self._stft, self._encoder = inner.stft, inner.encoder
        self._head = inner.decoder.decoder
        cell = inner.decoder.rnn
        size = int(cell.weight_hh.shape[1])
        self._size = size
        self._lstm = torch.nn.LSTM(size, size, batch_first=True)
        with torch.no_grad():
            self._lstm.weight_ih_l0.copy_(cell.weight_ih)
            self._lstm.weight_hh_l0.copy_(cell.weight_hh)
            self._lstm.bias_ih_l0.copy_(cell.bias_ih)
            self._lstm.bias_hh_l0.copy_(cell.bias_hh)
        self._lstm.eval()

    @classmethod
    def build(cls, torch: Any, jit_model: Any, reference: Any) -> _SequenceSilero | None:
        rng = np.random.default_rng(0)
        t = np.arange(SILERO_RATE * 2) / SILERO_RATE
        voiced = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
        probe = np.stack([voiced, 0.05 * rng.standard_normal(t.size)]).astype(np.float32)
        try:
            sequence = cls(torch, jit_model)
            agree = np.abs(sequence.frame_probs(probe) - reference(probe)).max() < cls.TOLERANCE
        except (AttributeError, RuntimeError, TypeError, ValueError):
            return None
        return sequence if agree else None

    def frame_probs(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        n_windows, n = batch.shape
        n_frames = math.ceil(n / SILERO_FRAME)
        if n_frames == 0:
            return np.zeros((n_windows, 0))
        frames = np.zeros((n_windows, n_frames * SILERO_FRAME), dtype=np.float32)
        frames[:, :n] = batch
        frames = frames.reshape(n_windows, n_frames, SILERO_FRAME)
        context = np.zeros((n_windows, n_frames, self.CONTEXT), dtype=np.float32)
        context[:, 1:] = frames[:, :-1, -self.CONTEXT :]
        x = torch.from_numpy(np.concatenate([context, frames], axis=2))
        x = x.reshape(n_windows * n_frames, self.CONTEXT + SILERO_FRAME)
        with torch.inference_mode():
            feats = self._encoder(self._stft(x)).squeeze(-1)
            hidden, _ = self._lstm(feats.reshape(n_windows, n_frames, self._size))
            probs = self._head(hidden.reshape(n_windows * n_frames, self._size, 1))
        return probs.reshape(n_windows, n_frames).numpy().astype(np.float64)


def _to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == SILERO_RATE:
        return samples
    import librosa

    return librosa.resample(samples, orig_sr=sample_rate, target_sr=SILERO_RATE).astype(np.float32)


def _load_silero() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("torch", "the Silero voice-activity detector") from exc
    # Importing silero_vad calls torch.set_num_threads(1) for the whole process, which
    # would quietly make every other model single-threaded: put the setting back.
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    except ImportError as exc:
        raise MissingDependencyError("silero-vad", "the Silero voice-activity detector") from exc
    finally:
        torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            # silero-vad uses deprecated importlib.resources / torch.jit calls.
            warnings.simplefilter("ignore", DeprecationWarning)
            model = load_silero_vad()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"the Silero voice-activity model failed to load: {exc}") from exc
    return torch, model


_fallback_announced = False
_fallback_lock = threading.Lock()


def make_gate(
    kind: VadKind, threshold: float = 0.5, energy_dbfs: float = -40.0
) -> VoiceActivityGate | None:
    """The gate a voice config asks for; ``None`` for ``off``. ``silero`` falls back to
    :class:`EnergyVAD` when Silero cannot be loaded, and says so once on stderr."""
    global _fallback_announced
    if kind == "off":
        return None
    if kind == "energy":
        return EnergyVAD(energy_dbfs)
    if kind != "silero":
        raise ValueError(f"unknown voice-activity gate {kind!r}; choose silero, energy or off")
    try:
        return SileroVAD(threshold)
    except (MissingDependencyError, ModelLoadError) as exc:
        with _fallback_lock:
            if not _fallback_announced:
                _fallback_announced = True
                print(
                    f"emoapp: {exc}; voice activity uses an energy threshold "
                    f"({energy_dbfs:g} dBFS) instead",
                    file=sys.stderr,
                )
        return EnergyVAD(energy_dbfs)
