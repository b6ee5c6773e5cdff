"""Per-word attributions for text predictions.

- :class:`LinearTextExplainer` (the embedded TF-IDF + logistic-regression model): exact.
  The model is linear in its features, so the label's centred, tempered logit splits over
  the words (:meth:`~emoapp.encoders.embedded.text.NgramTextEncoder.attributions`), with
  the entry's context and domain as the encoder read them (the context's own words'
  share is not shown); unit: logit.
- :class:`OcclusionTextExplainer` (any other text encoder, transformers or lexicon):
  each word's weight is how much the label's probability drops when that word alone is
  deleted and the text re-classified (all variants in one ``encode`` call); unit:
  probability. Texts longer than :data:`MAX_OCCLUDED_WORDS` words are explained over
  their first words only, and say so in ``method``.

Words are the text's whitespace-separated pieces, as written, with their offsets.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from emoapp.core.explanation import TextExplanation, WordWeight, require_expressible
from emoapp.core.messages import ModalityPrediction, TextEntry
from emoapp.core.taxonomy import LABEL_INDEX

MAX_OCCLUDED_WORDS = 128
_WORD = re.compile(r"\S+")


def _text_of(item: TextEntry | str) -> str:
    return item.text if isinstance(item, TextEntry) else str(item)


def word_spans(text: str) -> list[tuple[str, int]]:
    """The whitespace-separated words of ``text`` with their character offsets."""
    return [(m.group(), m.start()) for m in _WORD.finditer(text)]


class LinearTextExplainer:
    """Exact attributions of the embedded linear text model."""

    method = "exact-linear"

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def explain(
        self, item: TextEntry | str, prediction: ModalityPrediction, label: str | None = None
    ) -> TextExplanation:
        self.encoder.load()
        label = label or prediction.label
        require_expressible(label, prediction.mask, self.encoder.model_id)
        text = _text_of(item)
        context: tuple[str, ...] = ()
        domain = None
        if isinstance(item, TextEntry):
            # As the encoder read it: its context, and its domain where the model has it.
            context = item.context
            domain = item.domain if item.domain in getattr(self.encoder, "domains", {}) else None
        weights = self.encoder.attributions(text, label, context, domain)
        spans = word_spans(text)
        if len(spans) != len(weights):  # pragma: no cover - both split on whitespace
            raise ValueError("the text's words and the model's words differ")
        words = tuple(
            WordWeight(word, start, float(w))
            for (word, start), (_, w) in zip(spans, weights, strict=True)
        )
        return TextExplanation(
            prediction.t, self.encoder.model_id, self.method, label, words, unit="logit"
        )


class OcclusionTextExplainer:
    """Word-deletion attributions for any text encoder."""

    method = "occlusion"

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def label_probs(self, texts: list[str], label: str) -> np.ndarray:
        """The canonical probability of ``label`` for each text (0 where the encoder
        gives no prediction, e.g. for an empty text)."""
        index = LABEL_INDEX[label]
        outputs = self.encoder.encode(texts)
        return np.array(
            [o.probs[index] if isinstance(o, ModalityPrediction) else 0.0 for o in outputs]
        )

    def explain(
        self, item: TextEntry | str, prediction: ModalityPrediction, label: str | None = None
    ) -> TextExplanation:
        label = label or prediction.label
        require_expressible(label, prediction.mask, self.encoder.model_id)
        text = _text_of(item)
        spans = word_spans(text)
        explained = spans[:MAX_OCCLUDED_WORDS]
        variants = [
            text[:start] + text[start + len(word) :].lstrip(" ") for word, start in explained
        ]
        probs = self.label_probs([text, *variants], label) if explained else np.zeros(1)
        base = probs[0]
        words = tuple(
            WordWeight(word, start, float(base - p))
            for (word, start), p in zip(explained, probs[1:], strict=True)
        )
        method = self.method
        if len(spans) > len(explained):
            method += f" (first {MAX_OCCLUDED_WORDS} of {len(spans)} words)"
        return TextExplanation(
            prediction.t, self.encoder.model_id, method, label, words, unit="probability"
        )
