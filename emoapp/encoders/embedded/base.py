"""What every embedded encoder shares: its registry spec, its verified artefact, the
label map from the artefact's raw labels, ``info()`` and building predictions."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from emoapp.core.labelmap import LabelMap, build_label_map
from emoapp.core.messages import FaceDetection, Modality, ModalityPrediction
from emoapp.core.taxonomy import valence_arousal
from emoapp.encoders.base import EncoderInfo
from emoapp.encoders.embedded.artefacts import load_meta
from emoapp.registry import ModelSpec


class EmbeddedEncoder:
    """Base of the embedded encoders. Subclasses set ``modality`` and implement
    ``_load_artefact(folder, meta)`` and ``encode(items)``; they build outputs with
    :meth:`prediction` from probabilities over their raw labels."""

    modality: ClassVar[Modality]
    baseline: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.folder: Path | None = None
        self.meta: dict[str, Any] = {}
        self.label_map: LabelMap | None = None
        self._load_lock = threading.Lock()
        self._loaded = False

    @property
    def model_id(self) -> str:
        return self.spec.model

    def load(self) -> None:
        if self._loaded:
            return
        with self._load_lock:
            if self._loaded:
                return
            folder, meta = load_meta(self.model_id)
            self.label_map = build_label_map(
                self.model_id, list(meta["labels"]), self.spec.label_overrides
            )
            self._load_artefact(folder, meta)
            self.folder, self.meta = folder, meta
            self._loaded = True

    def _load_artefact(self, folder: Path, meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def info(self) -> EncoderInfo:
        return EncoderInfo(
            modality=self.modality,
            model_id=self.model_id,
            device="cpu",
            dtype="float32",
            baseline=False,
            label_mapping=self.label_map.describe() if self.label_map else [],
            revision=self.meta.get("version"),
            source=f"built in (no download): {self.folder}" if self.folder else "built in",
        )

    def prediction(
        self,
        t: float,
        raw_probs: np.ndarray,
        latency_s: float,
        *,
        t_end: float | None = None,
        faces: tuple[FaceDetection, ...] = (),
        detail: dict[str, Any] | None = None,
    ) -> ModalityPrediction:
        """A prediction from probabilities over the model's raw labels."""
        assert self.label_map is not None, "load() first"
        probs = self.label_map.apply(np.asarray(raw_probs, dtype=np.float64))
        valence, arousal = valence_arousal(probs) if np.all(np.isfinite(probs)) else (None, None)
        return ModalityPrediction(
            modality=self.modality,
            t=t,
            probs=probs,
            mask=self.label_map.mask.copy(),
            confidence=float(np.max(probs)) if np.all(np.isfinite(probs)) else float("nan"),
            model_id=self.model_id,
            latency_s=latency_s,
            valence=valence,
            arousal=arousal,
            faces=faces,
            baseline=False,
            detail=detail or {},
            t_end=t_end,
        )
