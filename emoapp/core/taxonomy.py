"""The canonical emotion labels every model is mapped onto, and where each sits on the
valence/arousal circumplex.

Valence and arousal come from the NRC Valence, Arousal, and Dominance Lexicon
(Saif M. Mohammad, "Obtaining Reliable Human Ratings of Valence, Arousal, and Dominance
for 20,000 English Words", ACL 2018), using the rating of the emotion word itself
(e.g. "anger" for ``angry``). Scores are in [0, 1]; 0.5 is the middle of the scale.
"""

from __future__ import annotations

from typing import Final

import numpy as np

CANONICAL_LABELS: Final[tuple[str, ...]] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
)
"""The canonical label set, in the order used by every probability vector."""

NUM_LABELS: Final[int] = len(CANONICAL_LABELS)

LABEL_INDEX: Final[dict[str, int]] = {label: i for i, label in enumerate(CANONICAL_LABELS)}

# NRC-VAD v1 (2018) ratings of the emotion words (valence, arousal).
VALENCE_AROUSAL: Final[dict[str, tuple[float, float]]] = {
    "neutral": (0.469, 0.184),  # "neutral"
    "happy": (0.980, 0.824),  # "joy"
    "sad": (0.052, 0.288),  # "sadness"
    "angry": (0.167, 0.865),  # "anger"
    "fearful": (0.073, 0.840),  # "fear"
    "disgusted": (0.052, 0.775),  # "disgust"
    "surprised": (0.875, 0.875),  # "surprise"
}
VAD_SOURCE: Final[str] = "NRC-VAD lexicon (Mohammad, ACL 2018), rating of each emotion word"

_VA_MATRIX = np.array([VALENCE_AROUSAL[label] for label in CANONICAL_LABELS], dtype=np.float64)


def valence_arousal(probs: np.ndarray) -> tuple[float, float]:
    """Expected valence and arousal of a distribution over the canonical labels."""
    p = np.asarray(probs, dtype=np.float64)
    total = float(p.sum())
    if total <= 0:
        raise ValueError("valence_arousal needs a distribution with positive mass")
    valence, arousal = (p / total) @ _VA_MATRIX
    return float(valence), float(arousal)


def label_of(probs: np.ndarray) -> str:
    """The canonical label with the highest probability."""
    return CANONICAL_LABELS[int(np.argmax(probs))]
