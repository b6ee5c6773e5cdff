"""Turn any model's ``id2label`` into the canonical label set.

A :class:`LabelMap` sends each raw label either to one canonical label or to nothing
("ignore": the model's ``other``/``unknown`` classes), and records the *mask*: the
canonical labels the model can express at all. Mapping sums the probability of every raw
label that lands on the same canonical label, drops ignored mass, and renormalises.

Lookup order for a raw label: the per-model overrides, then the built-in alias table.
A model with any label found in neither is refused with :class:`UnmappedLabelsError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from emoapp.core.errors import UnmappedLabelsError
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX, NUM_LABELS

IGNORE: Final[str] = "ignore"

# GoEmotions' official mapping of its 27 emotions onto Ekman's six
# (google-research/google-research, goemotions/data/ekman_mapping.json, Apache-2.0).
GOEMOTIONS_EKMAN: Final[dict[str, list[str]]] = {
    "anger": ["anger", "annoyance", "disapproval"],
    "disgust": ["disgust"],
    "fear": ["fear", "nervousness"],
    "joy": [
        "joy",
        "amusement",
        "approval",
        "excitement",
        "gratitude",
        "love",
        "optimism",
        "relief",
        "pride",
        "admiration",
        "desire",
        "caring",
    ],
    "sadness": ["sadness", "disappointment", "embarrassment", "grief", "remorse"],
    "surprise": ["surprise", "realization", "confusion", "curiosity"],
}

_EKMAN_TO_CANONICAL: Final[dict[str, str]] = {
    "anger": "angry",
    "disgust": "disgusted",
    "fear": "fearful",
    "joy": "happy",
    "sadness": "sad",
    "surprise": "surprised",
}

_BASE_ALIASES: Final[dict[str, str]] = {
    # the canonical labels themselves
    **{label: label for label in CANONICAL_LABELS},
    # neutral
    "neu": "neutral",
    "calm": "neutral",
    "neutrality": "neutral",
    "none": "neutral",
    "no_emotion": "neutral",
    "noemotion": "neutral",
    # happy
    "hap": "happy",
    "joy": "happy",
    "happiness": "happy",
    "joyful": "happy",
    "love": "happy",
    "excited": "happy",
    "exc": "happy",
    "pleasant_surprise": "surprised",
    "ps": "surprised",
    # sad
    "sadness": "sad",
    "sa": "sad",
    "sorrow": "sad",
    # angry
    "ang": "angry",
    "anger": "angry",
    "an": "angry",
    "frustrated": "angry",
    "fru": "angry",
    # fearful
    "fear": "fearful",
    "fea": "fearful",
    "afraid": "fearful",
    "scared": "fearful",
    # disgusted
    "disgust": "disgusted",
    "dis": "disgusted",
    "contempt": "disgusted",
    # surprised
    "surprise": "surprised",
    "sur": "surprised",
    "surprized": "surprised",
    # classes that carry no emotion of ours: their mass is dropped
    "other": IGNORE,
    "oth": IGNORE,
    "unknown": IGNORE,
    "unk": IGNORE,
    "xxx": IGNORE,
}

ALIASES: Final[dict[str, str]] = {
    **{
        member: _EKMAN_TO_CANONICAL[group]
        for group, members in GOEMOTIONS_EKMAN.items()
        for member in members
    },
    **_BASE_ALIASES,
}
"""Built-in alias table: normalised raw label -> canonical label or ``"ignore"``."""


def normalise(label: str) -> str:
    """Lower-case a raw label and strip decoration: ``"<unk>"`` -> ``"unk"``,
    ``"Pleasant Surprise"`` -> ``"pleasant_surprise"``."""
    text = label.strip().lower()
    text = re.sub(r"[<>\[\]()]", "", text)
    return re.sub(r"[\s\-]+", "_", text)


@dataclass(frozen=True, eq=False)
class LabelMap:
    """How one model's raw labels map onto the canonical set."""

    model_id: str
    raw_labels: tuple[str, ...]
    targets: tuple[str, ...]  # canonical label or IGNORE, one per raw label
    matrix: np.ndarray  # (n_raw, NUM_LABELS) 0/1: raw label i contributes to canonical j
    mask: np.ndarray  # (NUM_LABELS,) bool: canonical labels this model can express

    def apply(self, raw_probs: np.ndarray) -> np.ndarray:
        """Map probabilities over raw labels (shape ``(..., n_raw)``) onto the canonical
        labels (``(..., NUM_LABELS)``), renormalised to sum to 1 over the mask."""
        p = np.asarray(raw_probs, dtype=np.float64)
        if p.shape[-1] != len(self.raw_labels):
            raise ValueError(
                f"expected {len(self.raw_labels)} raw probabilities, got {p.shape[-1]}"
            )
        mapped = p @ self.matrix
        total = mapped.sum(axis=-1, keepdims=True)
        # A model that put all its mass on ignored classes says nothing: spread evenly
        # over what it can express rather than divide by zero.
        uniform = self.mask / self.mask.sum()
        result = np.where(total > 0, mapped / np.where(total > 0, total, 1.0), uniform)
        # A broken model (NaN or inf out) stays visibly broken: never a uniform vote.
        return np.where(np.isfinite(total), result, np.nan)

    def describe(self) -> list[tuple[str, str]]:
        """(raw label, canonical label or 'ignore') pairs, in the model's order."""
        return list(zip(self.raw_labels, self.targets, strict=True))


def build_label_map(
    model_id: str,
    id2label: Mapping[int, str] | Mapping[str, str] | list[str],
    overrides: Mapping[str, str] | None = None,
) -> LabelMap:
    """Build the label map of a model from its ``id2label`` (a dict keyed by class index,
    as in a transformers config, or a plain list in class order)."""
    if isinstance(id2label, Mapping):
        items = sorted(((int(k), v) for k, v in id2label.items()), key=lambda kv: kv[0])
        if [k for k, _ in items] != list(range(len(items))):
            raise ValueError(f"model {model_id!r}: id2label ids are not 0..{len(items) - 1}")
        raw = [v for _, v in items]
    else:
        raw = list(id2label)
    if not raw:
        raise ValueError(f"model {model_id!r} has no labels")

    norm_overrides = {normalise(k): v for k, v in (overrides or {}).items()}
    for wanted in norm_overrides.values():
        if wanted != IGNORE and wanted not in LABEL_INDEX:
            raise ValueError(
                f"label override target {wanted!r} is not one of {', '.join(CANONICAL_LABELS)}"
                f" or {IGNORE!r}"
            )

    targets: list[str] = []
    unmapped: list[str] = []
    for label in raw:
        key = normalise(label)
        target = norm_overrides.get(key, ALIASES.get(key))
        if target is None:
            unmapped.append(label)
        else:
            targets.append(target)
    if unmapped:
        raise UnmappedLabelsError(model_id, unmapped)

    matrix = np.zeros((len(raw), NUM_LABELS), dtype=np.float64)
    for i, target in enumerate(targets):
        if target != IGNORE:
            matrix[i, LABEL_INDEX[target]] = 1.0
    mask = matrix.sum(axis=0) > 0
    if not mask.any():
        raise UnmappedLabelsError(model_id, raw)
    return LabelMap(model_id, tuple(raw), tuple(targets), matrix, mask)
