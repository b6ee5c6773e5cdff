"""The speaker-dependent temperature (:mod:`emoapp.encoders.novelty`): its properties,
and its storage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.encoders.adaptation import AdaptationError, SpeakerStats
from emoapp.encoders.embedded.voice import softmax_classifier
from emoapp.encoders.novelty import (
    ARRAYS,
    NoveltyTemperature,
    familiarity,
    knn_distance,
    temperature_of,
)

temps = st.floats(0.2, 5.0)
params = st.fixed_dictionaries(
    {
        "t_familiar": temps,
        "t_novel": temps,
        "midpoint": st.floats(0.3, 3.0),
        "slope": st.floats(0.0, 8.0),
        "min_windows": st.floats(0.0, 64.0),
    }
)
novelties = st.floats(0.0, 50.0)
weights = st.floats(0.0, 1e4)


def _t(p: dict[str, float], nov: float, w: float) -> float:
    return float(temperature_of(nov, w, **p))


@settings(max_examples=60, deadline=None)
@given(params, novelties, weights)
def test_the_temperature_stays_between_its_two_ends(p, nov, w):
    t = _t(p, nov, w)
    lo, hi = min(p["t_familiar"], p["t_novel"]), max(p["t_familiar"], p["t_novel"])
    assert lo - 1e-12 <= t <= hi + 1e-12
    assert 0.0 <= float(familiarity(nov, w, p["midpoint"], p["slope"], p["min_windows"])) <= 1.0


@settings(max_examples=60, deadline=None)
@given(params, novelties, novelties, weights)
def test_the_temperature_moves_toward_the_novel_end_as_novelty_grows(p, a, b, w):
    lo, hi = sorted((a, b))
    t_lo, t_hi = _t(p, lo, w), _t(p, hi, w)
    # the distance to the novel end never grows with novelty
    assert abs(t_hi - p["t_novel"]) <= abs(t_lo - p["t_novel"]) + 1e-12


@settings(max_examples=60, deadline=None)
@given(params, novelties, weights, weights)
def test_more_speech_at_the_same_novelty_never_makes_it_less_familiar(p, nov, a, b):
    lo, hi = sorted((a, b))
    f = [float(familiarity(nov, w, p["midpoint"], p["slope"], p["min_windows"])) for w in (lo, hi)]
    assert f[1] >= f[0] - 1e-12


@settings(max_examples=60, deadline=None)
@given(params, st.floats(0.01, 50.0), weights, st.floats(1e-7, 1e-4))
def test_the_temperature_is_continuous_in_novelty(p, nov, w, eps):
    # |dT/dnovelty| <= |t_novel - t_familiar| * slope / (4 * novelty)
    bound = abs(p["t_novel"] - p["t_familiar"]) * p["slope"] / (4 * nov) * eps
    assert abs(_t(p, nov + eps, w) - _t(p, nov, w)) <= 1.01 * bound + 1e-12


@settings(max_examples=40, deadline=None)
@given(params, novelties)
def test_no_speech_gets_the_novel_end(p, nov):
    assert _t(p, nov, 0.0) == pytest.approx(p["t_novel"])
    assert _t(p, float("nan"), 10.0) == pytest.approx(p["t_novel"])


def _model(seed: int = 0, d: int = 5, m: int = 6, **kw: float) -> NoveltyTemperature:
    rng = np.random.default_rng(seed)
    p = {"t_familiar": 1.0, "t_novel": 2.2, "midpoint": 1.1, "slope": 8.0, "min_windows": 8.0}
    p.update(kw)
    return NoveltyTemperature.build(rng.normal(size=(m, d)), np.zeros(d), np.ones(d), p)


def test_a_speaker_with_no_statistics_gets_the_conservative_temperature():
    model = _model()
    assert model.temperature(None) == model.conservative == 2.2
    assert model.temperature(SpeakerStats.empty(5)) == 2.2
    assert model.novelty(None) is None


def test_a_training_speaker_heard_at_length_is_familiar_and_a_stranger_is_not():
    model = _model()
    own = model.speakers[0]
    near = SpeakerStats.of(np.tile(own, (400, 1)))
    far = SpeakerStats.of(np.tile(own + 25.0, (400, 1)))
    assert model.novelty(near) < 1.0 < model.novelty(far)  # type: ignore[operator]
    assert model.temperature(near) < 1.3
    assert model.temperature(far) == pytest.approx(2.2, abs=1e-3)
    # the same speaker heard for two windows only: mostly the conservative temperature
    brief = SpeakerStats.of(np.tile(own, (2, 1)))
    assert model.temperature(brief) > 1.9


def test_a_typical_training_speaker_has_novelty_one_against_the_others():
    model = _model(m=12)
    against_others = [
        knn_distance(model.speakers[i], np.delete(model.speakers, i, axis=0), 3)[0]
        for i in range(12)
    ]
    assert np.median(against_others) / model.distance_scale == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 50), st.floats(-30, 30))
def test_probabilities_stay_distributions_at_any_speakers_temperature(seed, n, shift):
    rng = np.random.default_rng(seed)
    model = _model(seed)
    stats = SpeakerStats.of(rng.normal(shift, 1.0, size=(n, 5))) if n else None
    t = model.temperature(stats)
    w = {
        "mean": np.zeros(5),
        "scale": np.ones(5),
        "out_w": rng.normal(size=(5, 7)) * 10,
        "out_b": rng.normal(size=7),
    }
    p = softmax_classifier(rng.normal(size=(4, 5)) * 50, w, t)
    assert np.all(p >= 0) and np.allclose(p.sum(1), 1.0)


def test_round_trip_and_bad_settings():
    model = _model()
    raw, arrays = model.to_json(), model.arrays()
    assert set(arrays) == set(ARRAYS)
    back = NoveltyTemperature.from_artefact(raw, arrays)
    stats = SpeakerStats.of(np.ones((20, 5)))
    assert back.temperature(stats) == pytest.approx(model.temperature(stats))
    with pytest.raises(AdaptationError, match="lack"):
        NoveltyTemperature.from_artefact(raw, {"novelty_speakers": arrays["novelty_speakers"]})
    with pytest.raises(AdaptationError, match="kind"):
        NoveltyTemperature.from_artefact({**raw, "kind": "other"}, arrays)
    with pytest.raises(AdaptationError, match="t_novel"):
        NoveltyTemperature.from_artefact({**raw, "t_novel": -1.0}, arrays)
    with pytest.raises(AdaptationError, match="bad settings"):
        NoveltyTemperature.from_artefact({k: v for k, v in raw.items() if k != "midpoint"}, arrays)
    with pytest.raises(AdaptationError, match="do not match"):
        NoveltyTemperature.from_artefact({**raw, "speakers": 99}, arrays)
    with pytest.raises(AdaptationError, match="do not fit"):
        model.temperature(SpeakerStats.of(np.ones((3, 4))))
