"""Late fusion: the latest prediction of each modality -> one estimate.

Expand, then pool. For each modality present, the fuser keeps the latest
:class:`ModalityPrediction` and

1. **expands** it into a full posterior over the seven canonical labels with the model's
   observation model (:mod:`emoapp.core.observation`: ``P(output | true label)`` from
   its label map, a catch-all declared in the registry, or fitted by
   ``emoapp evaluate --fit``). A 4-class voice model's "angry" thereby also leaves some
   mass on fear, disgust and surprise (the labels it cannot say), and a smile
   detector's "no smile" is spread over the six non-happy labels instead of claiming
   "neutral". Every model now speaks about every label, with one meaning;
2. gives it a **weight** (age is measured from the newest input behind the prediction:
   the end of an audio window, the time of a frame or a typed entry)::

       weight = reliability prior (per modality / per model)
              x certainty of THIS input ** confidence_power
              x 0.5 ** (age / half-life of the modality)

   The **certainty** (:func:`certainty`, default ``certainty="entropy"``) is read off the
   calibrated, expanded posterior ``q`` itself: ``1 - H(q) / log 7``, 0 for a posterior
   that says nothing (uniform) and 1 for one that is sure. A channel out of its depth on
   this input (flat posterior after calibration) therefore counts for less, and a
   uniform posterior counts for nothing at all. ``certainty="confidence"`` uses the
   prediction's own ``confidence`` field instead (the rule before issue 23).
   Predictions older than the modality's ``max_age``, and modalities with weight 0,
   drop out; the remaining weights are normalised to shares ``s_m`` that sum to 1. When
   every present posterior is exactly uniform (all certainties 0), the pool falls back
   to the prior x age weights: the result is then the uniform distribution, which is
   what every channel says;
3. **pools** the posteriors ``q_m`` with one normaliser for all labels:

   - ``weighted`` (default), the *linear pool*: ``p = sum_m s_m q_m``;
   - ``product``, the *log-linear pool* (a weighted product of experts, weights as
     exponents): ``p ∝ prod_m q_m ** s_m``. Each posterior already holds the prior over
     labels once; with exponents summing to 1 the pool holds it once too.

Properties (tested with hypothesis in tests/core/test_fusion_properties.py): a lone
modality yields its own posterior; weight 0 is the same as absent and the result is
continuous as a weight goes to 0; raising one modality's weight never moves the result
away from its posterior (KL does not grow); two modalities that put the same label first
give it at least the smaller of their probabilities; order does not matter; outputs are
distributions. With the per-input certainty (tests/core/test_fusion_certainty.py):
certainty is in [0, 1], 0 exactly for the uniform posterior, invariant to relabelling,
and never grows as a posterior is mixed towards uniform or softened by temperature, so a
channel's weight is monotone in how sure it is; a uniform posterior changes nothing
(adding it, at any prior, leaves the pool as it was); and the pool is continuous in the
posteriors, the all-uniform fallback included. With the linear pool, a modality holding
at least 75 % of the weight whose posterior gives its top label at least 0.7 always
decides the label. The log-linear pool lets a confident dissenter veto (the known
property of logarithmic pools), so there the same guarantee holds only while every
other posterior keeps each label above (3/7)**3 ≈ 0.079 of its top label; the default
rule is therefore the linear pool.

Optional exponential smoothing over time (time constant ``smoothing_s``) and label
hysteresis (the shown label changes only when another label leads it by
``hysteresis``) steady the display; the raw pooled distribution is kept beside it
(``raw_probs``/``raw_label``). The estimate is **uncertain** when the shown label's
(smoothed) probability is below ``uncertain_below`` (the label stays the most probable
one; a display shows "uncertain" instead); once uncertain, it stays so until that
probability reaches ``uncertain_below + hysteresis``, so the state does not flicker
either. docs/guide/fusion.md says how the defaults were chosen. ``disagreement`` is the
mean pairwise Jensen-Shannon divergence (base 2, so in [0, 1]) between the posteriors.
With nothing usable the fuser abstains and says why.

:func:`pool_batch` is the one implementation of the pooling: the fuser, ``analyze``,
``live``, the window, ``emoapp evaluate`` and ``--fit`` all go through it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from emoapp.core.messages import FusedEstimate, Modality, ModalityPrediction
from emoapp.core.observation import DEFAULT_OBSERVATION, ObservationModel
from emoapp.core.provenance import origin_of
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX, NUM_LABELS, valence_arousal

FusionRule = Literal["weighted", "product"]
RULES: tuple[FusionRule, ...] = ("weighted", "product")
RULE_ALIASES: dict[str, FusionRule] = {
    "weighted": "weighted",
    "linear": "weighted",
    "product": "product",
    "loglinear": "product",
    "log-linear": "product",
}
"""Accepted rule names: ``linear`` is the weighted (linear) pool, ``loglinear`` the
product (log-linear) pool."""

_EPS = 1e-6

DISPLAY_SMOOTHING_S = 1.0
"""Smoothing time constant the window and ``emoapp live`` show by default (``analyze``
keeps 0). Chosen with ``scripts/measure_display.py`` (docs/guide/fusion.md)."""
DISPLAY_HYSTERESIS = 0.0
"""Label hysteresis margin the window and ``emoapp live`` use by default (``analyze``
keeps 0). Chosen with ``scripts/measure_display.py`` (docs/guide/fusion.md)."""
DISPLAY_MIN_HOLD_S = 6.0
"""Minimum hold of the shown state the window and ``emoapp live`` use by default
(``analyze`` keeps 0). Chosen with ``scripts/measure_display.py`` (docs/guide/fusion.md)."""
UNCERTAIN_BELOW = 0.43
"""Default ``uncertain_below``: a fused estimate whose shown label has a probability
below this is flagged uncertain. Chosen on dev data for a stated precision (shown labels
right at least 80 % of the time on dev triplets with the default fusion;
docs/guide/fusion.md, ``scripts/choose_fusion_defaults.py``)."""

CONFIDENCE_POWER = 0.5
"""Default ``confidence_power``: a channel's weight is its prior x certainty ** 0.5.
Chosen with the registry's priors on dev triplets, for a three-way fusion that is not
worse than face+voice or than the best single channel on any seed, also with a sharper
voice channel (docs/guide/fusion.md, ``scripts/choose_fusion_defaults.py``)."""

Certainty = Literal["entropy", "confidence"]
CERTAINTIES: tuple[Certainty, ...] = ("entropy", "confidence")


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
    # Weight is multiplied by certainty ** confidence_power (0 ignores it). The certainty
    # of an input: "entropy" (1 - H/log 7 of its expanded, calibrated posterior) or
    # "confidence" (the prediction's own confidence field, the rule before issue 23).
    confidence_power: float = CONFIDENCE_POWER
    certainty: Certainty = "entropy"
    # Disagreement at or above this is flagged to the person.
    disagreement_threshold: float = 0.35
    # Per-model temperature (model id -> T), fitted by `emoapp evaluate --fit`: each
    # prediction of that model is recalibrated (see apply_temperature) before fusion.
    temperature: dict[str, float] = field(default_factory=dict)
    # Per-model reliability priors (model id -> factor, from the registry); they replace
    # the per-modality prior for that model's predictions.
    model_reliability: dict[str, float] = field(default_factory=dict)
    # Per-model observation models (model id -> P(output | true label)), from the
    # registry's catch-all outputs or fitted by `emoapp evaluate --fit`; a model without
    # one gets the label map's (see emoapp.core.observation).
    observation: dict[str, ObservationModel] = field(default_factory=dict)
    # The shown label changes only when another label leads it by this much (0: off).
    hysteresis: float = 0.0
    # The estimate is flagged uncertain when its shown label's probability is below this
    # (0: never); it leaves that state at uncertain_below + hysteresis.
    uncertain_below: float = UNCERTAIN_BELOW
    # The shown state (a label, or uncertain) stays at least this long once shown (0: off).
    min_hold_s: float = 0.0

    def __post_init__(self) -> None:
        if self.rule not in RULE_ALIASES:
            raise ValueError(f"unknown fusion rule {self.rule!r}; choose one of {RULES}")
        self.rule = RULE_ALIASES[self.rule]
        for name in ("reliability", "half_life", "max_age"):
            table = getattr(self, name)
            coerced = {Modality(k): float(v) for k, v in table.items()}
            if any(not math.isfinite(v) or v < 0 for v in coerced.values()):
                raise ValueError(f"fusion {name} must be non-negative")
            setattr(self, name, coerced)
        if self.smoothing_s < 0:
            raise ValueError("smoothing_s must be non-negative")
        if not 0.0 <= self.hysteresis < 1.0:
            raise ValueError("hysteresis must be in [0, 1)")
        if any(t <= 0 for t in self.temperature.values()):
            raise ValueError("temperatures must be positive")
        if not (math.isfinite(self.confidence_power) and self.confidence_power >= 0):
            raise ValueError("confidence_power must be non-negative")
        if self.certainty not in CERTAINTIES:
            raise ValueError(f"unknown certainty {self.certainty!r}; choose one of {CERTAINTIES}")
        if not 0.0 <= self.uncertain_below <= 1.0:
            raise ValueError("uncertain_below must be in [0, 1]")
        if not (math.isfinite(self.min_hold_s) and self.min_hold_s >= 0):
            raise ValueError("min_hold_s must be a non-negative number of seconds")

    def observation_of(self, model_id: str) -> ObservationModel:
        return self.observation.get(model_id, DEFAULT_OBSERVATION)


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


def expand(
    prediction: ModalityPrediction, observation: ObservationModel | None = None
) -> np.ndarray:
    """The prediction's full 7-label posterior under its observation model."""
    return (observation or DEFAULT_OBSERVATION).posterior(prediction.probs, prediction.mask)


