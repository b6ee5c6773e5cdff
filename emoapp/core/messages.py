"""The typed, timestamped messages that flow from sources through encoders to fusion.

Every message carries ``t``: seconds on one clock (:mod:`emoapp.core.clock` for live
capture, media time for recorded files). Probability vectors are always over
:data:`~emoapp.core.taxonomy.CANONICAL_LABELS`, in that order; raw model labels never
leave an encoder.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoapp.core.taxonomy import CANONICAL_LABELS, NUM_LABELS


class Modality(enum.StrEnum):
    """The three input modalities."""

    FACE = "face"
    VOICE = "voice"
    TEXT = "text"

    def __str__(self) -> str:
        return self.value


# --- what sources produce -------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class VideoFrame:
    """One RGB frame (H x W x 3, uint8) captured at ``t``."""

    t: float
    image: np.ndarray
    index: int = 0
    source: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class AudioChunk:
    """Mono float32 samples in [-1, 1] whose first sample was captured at ``t``."""

    t: float
    samples: np.ndarray
    sample_rate: int
    source: str = ""

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def end(self) -> float:
        return self.t + self.duration


@dataclass(frozen=True, slots=True)
class TextEntry:
    """A piece of text typed (or spoken, in a transcript) at ``t``."""

    t: float
    text: str
    source: str = ""
    end: float | None = None
    speaker: str | None = None
    """Who said it, when a transcript tags speakers (WebVTT ``<v Name>``)."""
    context: tuple[str, ...] = ()
    """What was said just before it in the same conversation (oldest first, any
    speaker), when a transcript, call or chat gives it; text models that read context
    use it, the others ignore it."""
    domain: str | None = None
    """What kind of text it is when its source knows (``"conversation"``, ``"comments"``);
    None: the text model's default."""


CONTEXT_TURNS = 3
"""How many earlier utterances :func:`with_context` attaches to an entry."""


def with_context(
    entries: Sequence[TextEntry], turns: int = CONTEXT_TURNS, before: Sequence[str] = ()
) -> list[TextEntry]:
    """``entries`` (one conversation, in time order) each with the texts of the ``turns``
    entries before it as :attr:`TextEntry.context` (``before``: what was said before the
    first one). An entry that already has context keeps it."""
    history = [" ".join(t.split()) for t in before if t.strip()][-turns:] if turns > 0 else []
    out: list[TextEntry] = []
    for entry in entries:
        if entry.context or turns <= 0:
            out.append(entry)
        else:
            out.append(dataclasses.replace(entry, context=tuple(history[-turns:])))
        if turns > 0 and entry.text.strip():
            history = [*history, " ".join(entry.text.split())][-turns:]
    return out


# --- what encoders produce ------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class FaceDetection:
    """One face in a frame: its box in pixels (x, y, width, height), its distribution,
    and its track id (kept while the face is tracked; None when faces are not tracked)."""

    box: tuple[int, int, int, int]
    probs: np.ndarray
    track_id: int | None = None

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]

    @property
    def label(self) -> str:
        return CANONICAL_LABELS[int(np.argmax(self.probs))]


@dataclass(frozen=True, slots=True, eq=False)
class ModalityPrediction:
    """One encoder's estimate for one input, already mapped onto the canonical labels.

    ``probs`` sums to 1 over the labels in ``mask`` and is 0 elsewhere; ``mask`` marks the
    canonical labels this model can express at all (it casts no vote on the others).
    """

    modality: Modality
    t: float
    probs: np.ndarray
    mask: np.ndarray
    confidence: float
    model_id: str
    latency_s: float = 0.0
    valence: float | None = None
    arousal: float | None = None
    faces: tuple[FaceDetection, ...] = ()
    baseline: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    t_end: float | None = None
    """When the input ends, for inputs that span time (an audio window starts at ``t``
    and ends here). Fusion measures a prediction's age from ``t_end`` when set."""
    origin: Modality | None = None
    """The capture the input came from when it is not the modality's own device: a text
    prediction of words heard by the speech recogniser comes from the microphone
    (``Modality.VOICE``). None: the modality's own (:mod:`emoapp.core.provenance`)."""

    def __post_init__(self) -> None:
        if self.probs.shape != (NUM_LABELS,) or self.mask.shape != (NUM_LABELS,):
            raise ValueError(f"probs and mask must have shape ({NUM_LABELS},)")

    @property
    def label(self) -> str:
        return CANONICAL_LABELS[int(np.argmax(self.probs))]

    @property
    def evidence_t(self) -> float:
        """The time of the newest input behind this prediction."""
        return self.t if self.t_end is None else self.t_end


@dataclass(frozen=True, slots=True)
class NoPrediction:
    """An encoder looked at an input and has nothing to say, and why (no face, silence...)."""

    modality: Modality
    t: float
    reason: str
    model_id: str = ""
    latency_s: float = 0.0
    origin: Modality | None = None
    """As :attr:`ModalityPrediction.origin`."""


EncoderOutput = ModalityPrediction | NoPrediction


# --- what fusion produces -------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class FusedEstimate:
    """The late-fused estimate at time ``t``.

    When nothing usable is present the fuser abstains: ``abstained`` is True, ``probs`` is
    None and ``reason`` says why. ``contributions`` maps each modality that took part to
    its share of the total weight (shares sum to 1); ``weights`` holds the same as raw
    weights. ``disagreement`` is in [0, 1]: 0 when the modalities agree exactly.
    """

    t: float
    probs: np.ndarray | None
    label: str | None
    confidence: float
    valence: float | None
    arousal: float | None
    contributions: dict[Modality, float]
    weights: dict[Modality, float]
    disagreement: float
    inputs: dict[Modality, ModalityPrediction]
    rule: str = "weighted"
    abstained: bool = False
    reason: str = ""
    raw_probs: np.ndarray | None = None
    """The pooled distribution before smoothing (``probs`` is what is shown)."""
    raw_label: str | None = None
    """The top label of ``raw_probs``; ``label`` may lag it (smoothing, hysteresis)."""
    posteriors: dict[Modality, np.ndarray] = field(default_factory=dict)
    """Each modality's full 7-label posterior (its observation model applied) as pooled."""
    support: dict[Modality, float] = field(default_factory=dict)
    """Each modality's share of the fused probability of ``label`` (linear pool: exactly
    its weight share times its posterior of the label over the fused one; sums to 1)."""
    uncertain: bool = False
    """The fused estimate is unsure: ``confidence`` is below the fuser's
    ``uncertain_below`` (``label`` stays the most probable one; a display shows
    "uncertain" instead of it)."""

    @property
    def disagree(self) -> bool:
        """True when at least two modalities are present and their top labels differ."""
        labels = {p.label for p in self.inputs.values()}
        return len(labels) > 1
