"""Model cards: what a person should know about each model that is judging them.

For every loaded encoder, :func:`model_card` gathers what emoapp knows from two places:

- the curated registry (``models/registry.toml``, :func:`emoapp.registry.find_entry`):
  what the model was trained on, its licence, its known limits and demographic caveats,
  and the accuracy its authors reported;
- the encoder itself (:class:`emoapp.encoders.base.EncoderInfo`): the label mapping
  applied (each raw model label and the canonical label it counts as, or ``ignore``),
  the device it runs on, and where it was loaded from.

A model outside the registry (a local folder, a hub id nobody curated) gets a card that
says so plainly instead of guessing. :func:`format_model_card` renders a card as
Markdown for the window's "About the models…" view (and for anyone else). No Qt here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.encoders.base import EncoderInfo

DISPLAYED_NOT_FELT = (
    "Estimates displayed expression, not inner feeling: what a face, a voice or a text "
    "shows, not what anyone feels."
)
NOT_CURATED = (
    "not in emoapp's curated registry: its training data, licence and limits are "
    "unknown to emoapp; read the model's own card before trusting it"
)


@dataclass(frozen=True)
class ModelCard:
    """What the window shows about one loaded model."""

    modality: Modality
    model_id: str
    baseline: bool
    curated: bool
    """True when the registry has an entry for the model (the facts below come from it)."""
    training_data: str = ""
    license: str = ""
    limits: str = ""
    reported: str = ""
    architecture: str = ""
    revision: str | None = None
    device: str = ""
    source: str = ""
    label_mapping: list[tuple[str, str]] = field(default_factory=list)
    """(model label, canonical label or ``ignore``), in the model's order."""
    observation: dict[str, list[str]] = field(default_factory=dict)
    """Catch-all outputs from the registry (output -> the true labels it stands for)."""

    @property
    def cannot_tell_apart(self) -> list[list[str]]:
        """Groups of true labels the model cannot distinguish, by its observation model."""
        from emoapp.core.observation import ObservationModel

        mask = np.array([label in self.can_express for label in CANONICAL_LABELS])
        if not mask.any():
            return []
        return ObservationModel(covers=self.observation).cannot_tell_apart(mask)

    @property
    def can_express(self) -> list[str]:
        """The canonical labels this model votes on, in canonical order."""
        targets = {target for _, target in self.label_mapping}
        return [label for label in CANONICAL_LABELS if label in targets]

    @property
    def cannot_express(self) -> list[str]:
        """The canonical labels this model casts no vote on."""
        can = set(self.can_express)
        return [label for label in CANONICAL_LABELS if label not in can]


def model_card(info: EncoderInfo) -> ModelCard:
    """The card of a loaded encoder: registry facts (when curated) and its label mapping."""
    from emoapp.registry import find_entry

    entry = None
    for ref in (info.model_id, info.source):
        if ref:
            entry = find_entry(ref)
            if entry is not None:
                break
    card = ModelCard(
        modality=info.modality,
        model_id=info.model_id,
        baseline=info.baseline,
        curated=entry is not None,
        revision=info.revision,
        device=info.device,
        source=info.source,
        label_mapping=list(info.label_mapping),
    )
    if entry is None:
        return card
    return dataclasses.replace(
        card,
        training_data=entry.training_data,
        license=entry.license,
        limits=entry.limits,
        reported=entry.reported,
        architecture=entry.architecture,
        revision=info.revision or entry.revision,
        observation=dict(entry.observation),
    )


def format_model_card(card: ModelCard) -> str:
    """The card as Markdown: a heading, the facts, and the label mapping."""
    kind = " (baseline, built in: no download)" if card.baseline else ""
    lines = [f"## {card.modality.value.capitalize()}: {card.model_id}{kind}", ""]
    if card.curated:
        facts = [
            ("Trained on", card.training_data),
            ("Licence", card.license),
            ("Known limits and caveats", card.limits),
            ("Reported accuracy", card.reported),
            ("Architecture", card.architecture),
            ("Revision", card.revision or ""),
        ]
    else:
        facts = [("Registry", NOT_CURATED), ("Revision", card.revision or "")]
    facts += [("Loaded from", card.source), ("Runs on", card.device)]
    lines += [f"- **{name}:** {value}" for name, value in facts if value]
    lines += ["", "**Label mapping applied** (model label → canonical label):", ""]
    if card.label_mapping:
        lines += [f"- {raw} → {target}" for raw, target in card.label_mapping]
    else:
        lines.append("- (the model reported no label mapping)")
    if card.cannot_express:
        lines += [
            "",
            f"Cannot say: {', '.join(card.cannot_express)}. Fusion reads its outputs as "
            "evidence about all seven labels: what it cannot say keeps a share of its "
            "'cannot tell', neither zero nor its raw output.",
        ]
    for group in card.cannot_tell_apart:
        lines += ["", f"Cannot tell apart: {', '.join(group)} (one output stands for all of them)."]
    return "\n".join(lines) + "\n"


def format_model_cards(cards: list[ModelCard]) -> str:
    """Every card, after the plain statement of what the estimates are."""
    parts = [f"**{DISPLAYED_NOT_FELT}**", ""]
    if not cards:
        parts.append("No model is loaded yet.")
    parts += [format_model_card(card) for card in cards]
    return "\n".join(parts)