_LOG_LABELS = math.log(NUM_LABELS)


def certainty(posteriors: np.ndarray) -> np.ndarray:
    """How sure a posterior is: ``1 - H(q) / log 7`` over its last axis (``(..., 7)`` ->
    ``(...)``), in [0, 1]; 0 exactly for the uniform posterior, 1 for a one-hot one."""
    q = np.asarray(posteriors, dtype=np.float64)
    q = q / q.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum(axis=-1)
    return np.clip(1.0 - h / _LOG_LABELS, 0.0, 1.0)


def effective_weights(
    posteriors: np.ndarray, weights: np.ndarray, confidence_power: float = 0.0
) -> np.ndarray:
    """The weights the pool uses: ``weights`` (``(n, M)``: prior x age, 0 for absent)
    times :func:`certainty` of each posterior (``(n, M, 7)``) ** ``confidence_power``.
    A row whose present posteriors all have certainty 0 (all uniform) keeps ``weights``
    (the pool of uniforms is uniform either way; this keeps a lone uniform channel
    present instead of abstaining)."""
    w = np.asarray(weights, dtype=np.float64)
    w = np.where(w > 0, w, 0.0)
    if confidence_power <= 0:
        return w
    factor = certainty(posteriors) ** confidence_power
    scaled = w * factor
    fallback = (scaled.sum(axis=1) <= 0) & (w.sum(axis=1) > 0)
    return np.where(fallback[:, None], w, scaled)


