"""The timeline row: the one schema every sink writes (the ``emoapp analyze`` file, the
live runner's ``--out``, the window's in-memory timeline and its export).

:func:`row_from_estimate` builds a row from a fused estimate and the latest encoder
outputs; :func:`flatten_row` flattens one to the columns of :data:`CSV_COLUMNS`. The
format is described in :mod:`emoapp.recorded.timeline`, which writes and reads it. This
module depends only on the core, so every layer above can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from emoapp.core.explanation import (
    EXPLANATION,
    EXPLANATION_ERROR,
    FaceExplanation,
    explanation_entry,
    face_saliency_entries,
)
from emoapp.core.messages import (
    EncoderOutput,
    FusedEstimate,
    Modality,
    ModalityPrediction,
    NoPrediction,
)
from emoapp.core.taxonomy import CANONICAL_LABELS

MODALITIES: tuple[Modality, ...] = (Modality.FACE, Modality.VOICE, Modality.TEXT)
_DIGITS = 6


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return round(value, _DIGITS)


def probs_by_label(probs: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float | None]:
    """A probability vector as {label: p}; labels outside ``mask`` are left out, and a
    value that is not a number is null (JSON has no NaN: a row must stay parseable)."""
    return {
        label: _num(p)
        for label, p, kept in zip(
            CANONICAL_LABELS,
            probs,
            mask if mask is not None else [True] * len(CANONICAL_LABELS),
            strict=True,
        )
        if kept
    }


def prediction_entry(
    prediction: ModalityPrediction,
    weight: float | None,
    contribution: float | None,
    origin: float = 0.0,
    support: float | None = None,
    posterior: np.ndarray | None = None,
    include_text: bool = False,
) -> dict[str, Any]:
    """The row entry of one modality's prediction (times relative to ``origin``). A
    prediction carrying an explanation (``detail["explanation"]``, see
    :mod:`emoapp.core.explanation`) gets an ``explain`` object (and a ``saliency`` grid per
    face); the words of a text explanation only with ``include_text``."""
    entry: dict[str, Any] = {
        "t": _num(prediction.t - origin),
        "label": prediction.label,
        "confidence": _num(prediction.confidence),
        "probs": probs_by_label(prediction.probs, prediction.mask),
        "weight": _num(weight),
        "contribution": _num(contribution),
        "support": _num(support),
        "posterior": probs_by_label(posterior) if posterior is not None else None,
        "model": prediction.model_id,
        "baseline": bool(prediction.baseline),
        "origin": (prediction.origin or prediction.modality).value,
    }
    if prediction.t_end is not None:
        entry["t_end"] = _num(prediction.t_end - origin)
    if prediction.modality is Modality.FACE:
        entry["faces"] = [
            {
                "box": [int(v) for v in face.box],
                "label": face.label,
                "probs": probs_by_label(face.probs, prediction.mask),
                **({"track": int(face.track_id)} if face.track_id is not None else {}),
            }
            for face in prediction.faces
        ]
        primary = prediction.detail.get("primary_index")
        entry["primary"] = (
            int(primary) if primary is not None else (0 if prediction.faces else None)
        )
    elif prediction.modality is Modality.VOICE:
        entry["speech"] = _num(prediction.detail.get("speech_fraction"))
    explanation = prediction.detail.get(EXPLANATION)
    if prediction.detail.get(EXPLANATION_ERROR):
        entry["explain"] = {"error": str(prediction.detail[EXPLANATION_ERROR])}
    elif explanation is not None:
        entry["explain"] = explanation_entry(explanation, origin, include_text)
        if isinstance(explanation, FaceExplanation):
            for face, saliency in zip(
                entry["faces"], face_saliency_entries(explanation), strict=False
            ):
                face["saliency"] = saliency
    return entry


def _derived_note(
    modality: Modality, output: EncoderOutput | None, estimate: FusedEstimate
) -> str | None:
    if isinstance(output, NoPrediction):
        return output.reason
    if isinstance(output, ModalityPrediction) and modality not in estimate.inputs:
        return f"latest prediction ({estimate.t - output.t:.1f} s old) no longer counts"
    return None


def row_from_estimate(
    estimate: FusedEstimate,
    outputs_at_step: Mapping[Modality, EncoderOutput | None] | None = None,
    notes: Mapping[Modality, str] | Mapping[str, str] | None = None,
    origin: float = 0.0,
    include_text: bool = False,
) -> dict[str, Any]:
    """One timeline row. Times are written relative to ``origin`` (the live runner passes
    the moment the run started, so live rows count seconds from there, as analysis rows
    count seconds of media).

    ``outputs_at_step`` maps each modality to its latest encoder output up to this step
    (a prediction or a NoPrediction), from which the notes are derived; ``notes`` adds or
    overrides notes per modality (keys are modalities or their names). ``include_text``
    lets the words of text explanations into the row (the person opted in to text).
    """
    row: dict[str, Any] = {"t": _num(estimate.t - origin)}
    if estimate.abstained or estimate.probs is None:
        row["fused"] = None
        row["abstained"] = estimate.reason or "no estimate"
    else:
        row["fused"] = {
            "label": estimate.label,
            "confidence": _num(estimate.confidence),
            "probs": probs_by_label(estimate.probs),
            "valence": _num(estimate.valence),
            "arousal": _num(estimate.arousal),
            "rule": estimate.rule,
            "disagreement": _num(estimate.disagreement),
            "disagree": bool(estimate.disagree),
            "uncertain": bool(estimate.uncertain),
            "raw": {
                "label": estimate.raw_label or estimate.label,
                "probs": probs_by_label(
                    estimate.raw_probs if estimate.raw_probs is not None else estimate.probs
                ),
            },
        }
    modalities: dict[str, Any] = {}
    row_notes: dict[str, str] = {}
    outputs = outputs_at_step or {}
    for modality in MODALITIES:
        prediction = estimate.inputs.get(modality)
        if prediction is None:
            modalities[modality.value] = None
        else:
            modalities[modality.value] = prediction_entry(
                prediction,
                estimate.weights.get(modality),
                estimate.contributions.get(modality),
                origin,
                estimate.support.get(modality),
                estimate.posteriors.get(modality),
                include_text=include_text,
            )
        derived = _derived_note(modality, outputs.get(modality), estimate)
        if derived:
            row_notes[modality.value] = derived
    for key, note in (notes or {}).items():
        row_notes[Modality(key).value] = note
    row["modalities"] = modalities
    row["notes"] = row_notes
    return row


# --- CSV flattening ------------------------------------------------------------------------

CSV_COLUMNS: tuple[str, ...] = (
    "t",
    "fused_label",
    "fused_confidence",
    *(f"fused_{label}" for label in CANONICAL_LABELS),
    "valence",
    "arousal",
    "disagreement",
    "disagree",
    "fused_raw_label",
    "fused_uncertain",
    "abstained",
    *(
        column
        for m in MODALITIES
        for column in (
            f"{m.value}_label",
            f"{m.value}_confidence",
            f"{m.value}_weight",
            f"{m.value}_contribution",
            f"{m.value}_support",
            *(f"{m.value}_{label}" for label in CANONICAL_LABELS),
            f"{m.value}_model",
        )
    ),
    "face_faces",
    "voice_speech",
    "notes",
)
"""The CSV columns, in order. Per-modality label columns are empty for labels outside the
model's mask."""


