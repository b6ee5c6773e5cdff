"""Text encoder: classify a typed entry or transcript line with a sequence classifier.

Text longer than the model's maximum length is split into overlapping token chunks; the
chunks are classified in one batch and their probabilities averaged, weighted by chunk
length; a very long text is represented by at most ``max_chunks`` chunks spread evenly
over it. Empty or whitespace-only text gives no prediction and says so; characters that
are not valid Unicode (lone surrogates) are read as U+FFFD.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from emoapp.core.messages import (
    EncoderOutput,
    Modality,
    ModalityPrediction,
    NoPrediction,
    TextEntry,
)
from emoapp.encoders.base import Prepared, TransformersEncoder

_FALLBACK_MAX_LENGTH = 512


class TextEncoder(TransformersEncoder):
    """Emotion classification of text entries (``TextEntry`` or plain ``str``)."""

    modality: ClassVar[Modality] = Modality.TEXT
    task: ClassVar[str] = "text-classification"
    task_mapping: ClassVar[str] = "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"
    auto_model: ClassVar[str] = "AutoModelForSequenceClassification"

    max_length: int = _FALLBACK_MAX_LENGTH
    stride: int = 32
    max_chunks: int = 64
    """At most this many chunks of one text are classified, evenly spaced over it (a
    megabyte of text is thousands of chunks: minutes of CPU for one entry otherwise)."""

    def load_processor(self, transformers: Any, source: str, kwargs: dict[str, Any]) -> Any:
        return transformers.AutoTokenizer.from_pretrained(source, **kwargs)

    def after_load(self) -> None:
        limits = [
            getattr(self.model.config, "max_position_embeddings", None),
            getattr(self.processor, "model_max_length", None),
        ]
        usable = [int(x) for x in limits if isinstance(x, int) and 0 < x < 100_000]
        # RoBERTa-style models reserve 2 positions for the padding offset.
        limit = min(usable) if usable else _FALLBACK_MAX_LENGTH
        if getattr(self.model.config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
            limit = min(limit, int(self.model.config.max_position_embeddings) - 2)
        self.max_length = max(8, limit)
        self.stride = min(self.stride, self.max_length // 4)

    @staticmethod
    def _text_and_time(item: TextEntry | str) -> tuple[str, float]:
        if isinstance(item, TextEntry):
            return item.text, item.t
        return str(item), 0.0

    def preprocess(self, items: Sequence[TextEntry | str]) -> Prepared:
        prepared = Prepared()
        for index, item in enumerate(items):
            text, _ = self._text_and_time(item)
            if not text.strip():
                prepared.skipped[index] = "empty text"
                continue
            # Lone surrogates (command-line bytes that are not UTF-8) make the fast
            # tokenizer raise TypeError; they become U+FFFD like any undecodable byte.
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            # Overlapping windows of at most max_length tokens, special tokens included.
            encoded = self.processor(
                text,
                truncation=True,
                max_length=self.max_length,
                stride=self.stride,
                return_overflowing_tokens=True,
                padding=False,
            )
            chunks = [ids for ids in encoded["input_ids"] if ids]
            if not chunks:
                prepared.skipped[index] = "text has no tokens"
            if len(chunks) > self.max_chunks:
                prepared.extra.setdefault("chunks_total", {})[index] = len(chunks)
                keep = np.linspace(0, len(chunks) - 1, self.max_chunks).round().astype(int)
                chunks = [chunks[i] for i in keep]
            for ids in chunks:
                prepared.add(index, ids)
        return prepared

    def collate(self, rows: list[list[int]]) -> dict[str, Any]:
        return dict(
            self.processor.pad(
                {"input_ids": rows}, padding=True, return_tensors="pt", return_attention_mask=True
            )
        )

    def postprocess(
        self,
        items: Sequence[TextEntry | str],
        prepared: Prepared,
        probs: np.ndarray,
        latency_s: float,
    ) -> list[EncoderOutput]:
        assert self.label_map is not None
        outputs: list[EncoderOutput] = []
        owners = np.asarray(prepared.owners, dtype=int)
        lengths = np.asarray([len(r) for r in prepared.rows], dtype=np.float64)
        per_item = latency_s / max(1, len(items))
        for index, item in enumerate(items):
            _, t = self._text_and_time(item)
            if index in prepared.skipped:
                outputs.append(
                    NoPrediction(Modality.TEXT, t, prepared.skipped[index], self.model_id, per_item)
                )
                continue
            rows = owners == index
            p = np.average(probs[rows], axis=0, weights=lengths[rows])
            p = p / p.sum()
            outputs.append(
                ModalityPrediction(
                    modality=Modality.TEXT,
                    t=t,
                    probs=p,
                    mask=self.label_map.mask.copy(),
                    confidence=float(p.max()),
                    model_id=self.model_id,
                    latency_s=per_item,
                    detail={
                        "chunks": int(rows.sum()),
                        "chunks_total": int(
                            prepared.extra.get("chunks_total", {}).get(index, rows.sum())
                        ),
                    },
                )
            )
        return outputs
