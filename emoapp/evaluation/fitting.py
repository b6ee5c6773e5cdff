"""``--fit``: learn per-model temperatures, observation models and per-modality fusion
reliabilities on one part of a dataset, and write them as a profile the app can load.

1. :func:`split_items`: a seeded split into a *fit* part and a *held-out* part,
   stratified by gold label.
2. Per model, a temperature (:mod:`emoapp.evaluation.calibration`) fitted on the fit
   part's units (each text, frame or voice window, labelled with its item's gold label):
   the app applies temperature to each prediction as it comes, so that is what is fitted.
3. Per model, an observation model ``P(output | true label)``
   (:func:`emoapp.core.observation.fit_observation`) from the calibrated units of the
   fit part, smoothed towards the label map's, so fusion knows what each output really
   means (e.g. which true labels a model calls "neutral").
4. With two modalities or more, the reliability prior of each modality, by grid search
   (each in {0, 0.1, 0.2, 0.3, 0.5, 0.7, 1}, the largest fixed at 1, since only ratios
   matter) maximising the mean log-likelihood of the gold labels under the fused,
   calibrated distribution on the fit items. An item the fusion abstains on counts as a
   uniform guess, so switching a modality off is not a way to dodge hard items.
5. :func:`write_profile`: ``[profiles.NAME]`` with the model references and
   ``[profiles.NAME.fusion]`` holding ``reliability``, ``temperature`` and
   ``observation``.

Fusion goes through :func:`emoapp.core.fusion.pool_batch`, the app's own pooling.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from emoapp.core.fusion import FusionConfig, apply_temperature, pool_batch
from emoapp.core.messages import Modality
from emoapp.core.observation import ObservationModel, fit_observation
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX, NUM_LABELS
from emoapp.evaluation.calibration import fit_temperature, temperature_nll
from emoapp.evaluation.datasets import EvalItem
from emoapp.evaluation.scoring import FusionSetup, Predictions

RELIABILITY_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
_LL_FLOOR = 1e-6


def split_items(
    items: Sequence[EvalItem], fit_fraction: float = 0.5, seed: int = 0
) -> tuple[list[EvalItem], list[EvalItem]]:
    """(fit, held-out), stratified by gold label and seeded.

    Each label puts ``floor(fit_fraction * n)`` of its (shuffled) items in the fit part;
    the labels' leftover fractions are then settled together (in a seeded order) so the
    fit part holds ``round(fit_fraction * N)`` items overall, and each part at least one
    when there are two items or more. Items keep their original order in each part.
    """
    if not 0.0 < fit_fraction < 1.0:
        raise ValueError("fit_fraction must be between 0 and 1")
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_label[item.label].append(index)
    rng = random.Random(seed)
    fit_indices: set[int] = set()
    candidates: list[int] = []
    for label in sorted(by_label):
        members = by_label[label][:]
        rng.shuffle(members)
        k = math.floor(fit_fraction * len(members))
        fit_indices.update(members[:k])
        if k < len(members) and fit_fraction * len(members) > k:
            candidates.append(members[k])
    target = round(fit_fraction * len(items))
    if len(items) >= 2:
        target = min(max(target, 1), len(items) - 1)
    rng.shuffle(candidates)
    fit_indices.update(candidates[: max(0, target - len(fit_indices))])
    fit = [item for i, item in enumerate(items) if i in fit_indices]
    held = [item for i, item in enumerate(items) if i not in fit_indices]
    return fit, held


@dataclass
class TemperatureFit:
    """One model's temperature and what it did to the fit part's per-unit NLL."""

    model_id: str
    temperature: float
    units: int
    nll_before: float
    nll_after: float


@dataclass
class FitResult:
    """What ``--fit`` learnt, and on what."""

    temperatures: dict[str, TemperatureFit] = field(default_factory=dict)
    observations: dict[str, ObservationModel] = field(default_factory=dict)
    """Fitted observation model per model id, with the mask it was fitted for."""
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    reliability: dict[Modality, float] = field(default_factory=dict)
    reliability_fitted: bool = False
    log_likelihood_before: float = float("nan")
    log_likelihood_after: float = float("nan")
    fit_items: int = 0
    held_out_items: int = 0

    def setup(self, config: FusionConfig) -> FusionSetup:
        """The fusion setup with the fitted temperatures and reliabilities."""
        reliability = {**config.reliability, **self.reliability}
        observation = {**config.observation, **self.observations}
        return FusionSetup(
            replace(config, reliability=reliability, observation=observation),
            {m: t.temperature for m, t in self.temperatures.items()},
        )


def fit_temperatures(
    items: Sequence[EvalItem], predictions: Predictions
) -> dict[str, TemperatureFit]:
    """A temperature per model (one per modality here), fitted on every predicted unit."""
    gold_of = {item.id: LABEL_INDEX[item.label] for item in items}
    fits: dict[str, TemperatureFit] = {}
    for by_id in predictions.values():
        units, masks, gold = [], [], []
        model_id = ""
        for item_id, label in gold_of.items():
            p = by_id.get(item_id)
            if p is None or not p.predicted:
                continue
            assert p.mask is not None
            model_id = p.model_id
            units.append(p.units)
            masks.append(np.repeat(p.mask[None, :], len(p.units), axis=0))
            gold.append(np.full(len(p.units), label))
        if not units:
            continue
        u, m, g = np.concatenate(units), np.concatenate(masks), np.concatenate(gold)
        temperature = fit_temperature(u, m, g)
        expressible = m[np.arange(len(g)), g]
        fits[model_id] = TemperatureFit(
            model_id,
            temperature,
            int(expressible.sum()),
            temperature_nll(u[expressible], m[expressible], g[expressible], 1.0)
            if expressible.any()
            else float("nan"),
            temperature_nll(u[expressible], m[expressible], g[expressible], temperature)
            if expressible.any()
            else float("nan"),
        )
    return fits


def fused_log_likelihood(
    items: Sequence[EvalItem], predictions: Predictions, setup: FusionSetup
) -> float:
    """Mean log-likelihood of the gold labels under the fusion of every modality, over
    items where any modality predicted; an abstention scores as a uniform guess."""
    total, n = 0.0, 0
    modalities = list(predictions)
    for item in items:
        present = {}
        for m in modalities:
            p = predictions[m].get(item.id)
            if p is not None and p.predicted:
                present[m] = setup.prediction(p)
        if not present:
            continue
        fused = setup.fuse(present)
        if fused is None:
            total += math.log(1.0 / NUM_LABELS)
        else:
            total += math.log(max(float(fused[LABEL_INDEX[item.label]]), _LL_FLOOR))
        n += 1
    return total / n if n else float("nan")


_EPS = 1e-6  # emoapp.core.fusion's floor for confidences


def fit_observations(
    items: Sequence[EvalItem],
    predictions: Predictions,
    temperatures: Mapping[str, float],
) -> tuple[dict[str, ObservationModel], dict[str, np.ndarray]]:
    """An observation model per model id, fitted on every predicted (calibrated) unit of
    ``items``; and the mask each was fitted for."""
    gold_of = {item.id: LABEL_INDEX[item.label] for item in items}
    fitted: dict[str, ObservationModel] = {}
    masks: dict[str, np.ndarray] = {}
    for by_id in predictions.values():
        units, gold, model_id, mask = [], [], "", None
        for item_id, label in gold_of.items():
            p = by_id.get(item_id)
            if p is None or not p.predicted:
                continue
            model_id, mask = p.model_id, p.mask
            units.append(apply_temperature(p.units, p.mask, temperatures.get(p.model_id, 1.0)))
            gold.append(np.full(len(p.units), label))
        if not units or mask is None:
            continue
        u, g = np.concatenate(units), np.concatenate(gold)
        fitted[model_id] = fit_observation(u, np.repeat(mask[None], len(u), 0), g)
        masks[model_id] = mask.copy()
    return fitted, masks


@dataclass
class _FitArrays:
    """The fit items' calibrated predictions as arrays, modalities in a fixed order
    (items no modality predicted are left out)."""

    posteriors: np.ndarray  # (n, M, 7): each prediction expanded by its observation model
    present: np.ndarray  # (n, M)
    confidence: np.ndarray  # (n, M)
    gold: np.ndarray  # (n,)


def _fit_arrays(
    items: Sequence[EvalItem],
    predictions: Predictions,
    modalities: Sequence[Modality],
    temperatures: Mapping[str, float],
    observations: Mapping[str, ObservationModel] | None = None,
) -> _FitArrays:
    setup = FusionSetup(FusionConfig(observation=dict(observations or {})), dict(temperatures))
    rows = []
    for item in items:
        row = []
        for m in modalities:
            p = predictions[m].get(item.id)
            row.append(setup.prediction(p) if p is not None and p.predicted else None)
        if any(x is not None for x in row):
            rows.append((LABEL_INDEX[item.label], row))
    n, k = len(rows), len(modalities)
    arrays = _FitArrays(
        np.full((n, k, NUM_LABELS), 1.0 / NUM_LABELS),
        np.zeros((n, k), dtype=bool),
        np.zeros((n, k)),
        np.array([g for g, _ in rows], dtype=np.int64),
    )
    for i, (_, row) in enumerate(rows):
        for j, pred in enumerate(row):
            if pred is not None:
                arrays.posteriors[i, j] = setup.posterior(pred)
                arrays.present[i, j] = True
                arrays.confidence[i, j] = pred.confidence
    return arrays


def _batch_log_likelihood(
    arrays: _FitArrays, reliability: Sequence[float], config: FusionConfig
) -> float:
    """:func:`fused_log_likelihood` on precomputed arrays (the fuser's weight at age 0:
    reliability x certainty ** power)."""
    if len(arrays.gold) == 0:
        return float("nan")
    prior = np.where(arrays.present, np.asarray(reliability)[None, :], 0.0)
    if config.certainty == "confidence":
        confidence = np.maximum(arrays.confidence, _EPS) ** config.confidence_power
        fused = pool_batch(arrays.posteriors, prior * confidence, config.rule)
    else:
        fused = pool_batch(arrays.posteriors, prior, config.rule, config.confidence_power)
    picked = fused[np.arange(len(arrays.gold)), arrays.gold]
    logs = np.where(
        np.isnan(picked), math.log(1.0 / NUM_LABELS), np.log(np.maximum(picked, _LL_FLOOR))
    )
    return float(logs.mean())


def fit_reliability(
    items: Sequence[EvalItem],
    predictions: Predictions,
    config: FusionConfig,
    temperatures: Mapping[str, float],
    grid: Sequence[float] = RELIABILITY_GRID,
    observations: Mapping[str, ObservationModel] | None = None,
) -> tuple[dict[Modality, float], float]:
    """The reliability per modality (largest 1) that maximises
    :func:`fused_log_likelihood`, and that log-likelihood. Ties go to the first grid
    point, so the search is deterministic."""
    modalities = list(predictions)
    arrays = _fit_arrays(items, predictions, modalities, temperatures, observations)
    best: tuple[float, tuple[float, ...]] | None = None
    top = max(grid)
    for values in itertools.product(grid, repeat=len(modalities)):
        if max(values) != top:
            continue
        ll = _batch_log_likelihood(arrays, values, config)
        if best is None or ll > best[0] + 1e-12:
            best = (ll, values)
    assert best is not None
    return dict(zip(modalities, best[1], strict=True)), best[0]


def fit(
    fit_items: Sequence[EvalItem],
    predictions: Predictions,
    config: FusionConfig,
    held_out_items: int = 0,
    temperatures_before: Mapping[str, float] | None = None,
) -> FitResult:
    """Temperatures, observation models, then (with two modalities or more)
    reliabilities, on ``fit_items``. ``config`` and ``temperatures_before`` are what the
    fit is compared against."""
    result = FitResult(fit_items=len(fit_items), held_out_items=held_out_items)
    result.temperatures = fit_temperatures(fit_items, predictions)
    temperatures = {m: t.temperature for m, t in result.temperatures.items()}
    result.observations, result.masks = fit_observations(fit_items, predictions, temperatures)
    observations = {**config.observation, **result.observations}
    before = FusionSetup(config, dict(temperatures_before or {}))
    result.log_likelihood_before = fused_log_likelihood(fit_items, predictions, before)
    if len(predictions) >= 2:
        result.reliability, result.log_likelihood_after = fit_reliability(
            fit_items, predictions, config, temperatures, observations=observations
        )
        result.reliability_fitted = True
    else:
        result.reliability = {m: config.reliability[m] for m in predictions}
        result.log_likelihood_after = fused_log_likelihood(
            fit_items,
            predictions,
            FusionSetup(replace(config, observation=observations), temperatures),
        )
    return result


# --- the profile file -----------------------------------------------------------------


def _toml_string(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=True)


def _toml_key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "")
    return key if bare.isalnum() and bare.isascii() else _toml_string(key)


def _toml_number(value: float) -> str:
    return repr(round(float(value), 4))


def profile_toml(
    name: str,
    description: str,
    models: Mapping[Modality, str | None],
    result: FitResult,
    config: FusionConfig,
    source: str = "",
) -> str:
    """The text of a profile file holding one profile, ``name``."""
    reliability = {**config.reliability, **result.reliability}
    lines = [
        f"# Written by `emoapp evaluate --fit`{f' on {source}' if source else ''}.",
        f"# Use it with: emoapp --profiles-file THIS_FILE --profile {name}",
        "# (or copy the tables into your own profile file).",
        "",
        f"[profiles.{_toml_key(name)}]",
        f"description = {_toml_string(description)}",
    ]
    for modality in (Modality.FACE, Modality.VOICE, Modality.TEXT):
        lines.append(f"{modality.value} = {_toml_string(models.get(modality) or 'none')}")
    lines += [
        "",
        f"[profiles.{_toml_key(name)}.fusion]",
        "# Reliability prior of each modality (only the ratios matter; "
        f"fusion rule: {config.rule}).",
        "reliability = { "
        + ", ".join(f"{m.value} = {_toml_number(reliability[m])}" for m in Modality)
        + " }",
        "# Temperature per model id: a model's probabilities p over the labels it can",
        "# express become p ** (1 / T), renormalised (T > 1 softens, T < 1 sharpens).",
        "temperature = { "
        + ", ".join(
            f"{_toml_string(model_id)} = {_toml_number(t.temperature)}"
            for model_id, t in sorted(result.temperatures.items())
        )
        + " }",
    ]
    if result.observations:
        lines += [
            "# Observation model per model id: rows are what the model outputs, columns",
            "# the true label, both in the order " + ", ".join(CANONICAL_LABELS) + ";",
            "# entry [i][j] = P(model says label i | the true label is j), fitted on data.",
            "[profiles." + _toml_key(name) + ".fusion.observation]",
        ]
        for model_id, obs in sorted(result.observations.items()):
            rows = obs.to_rows(result.masks[model_id])
            lines.append(
                f"{_toml_string(model_id)} = ["
                + ", ".join("[" + ", ".join(repr(v) for v in row) + "]" for row in rows)
                + "]"
            )
    lines.append("")
    return "\n".join(lines)


def write_profile(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