def pool_batch(
    posteriors: np.ndarray,
    weights: np.ndarray,
    rule: str = "weighted",
    confidence_power: float = 0.0,
) -> np.ndarray:
    """Pool full posteriors: ``posteriors`` ``(n, M, 7)``, ``weights`` ``(n, M)`` (0 for
    a modality that is absent). With ``confidence_power`` > 0 each weight is first
    multiplied by the posterior's :func:`certainty` ** power (:func:`effective_weights`).
    Returns ``(n, 7)``; rows with no positive weight are NaN.

    The one implementation of pooling (see the module docstring for the two rules)."""
    q = np.asarray(posteriors, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if q.ndim != 3 or q.shape[2] != NUM_LABELS or w.shape != q.shape[:2]:
        raise ValueError("pool_batch needs posteriors (n, M, 7) and weights (n, M)")
    w = effective_weights(q, w, confidence_power)
    total = w.sum(axis=1, keepdims=True)
    shares = w / np.where(total > 0, total, 1.0)
    if RULE_ALIASES.get(rule, rule) == "product":
        logs = (shares[:, :, None] * np.log(np.maximum(q, 1e-300))).sum(axis=1)
        logs = logs - logs.max(axis=1, keepdims=True)
        fused = np.exp(logs)
    else:
        fused = (shares[:, :, None] * q).sum(axis=1)
    sums = fused.sum(axis=1, keepdims=True)
    fused = fused / np.where(sums > 0, sums, 1.0)
    fused[total[:, 0] <= 0] = np.nan
    return fused


def pool(
    posteriors: Mapping[Modality, np.ndarray],
    weights: Mapping[Modality, float],
    rule: str = "weighted",
    confidence_power: float = 0.0,
) -> np.ndarray | None:
    """Pool one instant's posteriors; None when no modality has a positive weight."""
    order = [m for m in Modality if m in posteriors and weights.get(m, 0.0) > 0]
    if not order:
        return None
    q = np.stack([posteriors[m] for m in order])[None]
    w = np.array([[weights[m] for m in order]])
    return pool_batch(q, w, rule, confidence_power)[0]


def combine(
    predictions: Mapping[Modality, ModalityPrediction],
    weights: Mapping[Modality, float],
    rule: str = "weighted",
    observations: Mapping[str, ObservationModel] | None = None,
    confidence_power: float = 0.0,
) -> np.ndarray | None:
    """Expand each prediction and pool (no decay, no smoothing). ``weights`` are taken
    as they are, times each posterior's certainty ** ``confidence_power`` (0: as given).
    Returns a distribution over the canonical labels, or None when no modality has a
    positive weight."""
    obs = observations or {}
    posteriors = {m: expand(p, obs.get(p.model_id)) for m, p in predictions.items()}
    return pool(posteriors, weights, rule, confidence_power)


def support_of(
    posteriors: Mapping[Modality, np.ndarray],
    shares: Mapping[Modality, float],
    fused: np.ndarray,
    label: int,
    rule: str,
) -> dict[Modality, float]:
    """Each modality's share of the fused probability of ``label``. Linear pool: exactly
    ``s_m q_m[label] / p[label]``. Log-linear pool: the share of each modality's weighted
    log-evidence for the label against the others' mean, clipped at 0 (a modality that
    argues against the label supports it with 0)."""
    if not posteriors:
        return {}
    if RULE_ALIASES.get(rule, rule) == "product":
        raw = {}
        for m, q in posteriors.items():
            others = np.delete(np.log(q), label)
            raw[m] = max(0.0, shares.get(m, 0.0) * (math.log(q[label]) - float(others.mean())))
        total = sum(raw.values())
        if total <= 0:
            return {m: shares.get(m, 0.0) for m in posteriors}
        return {m: v / total for m, v in raw.items()}
    parts = {m: shares.get(m, 0.0) * float(q[label]) for m, q in posteriors.items()}
    total = sum(parts.values())
    return {m: v / total for m, v in parts.items()} if total > 0 else {}


def _js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0..1)."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return max(0.0, min(1.0, 0.5 * kl(p, m) + 0.5 * kl(q, m)))


