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
    NEUTRAL_ARRAYS,
    NoveltyTemperature,
    familiarity,
    knn_distance,
    temperature_of,
    typical_distance,
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


# --- a "calibrate to me" reading, judged against the training speakers' neutral speech ---


def _old_temperature(model: NoveltyTemperature, stats: SpeakerStats | None) -> float:
    """The temperature as the code before the neutral reference computed it (a copy of
    that code: the mean against every training speaker's all-emotion mean)."""
    if stats is None or not stats.weight > 0:
        return float(model.t_novel)
    mean = stats.total / stats.weight
    if not np.all(np.isfinite(mean)):
        return float(model.t_novel)
    z = (mean - model.offset) / model.scale
    nov = float(knn_distance(z, model.speakers, model.neighbours)[0] / model.distance_scale)
    return float(
        temperature_of(
            nov,
            stats.weight,
            model.t_familiar,
            model.t_novel,
            model.midpoint,
            model.slope,
            model.min_windows,
        )
    )


def _with_neutral(seed: int = 0, d: int = 5, m: int = 6, shift: float = 0.0, **kw: float):
    """A model whose training speakers' neutral means sit ``shift`` (per feature) off
    their all-emotion means, plus noise."""
    rng = np.random.default_rng(seed)
    p = {"t_familiar": 0.7, "t_novel": 2.1, "midpoint": 1.1, "slope": 8.0, "min_windows": 8.0}
    p.update(kw)
    means = rng.normal(size=(m, d))
    neutral = means + shift + rng.normal(0.0, 0.3, size=(m, d))
    offset, scale = rng.normal(size=d), rng.uniform(0.5, 2.0, size=d)
    raw = means * scale + offset
    return (
        NoveltyTemperature.build(raw, offset, scale, p, 3, neutral * scale + offset),
        raw,
        neutral * scale + offset,
    )


def _stats(rng: np.random.Generator, centre: np.ndarray, n: int, reading: float) -> SpeakerStats:
    """Statistics of ``n`` windows around ``centre``, a share ``reading`` of their weight
    from a neutral reading."""
    rows = centre + rng.normal(0.0, 1.0, size=(n, centre.size))
    stats = SpeakerStats.of(rows, "running")
    stats.reading = reading * stats.weight
    return stats


seeds = st.integers(0, 10_000)
shares = st.floats(0.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(1, 300), st.floats(-20, 20), st.floats(0.0, 3.0), params)
def test_without_a_reading_the_temperature_is_the_old_codes_bit_for_bit(seed, n, at, shift, p):
    model, raw, _ = _with_neutral(seed, shift=shift, **p)
    rng = np.random.default_rng(seed + 1)
    stats = _stats(rng, np.full(model.size, at), n, 0.0)
    assert model.temperature(stats) == _old_temperature(model, stats)
    assert model.temperature(None) == _old_temperature(model, None)
    # the stored arrays leave the all-emotion reference as it was built without them (from
    # the same raw means: a round trip through speakers * scale + offset moves the last bit)
    bare = NoveltyTemperature.build(raw, model.offset, model.scale, p, 3)
    assert bare.distance_scale == model.distance_scale
    assert bare.temperature(stats) == model.temperature(stats)


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(1, 300), st.floats(-20, 20), shares, st.floats(0.0, 3.0))
def test_an_artefact_without_the_neutral_means_judges_a_reading_as_before(
    seed, n, at, share, shift
):
    model, _, _ = _with_neutral(seed, shift=shift)
    raw, arrays = model.to_json(), model.arrays()
    assert set(arrays) == set(ARRAYS) | set(NEUTRAL_ARRAYS)
    old_raw = {k: v for k, v in raw.items() if not k.startswith("neutral_")}
    old_arrays = {k: v for k, v in arrays.items() if k in ARRAYS}
    old = NoveltyTemperature.from_artefact(old_raw, old_arrays)
    assert not old.judges_readings and model.judges_readings
    stats = _stats(np.random.default_rng(seed), np.full(model.size, at), n, share)
    assert old.reading_share(stats) == 0.0
    assert old.temperature(stats) == _old_temperature(old, stats)


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(1, 300), st.floats(-20, 20), shares, st.floats(0.0, 3.0), params)
def test_with_a_reading_the_temperature_stays_between_its_two_ends(seed, n, at, share, shift, p):
    model, _, _ = _with_neutral(seed, shift=shift, **p)
    stats = _stats(np.random.default_rng(seed), np.full(model.size, at), n, share)
    t = model.temperature(stats)
    lo, hi = sorted((p["t_familiar"], p["t_novel"]))
    assert lo - 1e-12 <= t <= hi + 1e-12
    nov = model.novelty(stats)
    assert nov is not None and nov >= 0.0


