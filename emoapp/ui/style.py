"""Colours and names the panels share, so a label or a modality looks the same
everywhere in the window."""

from __future__ import annotations

from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS

# One colour per canonical label (colour-blind-friendly where it can be: Okabe-Ito plus
# a grey for neutral).
LABEL_COLORS: dict[str, str] = {
    "neutral": "#8c8c8c",
    "happy": "#e69f00",
    "sad": "#0072b2",
    "angry": "#d55e00",
    "fearful": "#cc79a7",
    "disgusted": "#009e73",
    "surprised": "#56b4e9",
}
assert set(LABEL_COLORS) == set(CANONICAL_LABELS)

MODALITY_COLORS: dict[Modality, str] = {
    Modality.FACE: "#1b9e77",
    Modality.VOICE: "#d95f02",
    Modality.TEXT: "#7570b3",
}

MODALITY_TITLES: dict[Modality, str] = {
    Modality.FACE: "Face",
    Modality.VOICE: "Voice",
    Modality.TEXT: "Text",
}

# The capture device behind each modality, as a person would name it.
DEVICE_TITLES: dict[Modality, str] = {
    Modality.FACE: "Camera",
    Modality.VOICE: "Microphone",
    Modality.TEXT: "Text entry",
}

STATE_COLORS: dict[str, str] = {
    "off": "#8c8c8c",
    "stopped": "#8c8c8c",
    "loading": "#0072b2",
    "starting": "#0072b2",
    "running": "#1a9641",
    "degraded": "#e69f00",
    "failed": "#c0392b",
}

WARNING_COLOR = "#b35900"
ERROR_COLOR = "#c0392b"
CAVEAT = "Estimates displayed expression, not inner feeling."
