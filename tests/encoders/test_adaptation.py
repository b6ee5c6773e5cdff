"""Properties of the per-speaker adaptation stage (emoapp.encoders.adaptation)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from emoapp.encoders.adaptation import AdaptationError, AdaptationSpec, SpeakerStats

D = 5
finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
vec = arrays(np.float64, D, elements=finite)
rows = st.integers(1, 12).flatmap(lambda n: arrays(np.float64, (n, D), elements=finite))
masks = arrays(np.float64, D, elements=st.sampled_from([0.0, 1.0]))


def spec(ref: np.ndarray, mask: np.ndarray, prior: float) -> AdaptationSpec:
    return AdaptationSpec(ref, mask, prior)


@settings(max_examples=60, deadline=None)
@given(vec, masks, rows, st.floats(0, 100))
def test_no_statistics_is_the_population_model(ref, mask, x, prior):
    s = spec(ref, mask, prior)
    assert np.allclose(s.adapt(x, None), x)
    assert np.allclose(s.adapt(x, SpeakerStats.empty(D)), x)


@settings(max_examples=60, deadline=None)
@given(vec, masks, rows)
def test_infinite_prior_is_the_population_model(ref, mask, x):
    s = spec(ref, mask, math.inf)
    assert np.allclose(s.adapt(x, SpeakerStats.of(x)), x)


@settings(max_examples=60, deadline=None)
@given(vec, masks, rows, st.floats(0.1, 20))
def test_unlimited_speech_tends_to_the_speakers_own_mean(ref, mask, x, prior):
    s = spec(ref, mask, prior)
    stats = SpeakerStats.of(np.repeat(x, 10_000, axis=0))
    mean = x.mean(axis=0)
    assert np.allclose(s.speaker_mean(stats), mean, atol=1e-2 * (1 + np.abs(mean - ref).max()))
    # with no prior the adapted speaker mean sits exactly on the reference (masked features)
    exact = spec(ref, mask, 0.0).adapt(x, SpeakerStats.of(x)).mean(axis=0)
    assert np.allclose(exact[mask == 1], ref[mask == 1], atol=1e-9 * (1 + np.abs(x).max()))


@settings(max_examples=60, deadline=None)
@given(vec, masks, rows, vec)
def test_a_speaker_wide_shift_of_adapted_features_is_removed(ref, mask, x, shift):
    """A constant offset on every window of a speaker (another voice's pitch level or
    timbre on the masked features) changes nothing once adapted with prior 0."""
    s = spec(ref, mask, 0.0)
    shifted = x + mask * shift
    assert np.allclose(
        s.adapt(shifted, SpeakerStats.of(shifted)), s.adapt(x, SpeakerStats.of(x)), atol=1e-6
    )


@settings(max_examples=60, deadline=None)
@given(vec, masks, rows, st.floats(0, 30))
def test_unmasked_features_never_move(ref, mask, x, prior):
    s = spec(ref, mask, prior)
    out = s.adapt(x + 7.0, SpeakerStats.of(x + 7.0))
    assert np.allclose(out[:, mask == 0], (x + 7.0)[:, mask == 0])


@settings(max_examples=60, deadline=None)
@given(vec, rows, st.floats(1, 50), st.integers(1, 40))
def test_shrinkage_keeps_part_of_a_one_emotion_speakers_offset(ref, x, prior, n):
    """A speaker heard in one emotion only (all windows offset by d from the reference):
    with prior k and n windows only n/(n+k) of the offset is removed, so k/(n+k) of it
    (the emotion, for all the model can tell) is kept."""
    s = spec(ref, np.ones(D), prior)
    d = np.arange(1.0, D + 1)
    windows = np.tile(ref + d, (n, 1))
    adapted = s.adapt(windows, SpeakerStats.of(windows))
    assert np.allclose(adapted - ref, d * prior / (n + prior))


def test_stats_add_merge_and_mean():
    a = SpeakerStats.empty(3)
    a.add(np.array([1.0, 2.0, 3.0]))
    a.add(np.array([3.0, 2.0, 1.0]), weight=3.0, seconds=0.5)
    a.add(np.array([np.nan, 0, 0]))  # ignored
    assert a.weight == 4.0 and a.seconds == 0.5
    assert np.allclose(a.mean, [2.5, 2.0, 1.5])
    b = a.merged(SpeakerStats.of(np.zeros((4, 3))))
    assert b.weight == 8.0 and np.allclose(b.mean, [1.25, 1.0, 0.75])
    with pytest.raises(AdaptationError):
        a.add(np.zeros(4))


def test_calibration_round_trip_and_refusals(tmp_path: Path):
    stats = SpeakerStats.of(np.arange(6.0).reshape(2, 3), seconds_each=0.5)
    path = stats.save(tmp_path / "cal.json", "embedded/voice-x")
    back = SpeakerStats.load(path, "embedded/voice-x")
    assert np.allclose(back.total, stats.total) and back.weight == 2.0
    assert back.source == "calibration"
    with pytest.raises(AdaptationError, match="made for"):
        SpeakerStats.load(path, "embedded/other")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(AdaptationError, match="not an emoapp voice calibration"):
        SpeakerStats.load(tmp_path / "bad.json")
    with pytest.raises(AdaptationError, match="do not fit"):
        AdaptationSpec(np.zeros(4), np.ones(4), 1.0).adapt(np.zeros(4), back)


def test_spec_validation_and_json():
    with pytest.raises(AdaptationError):
        AdaptationSpec(np.zeros(3), np.ones(2), 1.0)
    with pytest.raises(AdaptationError):
        AdaptationSpec(np.zeros(2), np.array([0.0, 2.0]), 1.0)
    with pytest.raises(AdaptationError):
        AdaptationSpec(np.zeros(2), np.ones(2), -1.0)
    s = AdaptationSpec(np.array([1.0, 2.0]), np.array([1.0, 0.0]), 8.0, 3.0)
    back = AdaptationSpec.from_json(s.to_json())
    assert np.allclose(back.reference, s.reference) and back.prior_weight == 8.0
    assert back.calibration_weight == 3.0


pos = arrays(np.float64, D, elements=st.floats(0.1, 10))


@settings(max_examples=60, deadline=None)
@given(
    vec,
    pos,
    st.integers(2, 12).flatmap(lambda n: arrays(np.float64, (n, D), elements=finite)),
    vec,
    pos,
    st.floats(0, 50),
)
def test_z_score_adaptation_limits_and_invariance(ref, var, x, shift, gain, prior):
    z = AdaptationSpec(ref, np.ones(D), prior, reference_var=var)
    # no statistics: the population model
    assert np.allclose(z.adapt(x, None), x)
    spread = x.std(axis=0) > 1e-3 * (1 + np.abs(x).max(axis=0))
    if prior == 0:
        # a speaker-wide affine change (another voice's level and range) is removed
        y = x * gain + shift
        # ... where both speakers' variance is clear of the floor (1e-6 x the population's)
        spread &= np.minimum(x.var(axis=0), y.var(axis=0)) > 1e-5 * var
        a = z.adapt(x, SpeakerStats.of(x))
        b = z.adapt(y, SpeakerStats.of(y))
        assert np.allclose(a[:, spread], b[:, spread], atol=1e-5 * (1 + np.abs(a).max()))
        # and the speaker's windows take the population's mean and variance
        assert np.allclose(a.mean(axis=0)[spread], ref[spread], atol=1e-6 * (1 + np.abs(x).max()))
        assert np.allclose(a.var(axis=0)[spread], var[spread], rtol=1e-4)


def test_z_score_json_round_trip_and_missing_squares():
    s = AdaptationSpec(np.zeros(2), np.ones(2), 4.0, reference_var=np.array([1.0, 2.0]))
    back = AdaptationSpec.from_json(s.to_json())
    assert back.reference_var is not None and np.allclose(back.reference_var, [1.0, 2.0])
    no_squares = SpeakerStats(np.ones(2), 2.0)
    with pytest.raises(AdaptationError, match="no spread"):
        s.adapt(np.zeros(2), no_squares)
    with pytest.raises(AdaptationError):
        AdaptationSpec(np.zeros(2), np.ones(2), 1.0, reference_var=np.array([1.0, 0.0]))
