"""What an explanation of one prediction is: where a face model looked, which words moved a
text model, which stretches of a voice window drove a voice model.

These are descriptions of the *model*, for the label it predicted: a saliency grid says
which parts of the face crop the network's evidence for "angry" came from, not why a
person feels anything, nor that the person feels it. They are made on demand by the
explainers in :mod:`emoapp.encoders.explain` and written in timeline rows by
:func:`explanation_entry` (numbers only: never pixels; words only when the person opted
in to exporting text).

An explanation exists only for a label the model can express (its mask):
:func:`require_expressible` refuses any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX

GRID = 7
"""Rows and columns of the face saliency grid written in rows and drawn in the window."""

_DIGITS = 4

EXPLANATION = "explanation"
"""The key of a prediction's ``detail`` that holds its explanation."""
EXPLANATION_ERROR = "explanation_error"
"""The key of a prediction's ``detail`` that says why it has no explanation."""


class NotExpressibleError(ValueError):
    """An explanation was asked for a label the model cannot express."""


def require_expressible(label: str, mask: np.ndarray, model_id: str = "the model") -> int:
    """The canonical index of ``label``; raises :class:`NotExpressibleError` when the
    model's ``mask`` excludes it (a model says nothing about such a label, so there is
    nothing of its to explain) and ValueError for an unknown label."""
    if label not in LABEL_INDEX:
        raise ValueError(f"unknown label {label!r} (labels: {', '.join(CANONICAL_LABELS)})")
    index = LABEL_INDEX[label]
    if not bool(mask[index]):
        raise NotExpressibleError(f"{model_id} cannot express {label!r}: nothing to explain")
    return index


@dataclass(frozen=True, eq=False)
class FaceSaliency:
    """Where the face model looked in one face crop, for ``label``: a ``GRID`` x ``GRID``
    array over the crop (row 0 at the top), non-negative, its largest cell 1 (all zero
    when no region raised the label's score)."""

    box: tuple[int, int, int, int]
    label: str
    grid: np.ndarray


@dataclass(frozen=True, eq=False)
class FaceExplanation:
    """Saliency for every classified face of one frame (same order as the prediction's
    ``faces``)."""

    t: float
    model_id: str
    method: str
    faces: tuple[FaceSaliency, ...]
    modality: Modality = Modality.FACE


@dataclass(frozen=True)
class WordWeight:
    """One whitespace-separated word of a text (``start``: its character offset) and how
    much it moved the label: positive for, negative against (the method's units)."""

    word: str
    start: int
    weight: float


@dataclass(frozen=True)
class TextExplanation:
    """Per-word attributions of one text for ``label``."""

    t: float
    model_id: str
    method: str
    label: str
    words: tuple[WordWeight, ...]
    unit: str = ""
    modality: Modality = Modality.TEXT


@dataclass(frozen=True)
class VoiceMoment:
    """A stretch of a voice window (times on the prediction's clock) and how much it
    drove the label: the drop in the label's probability when it is silenced (negative:
    silencing it raised the label)."""

    t: float
    t_end: float
    weight: float


@dataclass(frozen=True)
class VoiceExplanation:
    """Which stretches of one voice window drove ``label``."""

    t: float
    model_id: str
    method: str
    label: str
    moments: tuple[VoiceMoment, ...]
    modality: Modality = Modality.VOICE


Explanation = FaceExplanation | TextExplanation | VoiceExplanation


def _num(value: float) -> float | None:
    value = float(value)
    return round(value, _DIGITS) if math.isfinite(value) else None


def normalise_grid(grid: np.ndarray) -> np.ndarray:
    """Negative cells to 0, then scaled so the largest is 1 (an all-zero or non-finite
    grid becomes all zero)."""
    g = np.where(np.isfinite(grid), np.maximum(grid, 0.0), 0.0).astype(np.float64)
    top = float(g.max()) if g.size else 0.0
    return g / top if top > 0 else np.zeros_like(g)


def explanation_entry(
    explanation: Explanation, origin: float = 0.0, include_text: bool = False
) -> dict[str, Any]:
    """The ``explain`` object of a row's modality entry: numbers only; a text
    explanation's words only with ``include_text`` (otherwise each word is its position
    and weight). Face grids go per face as ``saliency`` (see
    :func:`face_saliency_entries`)."""
    if isinstance(explanation, FaceExplanation):
        labels = sorted({face.label for face in explanation.faces})
        return {"method": explanation.method, "labels": labels}
    if isinstance(explanation, TextExplanation):
        words = []
        for i, w in enumerate(explanation.words):
            item: dict[str, Any] = {"i": i, "weight": _num(w.weight)}
            if include_text:
                item["word"] = w.word
            words.append(item)
        return {
            "method": explanation.method,
            "label": explanation.label,
            "unit": explanation.unit,
            "words": words,
        }
    return {
        "method": explanation.method,
        "label": explanation.label,
        "moments": [
            {"t": _num(m.t - origin), "t_end": _num(m.t_end - origin), "weight": _num(m.weight)}
            for m in explanation.moments
        ],
    }


def face_saliency_entries(explanation: FaceExplanation) -> list[dict[str, Any]]:
    """Per face (in the prediction's order): ``{"label", "box", "grid"}``: the region the
    grid covers (the crop, in frame pixels) and the grid as rows of numbers rounded to 3
    digits, row 0 at the top."""
    return [
        {
            "label": face.label,
            "box": [int(v) for v in face.box],
            "grid": [[round(float(v), 3) for v in row] for row in face.grid],
        }
        for face in explanation.faces
    ]
