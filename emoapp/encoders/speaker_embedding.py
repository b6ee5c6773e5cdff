"""A pretrained speaker embedding that ships inside a PyPI wheel: Resemblyzer's voice
encoder (a GE2E-trained 3-layer LSTM over 40-band mel frames, 256-d L2-normalised output;
``resemblyzer/pretrained.pt``, Apache-2.0, Corentin Jemine).

The network is rebuilt here and the wheel's weights are loaded into it, rather than
importing ``resemblyzer`` itself: its package ``__init__`` imports ``webrtcvad``, which
needs ``pkg_resources`` (gone from current setuptools), and emoapp has its own voice-activity
gate. The mel front end, volume normalisation and partial-utterance slicing follow
``resemblyzer/audio.py`` and ``resemblyzer/voice_encoder.py`` (checked against them in
``tests/encoders/test_speaker_embedding.py`` where resemblyzer imports).

Used for who-spoke-when (diarization) and as speaker-identity features for the voice model.
torch and librosa are imported lazily.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from emoapp.core.errors import MissingDependencyError, ModelLoadError

SAMPLE_RATE = 16_000
MEL_WINDOW_MS = 25
MEL_STEP_MS = 10
MEL_BANDS = 40
PARTIAL_FRAMES = 160  # 1.6 s of 10 ms frames
EMBEDDING_SIZE = 256
TARGET_DBFS = -30.0
_INT16_MAX = 2**15


def weights_path() -> Path:
    """Where the installed resemblyzer wheel keeps ``pretrained.pt`` (found without
    importing the package)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("resemblyzer", "The speaker embedding")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise ModelLoadError(f"resemblyzer is installed but {path} is missing; reinstall it")
    return path


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise (never lower) the level to ``target_dbfs`` RMS, as resemblyzer does."""
    rms = float(np.sqrt(np.mean((wav.astype(np.float64) * _INT16_MAX) ** 2)))
    if rms <= 0.0:
        return wav
    change = target_dbfs - 20.0 * np.log10(rms / _INT16_MAX)
    if change < 0:
        return wav
    return (wav * (10.0 ** (change / 20.0))).astype(np.float32)


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power spectrogram (not log), 25 ms windows every 10 ms."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wav.astype(np.float32),
        sr=SAMPLE_RATE,
        n_fft=SAMPLE_RATE * MEL_WINDOW_MS // 1000,
        hop_length=SAMPLE_RATE * MEL_STEP_MS // 1000,
        n_mels=MEL_BANDS,
    )
    return mel.astype(np.float32).T


def partial_slices(
    n_samples: int, rate: float = 1.3, min_coverage: float = 0.75
) -> tuple[list[slice], list[slice]]:
    """Wave and mel slices of 1.6 s partial utterances, ``rate`` per second, the last one
    kept when it covers at least ``min_coverage`` (always at least one)."""
    if not 0 < min_coverage <= 1:
        raise ValueError("min_coverage must be in (0, 1]")
    samples_per_frame = SAMPLE_RATE * MEL_STEP_MS // 1000
    n_frames = int(np.ceil((n_samples + 1) / samples_per_frame))
    frame_step = int(np.round((SAMPLE_RATE / rate) / samples_per_frame))
    if not 0 < frame_step <= PARTIAL_FRAMES:
        raise ValueError(f"rate {rate} is outside what 1.6 s partials can cover")
    wav_slices: list[slice] = []
    mel_slices: list[slice] = []
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    for i in range(0, steps, frame_step):
        mel_slices.append(slice(i, i + PARTIAL_FRAMES))
        wav_slices.append(slice(i * samples_per_frame, (i + PARTIAL_FRAMES) * samples_per_frame))
    last = wav_slices[-1]
    coverage = (n_samples - last.start) / (last.stop - last.start)
    if coverage < min_coverage and len(mel_slices) > 1:
        mel_slices, wav_slices = mel_slices[:-1], wav_slices[:-1]
    return wav_slices, mel_slices


class SpeakerEmbedder:
    """Resemblyzer's pretrained speaker encoder on torch. Thread-safe; load once with
    :meth:`load` (a shared instance per device)."""

    _shared: ClassVar[dict[str, SpeakerEmbedder]] = {}
    _shared_lock = threading.Lock()

    def __init__(self, device: str = "cpu", weights: Path | None = None) -> None:
        try:
            import torch
            from torch import nn
        except ImportError as exc:  # pragma: no cover - torch is a dependency
            raise MissingDependencyError("torch", "The speaker embedding") from exc
        path = weights or weights_path()

        class _Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lstm = nn.LSTM(MEL_BANDS, 256, 3, batch_first=True)
                self.linear = nn.Linear(256, EMBEDDING_SIZE)

            def forward(self, mels: Any) -> Any:
                _, (hidden, _) = self.lstm(mels)
                raw = torch.relu(self.linear(hidden[-1]))
                return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

        net = _Net()
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = checkpoint["model_state"]
        except (OSError, RuntimeError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"cannot read the speaker encoder weights {path}: {exc}") from exc
        # The checkpoint also holds GE2E's similarity scale/bias (training only): anything
        # else missing or left over means the file is not the encoder we expect.
        extra = set(state) - set(net.state_dict()) - {"similarity_weight", "similarity_bias"}
        missing = set(net.state_dict()) - set(state)
        if extra or missing:
            raise ModelLoadError(
                f"{path} is not resemblyzer's voice encoder "
                f"(missing {sorted(missing)}, unexpected {sorted(extra)})"
            )
        net.load_state_dict({k: v for k, v in state.items() if k in net.state_dict()})
        net.eval().to(device)
        self._torch = torch
        self._net = net
        self.device = device
        self.weights = path
        self._lock = threading.Lock()

    @classmethod
    def load(cls, device: str = "cpu") -> SpeakerEmbedder:
        with cls._shared_lock:
            if device not in cls._shared:
                cls._shared[device] = cls(device)
            return cls._shared[device]

    def embed_mels(self, mels: np.ndarray) -> np.ndarray:
        """(n, frames, 40) mel batches -> (n, 256) L2-normalised embeddings."""
        torch = self._torch
        with self._lock, torch.inference_mode():
            out = self._net(torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32)))
            return out.cpu().numpy()

    def embed_partials(
        self, wav: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75
    ) -> tuple[np.ndarray, list[slice]]:
        """Embeddings of the 1.6 s partial utterances of ``wav`` (16 kHz mono float) and
        the sample ranges they cover."""
        wav = np.asarray(wav, dtype=np.float32).reshape(-1)
        if wav.size == 0:
            raise ValueError("no audio to embed")
        wav = normalize_volume(wav)
        wav_slices, mel_slices = partial_slices(len(wav), rate, min_coverage)
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
        mel = mel_frames(wav)
        mels = np.stack([mel[s] for s in mel_slices])
        return self.embed_mels(mels), wav_slices

    def embed(self, wav: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
        """One L2-normalised 256-d embedding of an utterance: the mean of its partials."""
        partials, _ = self.embed_partials(wav, rate, min_coverage)
        raw = partials.mean(axis=0)
        norm = float(np.linalg.norm(raw))
        return raw / norm if norm > 0 else raw