def flatten_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as {CSV column: value}; None for null (written as an empty cell)."""
    flat: dict[str, Any] = dict.fromkeys(CSV_COLUMNS)
    flat["t"] = row["t"]
    fused = row.get("fused")
    if fused:
        flat["fused_label"] = fused["label"]
        flat["fused_confidence"] = fused["confidence"]
        for label in CANONICAL_LABELS:
            flat[f"fused_{label}"] = fused["probs"].get(label)
        flat["valence"] = fused["valence"]
        flat["arousal"] = fused["arousal"]
        flat["disagreement"] = fused["disagreement"]
        flat["disagree"] = int(bool(fused["disagree"]))
        flat["fused_raw_label"] = (fused.get("raw") or {}).get("label")
        flat["fused_uncertain"] = int(bool(fused.get("uncertain", False)))
    else:
        flat["abstained"] = row.get("abstained", "")
    for m in MODALITIES:
        entry = (row.get("modalities") or {}).get(m.value)
        if not entry:
            continue
        for key in ("label", "confidence", "weight", "contribution", "support", "model"):
            flat[f"{m.value}_{key}"] = entry.get(key)
        for label in CANONICAL_LABELS:
            flat[f"{m.value}_{label}"] = entry["probs"].get(label)
        if m is Modality.FACE:
            flat["face_faces"] = len(entry.get("faces", []))
        elif m is Modality.VOICE:
            flat["voice_speech"] = entry.get("speech")
    notes = row.get("notes") or {}
    flat["notes"] = "; ".join(f"{k}: {v}" for k, v in notes.items()) or None
    return flat