def disagreement(
    predictions: Iterable[ModalityPrediction],
    observations: Mapping[str, ObservationModel] | None = None,
) -> float:
    """Mean pairwise Jensen-Shannon divergence between the predictions' full posteriors.
    0 with fewer than two."""
    obs = observations or {}
    return _mean_pairwise_js([expand(p, obs.get(p.model_id)) for p in predictions])


def _mean_pairwise_js(posts: list[np.ndarray]) -> float:
    values = [
        _js_divergence(posts[i], posts[j])
        for i in range(len(posts))
        for j in range(i + 1, len(posts))
    ]
    return float(np.mean(values)) if values else 0.0


class DisplayFilter:
    """What the display shows, from the raw pooled distributions in time order:
    exponential smoothing (time constant ``smoothing_s``), label hysteresis (the shown
    label changes only when another leads it by ``hysteresis``), the uncertain state
    (entered below ``uncertain_below``, left at ``uncertain_below + hysteresis``) and a
    minimum hold: the shown state (a label, or uncertain) stays at least ``min_hold_s``
    seconds once shown, so it changes at most ``60 / min_hold_s`` times a minute. The
    settings are passed at each step, so a fuser whose config changes mid-run follows
    them; the state is what was shown before. The :class:`Fuser` uses one, and
    ``scripts/measure_display.py`` replays raw estimates through it."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._smoothed: np.ndarray | None = None
        self._smoothed_t: float | None = None
        self._shown: int | None = None
        self._uncertain = False
        self._state: int | None = None  # the state shown: a label index, or -1 uncertain
        self._state_since = 0.0

    def step(
        self,
        raw: np.ndarray,
        now: float,
        smoothing_s: float = 0.0,
        hysteresis: float = 0.0,
        uncertain_below: float = 0.0,
        min_hold_s: float = 0.0,
    ) -> tuple[np.ndarray, int, bool]:
        """(the shown distribution, the shown label's index, uncertain)."""
        probs = self._smooth(raw, now, smoothing_s)
        top = self._shown_label(probs, hysteresis)
        unsure = self._is_uncertain(float(probs[top]), uncertain_below, hysteresis)
        state = -1 if unsure else top
        held = self._state
        if held is not None and state != held and now - self._state_since < min_hold_s:
            # Too soon after the last change: keep showing what is shown.
            if held == -1:
                return probs, top, True
            return probs, held, False
        if state != held:
            self._state, self._state_since = state, now
        return probs, top, unsure

    def _smooth(self, probs: np.ndarray, now: float, tau: float) -> np.ndarray:
        if tau <= 0 or self._smoothed is None or self._smoothed_t is None:
            self._smoothed, self._smoothed_t = probs, now
            return probs
        dt = max(0.0, now - self._smoothed_t)
        alpha = 1.0 - math.exp(-dt / tau)
        smoothed = alpha * probs + (1.0 - alpha) * self._smoothed
        smoothed = smoothed / smoothed.sum()
        self._smoothed, self._smoothed_t = smoothed, now
        return smoothed

    def _shown_label(self, probs: np.ndarray, hysteresis: float) -> int:
        """The top label, unless hysteresis keeps the one shown so far."""
        top = int(np.argmax(probs))
        held = self._shown
        if held is not None and held != top and probs[top] - probs[held] < hysteresis:
            return held
        self._shown = top
        return top

    def _is_uncertain(self, confidence: float, threshold: float, hysteresis: float) -> bool:
        if threshold <= 0:
            self._uncertain = False
        elif self._uncertain:
            self._uncertain = confidence < threshold + hysteresis
        else:
            self._uncertain = confidence < threshold
        return self._uncertain


class Fuser:
    """Holds the latest prediction per modality and fuses them on request.

    Not thread-safe by itself: the live runtime calls it from one thread.
    """

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config or FusionConfig()
        self._latest: dict[Modality, ModalityPrediction] = {}
        self._display = DisplayFilter()

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

    def withdraw(self, origin: Modality) -> list[Modality]:
        """Forget every prediction whose input came from the capture ``origin`` (a text
        prediction of heard words comes from the microphone), and the smoothing state,
        which carries what they said into later estimates. Returns the modalities
        removed."""
        gone = [m for m, p in self._latest.items() if m is origin or origin_of(p) is origin]
        for m in gone:
            del self._latest[m]
        self._smoothed = None
        self._smoothed_t = None
        self._shown = None
        return gone

    def reset(self) -> None:
        """Forget everything, smoothing state included."""
        self._latest.clear()
        self._display.reset()

    @property
    def latest(self) -> dict[Modality, ModalityPrediction]:
        return dict(self._latest)

    # -- output ------------------------------------------------------------------------

    def prior_weight(self, prediction: ModalityPrediction, now: float) -> float:
        """Reliability prior x age decay of a prediction at ``now`` (0 once too old)."""
        cfg = self.config
        m = prediction.modality
        age = max(0.0, now - prediction.evidence_t)
        if age > cfg.max_age[m]:
            return 0.0
        prior = cfg.model_reliability.get(prediction.model_id, cfg.reliability[m])
        half_life = cfg.half_life[m]
        decay = 0.5 ** (age / half_life) if half_life > 0 else (1.0 if age == 0 else 0.0)
        return prior * decay

    def certainty_of(self, prediction: ModalityPrediction) -> float:
        """How sure the prediction is on its input (see :func:`certainty`): from its
        expanded posterior (``certainty="entropy"``) or its confidence field."""
        if self.config.certainty == "confidence":
            return max(prediction.confidence, _EPS)
        return float(certainty(self.posterior_of(prediction)))

    def weight_of(self, prediction: ModalityPrediction, now: float) -> float:
        """The fusion weight of a prediction at time ``now`` (0 once it is too old):
        prior x decay x certainty ** confidence_power."""
        base = self.prior_weight(prediction, now)
        if base <= 0 or self.config.confidence_power <= 0:
            return base
        return base * self.certainty_of(prediction) ** self.config.confidence_power

    def weights_at(
        self, predictions: Mapping[Modality, ModalityPrediction], now: float
    ) -> dict[Modality, float]:
        """Each prediction's weight at ``now``; when every one with a positive prior has
        certainty 0 (all uniform), the prior x decay weights (see
        :func:`effective_weights`)."""
        weights = {m: self.weight_of(p, now) for m, p in predictions.items()}
        if sum(weights.values()) > 0:
            return weights
        return {m: self.prior_weight(p, now) for m, p in predictions.items()}

    def posterior_of(self, prediction: ModalityPrediction) -> np.ndarray:
        """A prediction's full posterior under this fuser's observation models."""
        return expand(prediction, self.config.observation_of(prediction.model_id))

    def estimate(self, now: float) -> FusedEstimate:
        """The fused estimate at time ``now``."""
        cfg = self.config
        weights = self.weights_at(self._latest, now)
        present = {m: p for m, p in self._latest.items() if weights[m] > 0}
        weights = {m: w for m, w in weights.items() if m in present}
        posteriors = {m: self.posterior_of(p) for m, p in present.items()}
        raw = pool(posteriors, weights, cfg.rule)
        if raw is None:
            self._display.reset()
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
        probs, top, uncertain = self._display.step(
            raw, now, cfg.smoothing_s, cfg.hysteresis, cfg.uncertain_below, cfg.min_hold_s
        )
        confidence = float(probs[top])
        total_w = sum(weights.values())
        shares = {m: w / total_w for m, w in weights.items()}
        valence, arousal = valence_arousal(probs)
        return FusedEstimate(
            t=now,
            probs=probs,
            label=CANONICAL_LABELS[top],
            confidence=confidence,
            valence=valence,
            arousal=arousal,
            contributions=shares,
            weights=weights,
            disagreement=_mean_pairwise_js(list(posteriors.values())),
            inputs=present,
            rule=cfg.rule,
            raw_probs=raw,
            raw_label=CANONICAL_LABELS[int(np.argmax(raw))],
            posteriors=posteriors,
            support=support_of(posteriors, shares, raw, top, cfg.rule),
            uncertain=uncertain,
        )

    def _abstain_reason(self, now: float) -> str:
        if not self._latest:
            return "no modality has a prediction"
        reasons = []
        for m, p in sorted(self._latest.items()):
            age = now - p.evidence_t
            if age > self.config.max_age[m]:
                reasons.append(f"{m.value} is too old ({age:.1f} s)")
            else:
                reasons.append(f"{m.value} has weight 0")
        return "no usable prediction: " + ", ".join(reasons)


def driver_sentence(estimate: FusedEstimate) -> str:
    """In words, which modality drove the shown label: the one with the largest support
    for it, with its own label and its share of the weight ("face: neutral, 79% of the
    weight"); and the raw label when smoothing or hysteresis is holding the shown one."""
    if estimate.abstained or estimate.label is None or not estimate.inputs:
        return ""
    ranked = sorted(estimate.support.items(), key=lambda kv: -kv[1]) or sorted(
        estimate.contributions.items(), key=lambda kv: -kv[1]
    )
    parts = []
    for modality, _ in ranked:
        prediction = estimate.inputs.get(modality)
        if prediction is None:
            continue
        share = estimate.contributions.get(modality, 0.0)
        parts.append(f"{modality.value}: {prediction.label}, {share:.0%} of the weight")
    sentence = "Driven by " + "; then ".join(parts[:1])
    if len(parts) > 1:
        sentence += " (also " + "; ".join(parts[1:]) + ")"
    if estimate.raw_label is not None and estimate.raw_label != estimate.label:
        sentence += f". Held steady: the instant estimate is {estimate.raw_label}"
    return sentence + "."


__all__ = [
    "CERTAINTIES",
    "CONFIDENCE_POWER",
    "DISPLAY_HYSTERESIS",
    "DISPLAY_MIN_HOLD_S",
    "DISPLAY_SMOOTHING_S",
    "LABEL_INDEX",
    "RULES",
    "UNCERTAIN_BELOW",
    "DisplayFilter",
    "Fuser",
    "FusionConfig",
    "apply_temperature",
    "calibrated",
    "certainty",
    "combine",
    "disagreement",
    "driver_sentence",
    "effective_weights",
    "expand",
    "pool",
    "pool_batch",
    "support_of",
]
