"""The harness below the command: the resumable cache, fusion of systems, fitting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from emoapp.core.fusion import CONFIDENCE_POWER, FusionConfig, certainty, combine, expand
from emoapp.core.messages import Modality
from emoapp.core.taxonomy import LABEL_INDEX, NUM_LABELS
from emoapp.encoders.base import EncoderConfig
from emoapp.encoders.text import TextEncoder
from emoapp.evaluation.datasets import EvalDataset, EvalItem, read_dataset
from emoapp.evaluation.fitting import (
    fit,
    fit_reliability,
    fused_log_likelihood,
    split_items,
)
from emoapp.evaluation.predict import ItemPrediction, PredictionCache, PredictionSettings
from emoapp.evaluation.runner import EvaluationOptions, evaluate
from emoapp.evaluation.scoring import FusionSetup, System, common_items, system_probs
from tests.evaluation.fixtures import make_goemotions


class CountingEncoder:
    """Wraps an encoder, counts what it is asked to encode, and can be made to stop
    (as Ctrl-C would) on a given call."""

    def __init__(self, inner: Any, interrupt_on_call: int | None = None) -> None:
        self.inner = inner
        self.modality = inner.modality
        self.calls = 0
        self.items = 0
        self.interrupt_on_call = interrupt_on_call

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def baseline(self) -> bool:
        return self.inner.baseline

    def load(self) -> None:
        self.inner.load()

    def info(self) -> Any:
        return self.inner.info()

    def encode(self, items: Sequence[Any]) -> list[Any]:
        self.calls += 1
        if self.calls == self.interrupt_on_call:
            raise KeyboardInterrupt
        self.items += len(items)
        return self.inner.encode(items)


@pytest.fixture
def text_encoder(tiny_models):
    encoder = TextEncoder(EncoderConfig(model=str(tiny_models["text"]), device="cpu"))
    encoder.load()
    return encoder


def test_interrupted_run_resumes_without_recomputing(tmp_path, text_encoder, capsys):
    dataset = read_dataset(make_goemotions(tmp_path / "ge", copies=2))  # 16 items
    cache = tmp_path / "report" / "predictions.jsonl"
    options = EvaluationOptions(
        settings=PredictionSettings(batch_size=5), bootstrap=0, cache_path=cache
    )
    first = CountingEncoder(text_encoder, interrupt_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        evaluate(dataset, {Modality.TEXT: first}, options)
    assert first.items == 10  # two batches of 5 done before the interruption
    assert "run the same command again to resume" in capsys.readouterr().err
    assert len(cache.read_text().splitlines()) == 10

    second = CountingEncoder(text_encoder)
    result = evaluate(dataset, {Modality.TEXT: second}, options)
    assert second.items == 6  # only what was missing
    assert result.cache_hits == 10
    assert result.scores[0].report.n == 16

    third = CountingEncoder(text_encoder)
    again = evaluate(dataset, {Modality.TEXT: third}, options)
    assert third.calls == 0  # every prediction is a cache hit
    assert again.scores[0].report.accuracy == result.scores[0].report.accuracy


def test_cache_skips_a_line_cut_short(tmp_path):
    path = tmp_path / "p.jsonl"
    p = ItemPrediction("a", Modality.TEXT, "m", "ok", np.eye(NUM_LABELS)[[1]], np.ones(7, bool), 1)
    with PredictionCache(path) as cache:
        cache.put("k1", p)
    with path.open("a") as fh:
        fh.write('{"v": 1, "key": "k2", "item": "b", "modal')  # interrupted mid-write
    reread = PredictionCache(path)
    assert "k1" in reread and "k2" not in reread
    assert reread.broken_lines == 1
    hit = reread.get("k1")
    assert hit is not None and hit.probs().tolist() == np.eye(NUM_LABELS)[1].tolist()


def prediction(item_id: str, modality: Modality, probs: list[float], mask=None) -> ItemPrediction:
    p = np.asarray(probs, dtype=float)
    m = np.ones(NUM_LABELS, bool) if mask is None else np.asarray(mask, bool)
    return ItemPrediction(item_id, modality, f"{modality.value}-model", "ok", p[None, :], m, 1)


def test_fused_systems_use_the_apps_fusion(tmp_path):
    face = [0.6, 0.1, 0.1, 0.1, 0.05, 0.05, 0.0]
    voice = [0.2, 0.0, 0.7, 0.1, 0.0, 0.0, 0.0]
    voice_mask = [1, 1, 1, 1, 0, 0, 0]
    predictions = {
        Modality.FACE: {"x": prediction("x", Modality.FACE, face)},
        Modality.VOICE: {
            "x": prediction("x", Modality.VOICE, voice, voice_mask),
            "y": prediction("y", Modality.VOICE, voice, voice_mask),
        },
    }
    setup = FusionSetup(FusionConfig())
    fused = system_probs(
        System((Modality.FACE, Modality.VOICE)), ["x", "y", "z"], predictions, setup
    )
    assert set(fused) == {"x", "y"}  # z: nothing predicted, the system abstains
    # y has only voice: fusion of one modality is that modality's full posterior
    assert fused["y"] == pytest.approx(expand(setup.prediction(predictions[Modality.VOICE]["y"])))
    px = {
        Modality.FACE: setup.prediction(predictions[Modality.FACE]["x"]),
        Modality.VOICE: setup.prediction(predictions[Modality.VOICE]["x"]),
    }
    # weights: reliability prior (face 1, voice 0.7) x certainty of each posterior, to the
    # default certainty power
    certain = {m: float(certainty(expand(p))) ** CONFIDENCE_POWER for m, p in px.items()}
    expected = combine(
        px,
        {
            Modality.FACE: 1.0 * certain[Modality.FACE],
            Modality.VOICE: 0.7 * certain[Modality.VOICE],
        },
    )
    assert fused["x"] == pytest.approx(expected)
    # the rule before issue 23: x confidence (its top probability)
    old = FusionSetup(FusionConfig(certainty="confidence"))
    old_fused = system_probs(System((Modality.FACE, Modality.VOICE)), ["x"], predictions, old)
    expected = combine(
        px,
        {
            Modality.FACE: 1.0 * 0.6**CONFIDENCE_POWER,
            Modality.VOICE: 0.7 * 0.7**CONFIDENCE_POWER,
        },
    )
    assert old_fused["x"] == pytest.approx(expected)
    items = [EvalItem(i, "neutral", text="t") for i in ("x", "y", "z")]
    assert [i.id for i in common_items(items, predictions)] == ["x"]


def test_temperature_changes_fusion_weights():
    p = prediction("x", Modality.TEXT, [0.9, 0.1, 0, 0, 0, 0, 0])
    hot = FusionSetup(FusionConfig(), {"text-model": 3.0}).prediction(p)
    assert hot.confidence < 0.9
    assert hot.label == "neutral"


def test_fit_learns_to_trust_the_informative_modality():
    rng = np.random.default_rng(0)
    items, face, voice = [], {}, {}
    labels = ["neutral", "happy", "sad", "angry"]
    for n in range(120):
        label = labels[n % 4]
        item = EvalItem(f"i{n}", label, text="t")
        items.append(item)
        right = np.full(NUM_LABELS, 0.05)
        right[LABEL_INDEX[label]] = 0.7
        face[item.id] = prediction(item.id, Modality.FACE, list(right / right.sum()))
        noise = rng.dirichlet(np.ones(NUM_LABELS) * 0.3)  # confident and uninformative
        voice[item.id] = prediction(item.id, Modality.VOICE, list(noise))
    predictions = {Modality.FACE: face, Modality.VOICE: voice}
    fit_part, held = split_items(items, 0.5, seed=1)
    assert len(fit_part) == len(held) == 60
    assert {i.label for i in fit_part} == set(labels)
    reliability, _ = fit_reliability(fit_part, predictions, FusionConfig(), {})
    assert reliability[Modality.FACE] == 1.0
    assert reliability[Modality.VOICE] <= 0.1
    result = fit(fit_part, predictions, FusionConfig())
    assert result.reliability_fitted
    assert result.log_likelihood_after > result.log_likelihood_before
    assert set(result.temperatures) == {"face-model", "voice-model"}
    # ...and what each model's outputs mean: the noisy voice's columns stay flat-ish,
    # the informative face's diagonal is strong.
    face_obs = result.observations["face-model"].matrix_for(np.ones(NUM_LABELS, bool))
    k = LABEL_INDEX["happy"]
    assert face_obs[k, k] > 0.3 and face_obs[k, k] > 2 * face_obs[LABEL_INDEX["sad"], k]


def test_evaluate_text_dataset_scores(tmp_path, text_encoder):
    dataset = EvalDataset(
        "tiny",
        "csv",
        tmp_path,
        [EvalItem("a", "happy", text="I am so happy"), EvalItem("b", "sad", text="   ")],
    )
    result = evaluate(dataset, {Modality.TEXT: text_encoder}, EvaluationOptions(bootstrap=0))
    cover = result.run.coverage[Modality.TEXT]
    # blank text is no input at all (not an abstention of the model)
    assert (cover.items, cover.with_input, cover.predicted) == (2, 1, 1)
    assert result.run.predictions[Modality.TEXT]["b"].status == "no_input"
    assert result.scores[0].report.n == 1
    assert result.common is None  # one modality: nothing to compare


def test_fit_log_likelihood_matches_the_per_item_path():
    rng = np.random.default_rng(4)
    items, predictions = [], {m: {} for m in Modality}
    for n in range(60):
        item = EvalItem(f"i{n}", ["happy", "sad", "angry"][n % 3], text="t")
        items.append(item)
        for m in Modality:
            if rng.random() < 0.8:
                units = rng.dirichlet(np.ones(NUM_LABELS), size=3)
                predictions[m][item.id] = ItemPrediction(
                    item.id, m, f"{m.value}-model", "ok", units, np.ones(NUM_LABELS, bool), 3
                )
    temperatures = {"face-model": 0.7, "voice-model": 1.5}
    reliability, ll = fit_reliability(items, predictions, FusionConfig(), temperatures)
    setup = FusionSetup(
        FusionConfig(reliability={m.value: v for m, v in reliability.items()}), temperatures
    )
    assert ll == pytest.approx(fused_log_likelihood(items, predictions, setup), abs=1e-9)
