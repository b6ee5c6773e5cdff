"""Score every *system*: each modality alone, every combination of modalities, and all of
them fused.

A system's distribution is what the app's fuser gives at one instant (all predictions at
the same ``t``, so no decay): each prediction's weight is the fuser's ``weights_at``
(reliability prior x certainty on that input ** power), each prediction is expanded to its full
posterior by its observation model, and :func:`emoapp.core.fusion.pool_batch` pools them
(the same function the app uses). A lone modality is scored on its posterior too. A modality with no
prediction for an item is left out and the others renormalise, as in the app; an item
with no prediction from any member modality is an abstention of that system, reported as
lower coverage, not as an error.

Systems are scored on the items they predicted; when there are several modalities they
are also scored on the *common* items (every modality predicted), the fair comparison
for "is fusing worth it?".
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from emoapp.core.fusion import Fuser, FusionConfig, combine
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.taxonomy import LABEL_INDEX
from emoapp.evaluation.datasets import EvalItem
from emoapp.evaluation.metrics import (
    BOOTSTRAP_SAMPLES,
    ClassificationReport,
    GroupReport,
    classification_report,
    group_report,
)
from emoapp.evaluation.predict import ItemPrediction

Predictions = Mapping[Modality, Mapping[str, ItemPrediction]]


@dataclass(frozen=True)
class System:
    """One modality, or a fused combination of modalities."""

    modalities: tuple[Modality, ...]

    @property
    def name(self) -> str:
        return "+".join(m.value for m in self.modalities)

    @property
    def fused(self) -> bool:
        return len(self.modalities) > 1


def systems_for(modalities: Sequence[Modality]) -> list[System]:
    """Each modality alone, then every combination, the full fusion last."""
    ordered = [m for m in (Modality.FACE, Modality.VOICE, Modality.TEXT) if m in modalities]
    return [
        System(combo)
        for size in range(1, len(ordered) + 1)
        for combo in itertools.combinations(ordered, size)
    ]


@dataclass
class FusionSetup:
    """How predictions are turned into a system's distribution: the fusion config and a
    temperature per model id (missing: 1)."""

    config: FusionConfig = field(default_factory=FusionConfig)
    temperatures: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._fuser = Fuser(self.config)

    def prediction(self, item_prediction: ItemPrediction) -> ModalityPrediction:
        t = self.temperatures.get(item_prediction.model_id, 1.0)
        return item_prediction.as_modality_prediction(t)

    def posterior(self, prediction: ModalityPrediction) -> np.ndarray:
        """A prediction's full posterior under the setup's observation models."""
        return self._fuser.posterior_of(prediction)

    def certainty(self, prediction: ModalityPrediction) -> float:
        """How sure the prediction is, as the fuser measures it (``certainty_of``)."""
        return self._fuser.certainty_of(prediction)

    def fuse(self, predictions: Mapping[Modality, ModalityPrediction]) -> np.ndarray | None:
        """The fused distribution of predictions made at the same instant."""
        if not predictions:
            return None
        weights = self._fuser.weights_at(predictions, 0.0)
        return combine(predictions, weights, self.config.rule, self.config.observation)


def system_probs(
    system: System,
    item_ids: Sequence[str],
    predictions: Predictions,
    setup: FusionSetup,
) -> dict[str, np.ndarray]:
    """The distribution the system gives each item it does not abstain on."""
    out: dict[str, np.ndarray] = {}
    for item_id in item_ids:
        present = {}
        for m in system.modalities:
            p = predictions[m].get(item_id)
            if p is not None and p.predicted:
                present[m] = setup.prediction(p)
        if not present:
            continue
        fused = setup.fuse(present)
        if fused is not None:
            out[item_id] = fused
    return out


@dataclass
class SystemScore:
    """A system's figures on a set of items."""

    system: System
    items: int
    """Items in the set scored against."""
    with_input: int
    """Items where at least one member modality had input."""
    report: ClassificationReport
    groups: GroupReport | None = None

    @property
    def coverage(self) -> float:
        return self.report.n / self.items if self.items else float("nan")


def score_system(
    system: System,
    items: Sequence[EvalItem],
    predictions: Predictions,
    setup: FusionSetup,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    with_groups: bool = True,
) -> SystemScore:
    ids = [item.id for item in items]
    probs_by_id = system_probs(system, ids, predictions, setup)
    scored = [item for item in items if item.id in probs_by_id]
    gold = np.array([LABEL_INDEX[item.label] for item in scored], dtype=np.int64)
    probs = np.stack([probs_by_id[item.id] for item in scored]) if scored else np.zeros((0, 7))
    with_input = sum(
        1
        for item in items
        if any(
            (p := predictions[m].get(item.id)) is not None and p.status != "no_input"
            for m in system.modalities
        )
    )
    report = classification_report(gold, probs, bootstrap=bootstrap, seed=seed)
    groups = None
    if with_groups and any(item.group is not None for item in scored):
        groups = group_report(
            gold, probs, [item.group for item in scored], bootstrap=bootstrap, seed=seed
        )
    return SystemScore(system, len(items), with_input, report, groups)


def common_items(items: Sequence[EvalItem], predictions: Predictions) -> list[EvalItem]:
    """The items every modality predicted."""
    return [
        item
        for item in items
        if all(
            (p := by_id.get(item.id)) is not None and p.predicted for by_id in predictions.values()
        )
    ]


def score_all(
    items: Sequence[EvalItem],
    predictions: Predictions,
    setup: FusionSetup,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    with_groups: bool = True,
) -> list[SystemScore]:
    """Every system of the modalities in ``predictions`` on ``items``."""
    return [
        score_system(s, items, predictions, setup, bootstrap, seed, with_groups)
        for s in systems_for(list(predictions))
    ]
