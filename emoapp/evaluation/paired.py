"""Paired evaluation: evidence that fusing helps, without an audio-visual-text corpus.

Labelled data with faces, voices *and* words of the same moment is rare. A paired
evaluation builds label-matched tuples from unimodal labelled sets instead: for each
pair it draws a label (uniformly from the labels every set has, so each label weighs the
same in macro-F1), then one item of that label from each set (with replacement, seeded).
Each modality's encoder predicts its own items (through the prediction cache), and every
system (each modality alone, every combination, all fused) is scored on the pairs with
the app's own fusion (:func:`emoapp.evaluation.scoring.score_all`, which goes through
:func:`emoapp.core.fusion.pool_batch`).

What this measures, and what it does not: the items of a pair come from different people
and recordings, so **their errors are independent**, the case most favourable to late
fusion. In real multimodal data the modalities of one moment err together (a muted face
and a flat voice), so real gains are smaller. Read a paired figure as an upper bound on
what fusing these encoders can add, and as a check that fusing does not *lose* to the
best single modality.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX
from emoapp.evaluation.datasets import EvalDataset, EvalItem
from emoapp.evaluation.metrics import BOOTSTRAP_SAMPLES, Interval, macro_f1
from emoapp.evaluation.predict import ItemPrediction
from emoapp.evaluation.scoring import (
    FusionSetup,
    Predictions,
    SystemScore,
    score_all,
    system_probs,
)

INDEPENDENCE_NOTE = (
    "Paired items come from different recordings and people, so the modalities' errors are "
    "independent: the case most favourable to late fusion. Real multimodal data, where the "
    "modalities of one moment err together, gives smaller gains."
)


@dataclass(frozen=True)
class Pair:
    """One label-matched tuple: an item of each modality's set, all with ``label``."""

    id: str
    label: str
    members: dict[Modality, EvalItem]


def shared_labels(datasets: Mapping[Modality, EvalDataset]) -> list[str]:
    """The canonical labels every set has items of, in canonical order."""
    have = [{item.label for item in d.items} for d in datasets.values()]
    common = set.intersection(*have) if have else set()
    return [label for label in CANONICAL_LABELS if label in common]


def draw_pairs(datasets: Mapping[Modality, EvalDataset], n: int, seed: int = 0) -> list[Pair]:
    """``n`` label-matched pairs (see the module docstring), seeded."""
    if n <= 0:
        raise EmoappError("--pairs must be a positive number")
    if len(datasets) < 2:
        raise EmoappError("a paired evaluation needs at least two --pair sets")
    labels = shared_labels(datasets)
    if not labels:
        names = ", ".join(f"{m.value}: {d.name}" for m, d in datasets.items())
        raise EmoappError(f"the --pair sets share no label ({names})")
    rng = random.Random(seed)
    by_label = {
        m: {label: [i for i in d.items if i.label == label] for label in labels}
        for m, d in datasets.items()
    }
    pairs = []
    for k in range(n):
        label = rng.choice(labels)
        members = {m: rng.choice(by_label[m][label]) for m in datasets}
        pairs.append(Pair(f"pair{k:05d}", label, members))
    return pairs


def paired_predictions(
    pairs: Sequence[Pair], predictions: Mapping[Modality, Mapping[str, ItemPrediction]]
) -> tuple[list[EvalItem], Predictions]:
    """The pairs as items, and each modality's prediction of its member, keyed by pair."""
    items = [EvalItem(p.id, p.label) for p in pairs]
    out: dict[Modality, dict[str, ItemPrediction]] = {m: {} for m in predictions}
    for pair in pairs:
        for m, member in pair.members.items():
            p = predictions.get(m, {}).get(member.id)
            if p is not None:
                out[m][pair.id] = replace(p, item_id=pair.id)
    return items, out


@dataclass
class Gain:
    """Fused macro-F1 minus the best single modality's, with a paired bootstrap interval
    (the same resampled pairs score both systems)."""

    fused: str
    best_single: str
    difference: float
    interval: Interval | None


@dataclass
class PairedResult:
    labels: list[str]
    pairs: int
    scores: list[SystemScore]
    gain: Gain | None
    sets: dict[Modality, str] = field(default_factory=dict)
    coverage: dict[Modality, int] = field(default_factory=dict)
    """Pairs whose member that modality predicted."""


def paired_gain(
    items: Sequence[EvalItem],
    predictions: Predictions,
    setup: FusionSetup,
    scores: Sequence[SystemScore],
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> Gain | None:
    """The gain of fusing everything over the best single modality, on the pairs every
    modality predicted."""
    singles = [s for s in scores if not s.system.fused]
    full = [s for s in scores if len(s.system.modalities) == len(predictions)]
    if not singles or not full or len(full[0].system.modalities) < 2:
        return None
    best = max(singles, key=lambda s: s.report.macro_f1)
    ids = [i.id for i in items]
    fused_probs = system_probs(full[0].system, ids, predictions, setup)
    single_probs = system_probs(best.system, ids, predictions, setup)
    common = [i for i in items if i.id in fused_probs and i.id in single_probs]
    if not common:
        return None
    gold = np.array([LABEL_INDEX[i.label] for i in common])
    pf = np.array([int(np.argmax(fused_probs[i.id])) for i in common])
    ps = np.array([int(np.argmax(single_probs[i.id])) for i in common])
    difference = macro_f1(gold, pf) - macro_f1(gold, ps)
    interval = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        diffs = np.empty(bootstrap)
        for b in range(bootstrap):
            idx = rng.integers(0, len(common), size=len(common))
            diffs[b] = macro_f1(gold[idx], pf[idx]) - macro_f1(gold[idx], ps[idx])
        low, high = np.percentile(diffs, [2.5, 97.5])
        interval = Interval(float(low), float(high))
    return Gain(full[0].system.name, best.system.name, float(difference), interval)


def score_pairs(
    pairs: Sequence[Pair],
    predictions: Mapping[Modality, Mapping[str, ItemPrediction]],
    setup: FusionSetup,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> PairedResult:
    """Every system scored on the pairs, and the gain of fusing."""
    items, paired = paired_predictions(pairs, predictions)
    scores = score_all(items, paired, setup, bootstrap, seed, with_groups=False)
    gain = paired_gain(items, paired, setup, scores, bootstrap, seed)
    labels = sorted({p.label for p in pairs}, key=LABEL_INDEX.__getitem__)
    coverage = {m: sum(1 for p in by_id.values() if p.predicted) for m, by_id in paired.items()}
    return PairedResult(labels, len(pairs), scores, gain, coverage=coverage)
