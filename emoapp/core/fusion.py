"""Late fusion: the latest prediction of each modality -> one estimate.

For each modality present, the fuser keeps the latest :class:`ModalityPrediction` and
gives it a weight (age is measured from the newest input behind the prediction: the end
of an audio window, the time of a frame or a typed entry)::

    weight = reliability prior (per modality / per model)
           x the prediction's own confidence
           x 0.5 ** (age / half-life of the modality)

Predictions older than the modality's ``max_age`` drop out; modalities that are absent
are simply not in the sum, so the remaining weights renormalise.

Masking: each model votes only on the labels it can express. Before voting, a model's
probabilities are rescaled by ``|mask| / 7`` so that a model uniform over its 4 labels
casts the same per-label vote (1/7) as one uniform over 7. Then, per canonical label:

- ``weighted`` (default): the weighted mean vote of the models that can express the
  label; a model that cannot express it is left out of that label's mean (no vote,
  rather than a vote of zero);
- ``product``: a product of experts, each vote raised to the model's weight relative to
  the strongest; on a label a model cannot express it votes 1/7, as an expert with no
  opinion would. Agreeing modalities sharpen each other.

Scores are then normalised. One modality alone yields exactly its own distribution.

Optional exponential smoothing over time (time constant ``smoothing_s``) steadies the
output; ``disagreement`` is the mean pairwise Jensen-Shannon divergence (base 2, so in
[0, 1]) between the present modalities, each pair compared on the labels both express.
With nothing present the fuser abstains and says why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from emoapp.core.messages import FusedEstimate, Modality, ModalityPrediction
from emoapp.core.taxonomy import CANONICAL_LABELS, NUM_LABELS, valence_arousal

FusionRule = Literal["weighted", "product"]
RULES: tuple[FusionRule, ...] = ("weighted", "product")

_EPS = 1e-6


def _per_modality(face: float, voice: float, text: float) -> dict[Modality, float]:
    return {Modality.FACE: face, Modality.VOICE: voice, Modality.TEXT: text}


@dataclass
class FusionConfig:
    """How predictions are weighted and combined. All times in seconds."""

    rule: FusionRule = "weighted"
    # Reliability priors: how much to trust each modality when all else is equal. The
    # defaults follow the ordering of human and model accuracy in CREMA-D / MELD (faces
    # most, then text, then voice); `emoapp evaluate --fit` learns them from data.
    reliability: dict[Modality, float] = field(
        default_factory=lambda: _per_modality(face=1.0, voice=0.7, text=0.8)
    )
    # A prediction's weight halves every `half_life` seconds of age...
    half_life: dict[Modality, float] = field(
        default_factory=lambda: _per_modality(face=1.0, voice=2.0, text=20.0)
    )
    # ...and it drops out entirely past `max_age` (typed text stays relevant longest).
    max_age: dict[Modality, float] = field(
        default_factory=lambda: _per_modality(face=2.0, voice=6.0, text=60.0)
    )
    # Exponential smoothing time constant of the fused distribution; 0 turns it off.
    smoothing_s: float = 0.0
    # Weight is multiplied by confidence ** confidence_power (0 ignores confidence).
    confidence_power: float = 1.0
    # Disagreement at or above this is flagged to the person.
    disagreement_threshold: float = 0.35
    # Per-model temperature (model id -> T), fitted by `emoapp evaluate --fit`: each
    # prediction of that model is recalibrated (see apply_temperature) before fusion.
    temperature: dict[str, float] = field(default_factory=dict)
    # Per-model reliability priors (model id -> factor, from the registry); they replace
    # the per-modality prior for that model's predictions.
    model_reliability: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown fusion rule {self.rule!r}; choose one of {RULES}")
        for name in ("reliability", "half_life", "max_age"):
            table = getattr(self, name)
            coerced = {Modality(k): float(v) for k, v in table.items()}
            if any(v < 0 for v in coerced.values()):
                raise ValueError(f"fusion {name} must be non-negative")
            setattr(self, name, coerced)
        if self.smoothing_s < 0:
            raise ValueError("smoothing_s must be non-negative")
        if any(t <= 0 for t in self.temperature.values()):
            raise ValueError("temperatures must be positive")


def apply_temperature(probs: np.ndarray, mask: np.ndarray | None, temperature: float) -> np.ndarray:
    """``probs`` (``(..., 7)``) at ``temperature`` (p ** (1/T)), renormalised over ``mask``.
    T > 1 softens an over-confident model, T < 1 sharpens; the top label never changes."""
    p = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return p
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    m = np.ones(p.shape[-1], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    logp = np.where(m, np.log(np.maximum(p, 1e-12)), -np.inf) / temperature
    logp = logp - logp.max(axis=-1, keepdims=True)
    scaled = np.where(m, np.exp(logp), 0.0)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def calibrated(prediction: ModalityPrediction, temperature: float) -> ModalityPrediction:
    """The prediction at ``temperature``; its confidence becomes the new top probability."""
    if temperature == 1.0:
        return prediction
    probs = apply_temperature(prediction.probs, prediction.mask, temperature)
    return dataclasses.replace(prediction, probs=probs, confidence=float(probs.max()))


def _rescaled(pred: ModalityPrediction) -> np.ndarray:
    """Probabilities rescaled so that a uniform vote is 1/7 per label, whatever the mask."""
    return pred.probs * (pred.mask.sum() / NUM_LABELS)


def _js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0..1)."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return max(0.0, min(1.0, 0.5 * kl(p, m) + 0.5 * kl(q, m)))


def disagreement(predictions: Iterable[ModalityPrediction]) -> float:
    """Mean pairwise Jensen-Shannon divergence between predictions, each pair compared on
    the labels both can express (renormalised there). 0 with fewer than two."""
    preds = list(predictions)
    values: list[float] = []
    for i in range(len(preds)):
        for j in range(i + 1, len(preds)):
            common = preds[i].mask & preds[j].mask
            p, q = preds[i].probs[common], preds[j].probs[common]
            if p.sum() <= 0 or q.sum() <= 0:
                values.append(1.0)
                continue
            values.append(_js_divergence(p / p.sum(), q / q.sum()))
    return float(np.mean(values)) if values else 0.0


def combine(
    predictions: Mapping[Modality, ModalityPrediction],
    weights: Mapping[Modality, float],
    rule: FusionRule = "weighted",
) -> np.ndarray | None:
    """Masked, weighted combination of predictions (no decay, no smoothing).

    Returns a distribution over the canonical labels, or None when no label has a vote.
    """
    active = {m: p for m, p in predictions.items() if weights.get(m, 0.0) > 0}
    if not active:
        return None
    voted = np.logical_or.reduce([p.mask for p in active.values()])
    scores = np.zeros(NUM_LABELS)
    if rule == "product":
        # A product of experts, each raised to its weight relative to the strongest, so
        # that one expert alone reproduces itself. On a label it cannot express an expert
        # votes 1/7: exactly what a uniform (opinion-less) expert would.
        top = max(weights[m] for m in active)
        log_score = np.zeros(NUM_LABELS)
        for m, pred in active.items():
            votes = np.where(pred.mask, _rescaled(pred), 1.0 / NUM_LABELS)
            log_score += (weights[m] / top) * np.log(np.maximum(votes, _EPS))
        scores[voted] = np.exp(log_score[voted] - log_score[voted].max())
    else:
        # Per label, the weighted mean vote of the experts that can express it.
        numer = np.zeros(NUM_LABELS)
        denom = np.zeros(NUM_LABELS)
        for m, pred in active.items():
            numer += np.where(pred.mask, weights[m] * _rescaled(pred), 0.0)
            denom += np.where(pred.mask, weights[m], 0.0)
        scores[voted] = numer[voted] / denom[voted]
    total = scores.sum()
    if total <= 0:
        return None
    return scores / total


class Fuser:
    """Holds the latest prediction per modality and fuses them on request.

    Not thread-safe by itself: the live runtime calls it from one thread.
    """

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config or FusionConfig()
        self._latest: dict[Modality, ModalityPrediction] = {}
        self._smoothed: np.ndarray | None = None
        self._smoothed_t: float | None = None

    # -- inputs ------------------------------------------------------------------------

    def update(self, prediction: ModalityPrediction) -> bool:
        """Take a new prediction; an older one of the same modality is replaced. Returns
        False, keeping what it held, for a prediction older than the one held
        (out-of-order delivery) or one with NaN or inf in it (a broken model must not
        poison every estimate)."""
        if not (np.all(np.isfinite(prediction.probs)) and math.isfinite(prediction.confidence)):
            return False
        held = self._latest.get(prediction.modality)
        if held is None or prediction.evidence_t >= held.evidence_t:
            temperature = self.config.temperature.get(prediction.model_id, 1.0)
            self._latest[prediction.modality] = calibrated(prediction, temperature)
            return True
        return False

    def remove(self, modality: Modality) -> None:
        """Forget a modality at once (stopped, revoked, or failed)."""
        self._latest.pop(modality, None)

    def reset(self) -> None:
        """Forget everything, smoothing state included."""
        self._latest.clear()
        self._smoothed = None
        self._smoothed_t = None

    @property
    def latest(self) -> dict[Modality, ModalityPrediction]:
        return dict(self._latest)

    # -- output ------------------------------------------------------------------------

    def weight_of(self, prediction: ModalityPrediction, now: float) -> float:
        """The fusion weight of a prediction at time ``now`` (0 once it is too old)."""
        cfg = self.config
        m = prediction.modality
        age = max(0.0, now - prediction.evidence_t)
        if age > cfg.max_age[m]:
            return 0.0
        prior = cfg.model_reliability.get(prediction.model_id, cfg.reliability[m])
        half_life = cfg.half_life[m]
        decay = 0.5 ** (age / half_life) if half_life > 0 else (1.0 if age == 0 else 0.0)
        confidence = max(prediction.confidence, _EPS) ** cfg.confidence_power
        return prior * confidence * decay

    def estimate(self, now: float) -> FusedEstimate:
        """The fused estimate at time ``now``."""
        cfg = self.config
        weights = {m: self.weight_of(p, now) for m, p in self._latest.items()}
        present = {m: p for m, p in self._latest.items() if weights[m] > 0}
        weights = {m: w for m, w in weights.items() if m in present}
        probs = combine(present, weights, cfg.rule) if present else None
        if probs is None:
            self._smoothed = None
            self._smoothed_t = None
            return FusedEstimate(
                t=now,
                probs=None,
                label=None,
                confidence=0.0,
                valence=None,
                arousal=None,
                contributions={},
                weights={},
                disagreement=0.0,
                inputs={},
                rule=cfg.rule,
                abstained=True,
                reason=self._abstain_reason(now),
            )
        probs = self._smooth(probs, now)
        total_w = sum(weights.values())
        valence, arousal = valence_arousal(probs)
        top = int(np.argmax(probs))
        return FusedEstimate(
            t=now,
            probs=probs,
            label=CANONICAL_LABELS[top],
            confidence=float(probs[top]),
            valence=valence,
            arousal=arousal,
            contributions={m: w / total_w for m, w in weights.items()},
            weights=weights,
            disagreement=disagreement(present.values()),
            inputs=present,
            rule=cfg.rule,
        )

    def _smooth(self, probs: np.ndarray, now: float) -> np.ndarray:
        tau = self.config.smoothing_s
        if tau <= 0 or self._smoothed is None or self._smoothed_t is None:
            self._smoothed, self._smoothed_t = probs, now
            return probs
        dt = max(0.0, now - self._smoothed_t)
        alpha = 1.0 - math.exp(-dt / tau)
        smoothed = alpha * probs + (1.0 - alpha) * self._smoothed
        smoothed = smoothed / smoothed.sum()
        self._smoothed, self._smoothed_t = smoothed, now
        return smoothed

    def _abstain_reason(self, now: float) -> str:
        if not self._latest:
            return "no modality has a prediction"
        stale = ", ".join(
            f"{m.value} ({now - p.evidence_t:.1f} s old)" for m, p in sorted(self._latest.items())
        )
        return f"every prediction is too old: {stale}"
