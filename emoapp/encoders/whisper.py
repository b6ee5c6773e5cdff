"""Whisper-family speech recognition through Hugging Face ``transformers``
(``AutoModelForSpeechSeq2Seq`` + ``AutoProcessor``), one speech segment at a time.

Device and dtype follow the other encoders (:func:`~emoapp.encoders.base.select_device`,
:func:`~emoapp.encoders.base.select_dtype`: float16 on CUDA); weights load from local
files only unless a download is allowed. Segments come from the voice-activity
segmenter and are at most 15 s (Whisper reads 30 s at once), so each transcript carries
its segment's time span (segment timestamps); multilingual checkpoints are told to
transcribe English. torch and transformers are imported only when the model loads.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.core.errors import MissingDependencyError, ModelLoadError
from emoapp.encoders.base import EncoderConfig, is_local_model, select_device, select_dtype
from emoapp.encoders.heard import ASR_RATE, HeardSegment, to_asr_rate
from emoapp.encoders.integrity import load_whole

MAX_NEW_TOKENS = 128
"""Enough for 15 s of fast speech (Whisper's tokens are about 0.75 of a word)."""


class WhisperRecognizer:
    """A Whisper checkpoint (hub id at a pinned revision, or a local directory)."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.model: Any = None
        self.processor: Any = None
        self.device: Any = None
        self.dtype: Any = None
        self._generate_kwargs: dict[str, Any] = {}
        self._max_new_tokens = MAX_NEW_TOKENS
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.config.model_name or self.config.model

    def load(self) -> None:
        with self._lock:
            if self.model is None:
                self._load()

    def _load(self) -> None:
        try:
            import transformers
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("transformers", "Whisper speech recognition") from exc
        local = is_local_model(self.config.model)
        source = str(Path(self.config.model).expanduser()) if local else self.config.model
        kwargs: dict[str, Any] = {"local_files_only": self.config.local_files_only}
        if self.config.cache_dir:
            kwargs["cache_dir"] = self.config.cache_dir
        if self.config.revision and not local:
            kwargs["revision"] = self.config.revision
        transformers.utils.logging.disable_progress_bar()
        # Whisper's generate warns on every call about settings it overrides itself
        # (max_length beside max_new_tokens, suppress_tokens): keep stderr for people.
        transformers.utils.logging.set_verbosity_error()
        try:
            processor = transformers.AutoProcessor.from_pretrained(source, **kwargs)
            model = load_whole(
                transformers, "AutoModelForSpeechSeq2Seq", source, kwargs, self.model_id
            ).model
        except ValueError as exc:
            raise ModelLoadError(
                f"speech recogniser {self.model_id!r} is not a speech-to-text model ({exc})"
            ) from exc
        except RuntimeError as exc:  # transformers' own refusals (weight conversion errors)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelLoadError(f"speech recogniser {self.model_id!r}: {first}") from exc
        except OSError as exc:
            if local or not self.config.local_files_only:
                raise ModelLoadError(f"speech recogniser {self.model_id!r}: {exc}") from exc
            raise ModelLoadError(
                f"speech recogniser {self.model_id!r} is not available locally; download it "
                f"once with `emoapp analyze ... --asr {self.model_id} --download` (or pass a "
                "local directory)"
            ) from exc
        if not hasattr(processor, "feature_extractor") or not hasattr(processor, "batch_decode"):
            raise ModelLoadError(f"speech recogniser {self.model_id!r} has no audio processor")
        self.device = select_device(self.config.device)
        self.dtype = select_dtype(self.config.dtype, self.device)
        model.eval()
        self.model = model.to(device=self.device, dtype=self.dtype)
        self.processor = processor
        positions = getattr(model.config, "max_target_positions", MAX_NEW_TOKENS + 8)
        self._max_new_tokens = max(1, min(MAX_NEW_TOKENS, int(positions) - 8))
        generation = getattr(model, "generation_config", None)
        if getattr(generation, "is_multilingual", False) and getattr(
            generation, "lang_to_id", None
        ):
            self._generate_kwargs = {"language": "en", "task": "transcribe"}

    def transcribe(self, samples: np.ndarray, sample_rate: int, t: float = 0.0) -> HeardSegment:
        self.load()
        torch = _torch()
        started = time.perf_counter()
        x = to_asr_rate(samples, sample_rate)
        end = t + x.size / ASR_RATE
        if x.size < ASR_RATE // 10:
            return HeardSegment(t, end, "", self.model_id, (), time.perf_counter() - started)
        features = self.processor.feature_extractor(
            x, sampling_rate=ASR_RATE, return_tensors="pt"
        ).input_features
        with self._lock:
            try:
                ids = self._generate(torch, features)
            except torch.cuda.OutOfMemoryError:
                if self.device is None or self.device.type == "cpu":
                    raise
                print(
                    "emoapp: the GPU ran out of memory; speech recognition runs on the CPU",
                    file=sys.stderr,
                )
                self.device, self.dtype = torch.device("cpu"), torch.float32
                self.model = self.model.to(device=self.device, dtype=self.dtype)
                ids = self._generate(torch, features)
        text = self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
        return HeardSegment(t, end, text, self.model_id, (), time.perf_counter() - started)

    def _generate(self, torch: Any, features: Any) -> Any:
        with torch.inference_mode():
            return self.model.generate(
                features.to(device=self.device, dtype=self.dtype),
                max_new_tokens=self._max_new_tokens,
                **self._generate_kwargs,
            ).cpu()


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("torch", "Whisper speech recognition") from exc
    return torch
