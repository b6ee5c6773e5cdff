"""Which stretches of a voice window drove its label: occlusion over time.

The window is cleaned as the encoder cleans it (mono, the model's rate), cut into
stretches of ``slice_s`` (0.25 s by default), and re-classified once per stretch with
that stretch silenced (set to zero), all in one batch, with no voice-activity gate. A
stretch's weight is the drop in the label's canonical probability when it is silenced:
large where the label's evidence was, near zero where nothing the model used was,
negative where the stretch argued against the label.

Works for the embedded voice model (its features skip silent frames, so a silenced
stretch is left out of the window's statistics) and for transformers audio models.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from emoapp.core.explanation import VoiceExplanation, VoiceMoment, require_expressible
from emoapp.core.messages import AudioChunk, ModalityPrediction
from emoapp.core.taxonomy import LABEL_INDEX

DEFAULT_SLICE_S = 0.25


class OcclusionVoiceExplainer:
    """Time occlusion for :class:`~emoapp.encoders.embedded.voice.EmbeddedVoiceEncoder` and
    :class:`~emoapp.encoders.voice.VoiceEncoder`."""

    method = "occlusion"

    def __init__(self, encoder: Any, slice_s: float = DEFAULT_SLICE_S) -> None:
        if not slice_s > 0:
            raise ValueError("slice_s must be positive")
        self.encoder = encoder
        self.slice_s = slice_s

    def _rate(self) -> int:
        return int(getattr(self.encoder, "sampling_rate", 16_000))

    def window_probs(self, windows: list[np.ndarray]) -> np.ndarray:
        """Canonical probabilities (n x 7) of mono windows at the model's rate, ungated."""
        enc = self.encoder
        enc.load()
        if hasattr(enc, "classify_rows"):  # transformers
            return np.asarray(enc.classify_rows(windows))
        raw = np.stack([enc.probabilities(w) for w in windows])
        return np.asarray(enc.label_map.apply(raw))

    def explain(
        self, item: AudioChunk, prediction: ModalityPrediction, label: str | None = None
    ) -> VoiceExplanation:
        from emoapp.encoders.voice import clean_window

        label = label or prediction.label
        require_expressible(label, prediction.mask, self.encoder.model_id)
        self.encoder.load()
        rate = self._rate()
        cleaned = clean_window(item, rate)
        if isinstance(cleaned, str):
            raise ValueError(f"cannot explain this window: {cleaned}")
        samples = cleaned.samples
        step = max(1, round(self.slice_s * rate))
        count = max(1, math.ceil(samples.size / step))
        variants = [samples]
        for i in range(count):
            silenced = samples.copy()
            silenced[i * step : (i + 1) * step] = 0.0
            variants.append(silenced)
        p = self.window_probs(variants)[:, LABEL_INDEX[label]]
        moments = tuple(
            VoiceMoment(
                item.t + i * step / rate,
                item.t + min(samples.size, (i + 1) * step) / rate,
                float(p[0] - p[i + 1]),
            )
            for i in range(count)
        )
        return VoiceExplanation(prediction.t, self.encoder.model_id, self.method, label, moments)
