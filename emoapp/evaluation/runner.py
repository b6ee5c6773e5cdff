"""One evaluation, start to finish: predictions (through the cache), scores for every
system, and with ``fit`` the fitted temperatures and reliabilities, compared before and
after on the held-out part. The command (``emoapp evaluate``) reads the dataset, loads
the encoders and writes the report; this module holds what lies between, so tests can
hand it any encoders.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from emoapp.core.errors import EmoappError
from emoapp.core.fusion import FusionConfig
from emoapp.core.messages import Modality
from emoapp.encoders.base import Encoder, EncoderInfo
from emoapp.evaluation.datasets import EvalDataset, EvalItem
from emoapp.evaluation.fitting import FitResult, fit, profile_toml, split_items, write_profile
from emoapp.evaluation.metrics import BOOTSTRAP_SAMPLES
from emoapp.evaluation.predict import (
    MODALITY_ORDER,
    PredictionCache,
    PredictionRun,
    PredictionSettings,
    Predictor,
)
from emoapp.evaluation.scoring import FusionSetup, SystemScore, common_items, score_all

CACHE_NAME = "predictions.jsonl"


def dataset_modalities(dataset: EvalDataset) -> list[Modality]:
    """The modalities the dataset has any input for."""
    has = {
        Modality.FACE: any(item.video is not None for item in dataset.items),
        Modality.VOICE: any(item.audio is not None for item in dataset.items),
        Modality.TEXT: any(item.text for item in dataset.items),
    }
    return [m for m in MODALITY_ORDER if has[m]]


@dataclass
class FitOptions:
    """What ``--fit`` does and where the profile goes."""

    fraction: float = 0.5
    profile_path: Path | None = None
    profile_name: str = "fitted"
    description: str = ""
    model_refs: dict[Modality, str | None] = field(default_factory=dict)


@dataclass
class EvaluationOptions:
    settings: PredictionSettings = field(default_factory=PredictionSettings)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    temperatures: dict[str, float] = field(default_factory=dict)
    """Temperature per model id (a fitted profile's), applied before scoring."""
    fusion_source: str = ""
    """Where the fusion settings came from, for the report (e.g. a profile file)."""
    bootstrap: int = BOOTSTRAP_SAMPLES
    seed: int = 0
    cache_path: Path | None = None
    progress: bool = False
    fit: FitOptions | None = None


@dataclass
class FitOutcome:
    result: FitResult
    before: list[SystemScore]
    after: list[SystemScore]
    profile_path: Path | None
    profile_text: str


@dataclass
class EvaluationResult:
    dataset: EvalDataset
    run: PredictionRun
    models: dict[Modality, EncoderInfo]
    scores: list[SystemScore]
    common: list[SystemScore] | None
    common_items: int
    options: EvaluationOptions
    fit: FitOutcome | None = None
    skipped_modalities: dict[Modality, str] = field(default_factory=dict)
    """Modalities asked for that were not evaluated, and why."""
    elapsed_s: float = 0.0
    cache_hits: int = 0


def evaluate(
    dataset: EvalDataset,
    encoders: dict[Modality, Encoder],
    options: EvaluationOptions | None = None,
    skipped_modalities: dict[Modality, str] | None = None,
) -> EvaluationResult:
    """Predict (through the cache), score every system, and fit when asked."""
    options = options or EvaluationOptions()
    started = time.perf_counter()
    if not encoders:
        raise ValueError("no encoder to evaluate")
    with PredictionCache(options.cache_path) as cache:
        predictor = Predictor(encoders, cache, options.settings, options.progress)
        try:
            run = predictor.run(dataset.items)
        except KeyboardInterrupt:
            if options.cache_path is not None:
                print(
                    f"emoapp: predictions so far are kept in {options.cache_path}; run the "
                    "same command again to resume",
                    file=sys.stderr,
                )
            raise
    setup = FusionSetup(options.fusion, dict(options.temperatures))
    scores = score_all(dataset.items, run.predictions, setup, options.bootstrap, options.seed)
    common = None
    shared: list[EvalItem] = []
    if len(run.predictions) > 1:
        shared = common_items(dataset.items, run.predictions)
        common = score_all(shared, run.predictions, setup, options.bootstrap, options.seed, False)
    result = EvaluationResult(
        dataset=dataset,
        run=run,
        models={m: encoders[m].info() for m in run.predictions},
        scores=scores,
        common=common,
        common_items=len(shared),
        options=options,
        skipped_modalities=dict(skipped_modalities or {}),
        cache_hits=sum(c.cached for c in run.coverage.values()),
    )
    if options.fit is not None:
        result.fit = _fit(dataset, run, options, options.fit)
    result.elapsed_s = time.perf_counter() - started
    return result


def _fit(
    dataset: EvalDataset, run: PredictionRun, options: EvaluationOptions, fit_options: FitOptions
) -> FitOutcome:
    fit_part, held = split_items(dataset.items, fit_options.fraction, options.seed)
    if not fit_part or not held:
        raise EmoappError(
            f"--fit needs at least 2 items to split into a fit and a held-out part "
            f"({len(dataset.items)} here)"
        )
    result = fit(fit_part, run.predictions, options.fusion, len(held), dict(options.temperatures))
    before_setup = FusionSetup(options.fusion, dict(options.temperatures))
    before = score_all(held, run.predictions, before_setup, options.bootstrap, options.seed, False)
    after = score_all(
        held, run.predictions, result.setup(options.fusion), options.bootstrap, options.seed, False
    )
    text = profile_toml(
        fit_options.profile_name,
        fit_options.description
        or f"Fitted by emoapp evaluate on {dataset.name} ({len(fit_part)} items)",
        fit_options.model_refs or {m: run.model_ids.get(m) for m in Modality},
        result,
        options.fusion,
        source=dataset.name,
    )
    path = None
    if fit_options.profile_path is not None:
        path = write_profile(fit_options.profile_path, text)
    return FitOutcome(result, before, after, path, text)