@settings(max_examples=60, deadline=None)
@given(seeds, st.floats(-20, 20), shares, shares, st.floats(0.0, 3.0))
def test_the_novelty_moves_continuously_with_the_readings_share(seed, at, a, b, shift):
    """For one mean, the novelty is linear in the share: from the all-emotion novelty
    (share 0) to the neutral one (share 1), never outside them."""
    model, _, _ = _with_neutral(seed, shift=shift)
    mean = np.full(model.size, at) + np.random.default_rng(seed).normal(size=model.size)
    n_all = model.novelty_of_mean(mean)
    n_neu = model.neutral_novelty_of_mean(mean)
    assert model.mixed_novelty(mean, 0.0) == n_all
    assert model.mixed_novelty(mean, 1.0) == pytest.approx(n_neu, rel=1e-12)
    na, nb = model.mixed_novelty(mean, a), model.mixed_novelty(mean, b)
    assert abs(na - nb) <= abs(a - b) * abs(n_neu - n_all) * (1 + 1e-9) + 1e-12
    assert min(n_all, n_neu) - 1e-9 <= na <= max(n_all, n_neu) + 1e-9


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(2, 200), st.floats(-5, 5), st.floats(1e-9, 1e-3))
def test_a_tiny_reading_share_changes_the_temperature_tinily(seed, n, at, eps):
    model, _, _ = _with_neutral(seed, shift=1.5)
    rng = np.random.default_rng(seed)
    stats = _stats(rng, np.full(model.size, at), n, 0.0)
    touched = SpeakerStats(
        stats.total, stats.weight, 0.0, "", {}, stats.total_sq, eps * stats.weight
    )
    n0, n1 = model.novelty(stats), model.novelty(touched)
    assert n0 is not None and n1 is not None
    mean = stats.total / stats.weight
    assert abs(n1 - n0) <= eps * abs(model.neutral_novelty_of_mean(mean) - n0) * (1 + 1e-9) + 1e-12
    p = model
    bound = abs(p.t_novel - p.t_familiar) * p.slope / (4 * min(n0, n1)) * abs(n1 - n0)
    assert abs(model.temperature(touched) - model.temperature(stats)) <= 1.01 * bound + 1e-12


def test_a_reading_like_a_training_speakers_neutral_speech_looks_familiar():
    """Training speakers whose neutral speech sits off their all-emotion centre: a new
    speaker's reading near one of their neutral means looks novel against the
    all-emotion means (the old way) and familiar against the neutral ones."""
    model, raw, neutral = _with_neutral(3, d=6, m=10, shift=2.0)
    rng = np.random.default_rng(9)
    reading = SpeakerStats.of(neutral[4] + rng.normal(0, 0.01, size=(200, 6)) * model.scale)
    reading.reading = reading.weight
    assert model.reading_share(reading) == 1.0
    old = _old_temperature(model, reading)
    new = model.temperature(reading)
    nov = model.novelty(reading)
    assert nov is not None and nov < 1.0 < model.novelty_of_mean(reading.mean)
    assert new < old
    # and that speaker's own speech in all emotions is unaffected
    speech = SpeakerStats.of(raw[4] + rng.normal(0, 0.01, size=(200, 6)) * model.scale)
    assert model.temperature(speech) == _old_temperature(model, speech)


def test_the_reading_share_follows_merging_and_scaling():
    rng = np.random.default_rng(0)
    reading = SpeakerStats.of(rng.normal(size=(10, 4)), "calibration")
    reading.reading = reading.weight
    running = SpeakerStats.of(rng.normal(size=(30, 4)), "running")
    live = reading.scaled(4.0).merged(running)
    assert live.reading == 40.0 and live.weight == 70.0
    assert running.merged(reading.scaled(4.0)).reading == 40.0
    assert running.merged(None).reading == 0.0 and reading.merged(None).reading == 10.0
    model = NoveltyTemperature.build(
        rng.normal(size=(6, 4)),
        np.zeros(4),
        np.ones(4),
        {"t_familiar": 0.7, "t_novel": 2.1, "midpoint": 1.1, "slope": 8.0},
        3,
        rng.normal(size=(6, 4)),
    )
    assert model.reading_share(live) == pytest.approx(40.0 / 70.0)
    assert model.reading_share(running) == 0.0 and model.reading_share(None) == 0.0


def test_a_stored_calibration_is_a_reading(tmp_path):
    stats = SpeakerStats.of(np.random.default_rng(1).normal(size=(12, 4)), "calibration")
    stats.reading = stats.weight
    back = SpeakerStats.load(stats.save(tmp_path / "cal.json", "m"), "m")
    assert back.reading == back.weight == 12.0


def test_the_neutral_reference_round_trips_and_bad_ones_are_refused():
    model, _, _ = _with_neutral(0, shift=1.0)
    raw, arrays = model.to_json(), model.arrays()
    assert raw["neutral_speakers"] == 6
    assert model.neutral_speakers is not None
    assert raw["neutral_distance_scale"] == typical_distance(model.neutral_speakers, 3)
    back = NoveltyTemperature.from_artefact(raw, arrays)
    stats = SpeakerStats.of(np.ones((20, 5)))
    stats.reading = 10.0
    assert back.temperature(stats) == model.temperature(stats)
    no_scale = {k: v for k, v in raw.items() if k != "neutral_distance_scale"}
    with pytest.raises(AdaptationError, match="come together"):
        NoveltyTemperature.from_artefact(no_scale, arrays)
    with pytest.raises(AdaptationError, match="come together"):
        NoveltyTemperature.from_artefact(raw, {k: arrays[k] for k in ARRAYS})
    with pytest.raises(AdaptationError, match="do not match"):
        NoveltyTemperature.from_artefact({**raw, "neutral_speakers": 99}, arrays)
    with pytest.raises(AdaptationError, match="neutral speakers do not fit"):
        NoveltyTemperature.from_artefact(
            raw, {**arrays, "novelty_neutral_speakers": np.ones((3, 4))}
        )
    with pytest.raises(AdaptationError, match="neutral_distance_scale"):
        NoveltyTemperature.from_artefact({**raw, "neutral_distance_scale": 0.0}, arrays)
