"""The properties of weighing each channel by how sure it is on this input (issue 23),
for both pools, tested with hypothesis:

1. certainty is in [0, 1], 0 exactly for the uniform posterior, and does not change when
   the labels are permuted;
2. it never grows as a posterior is mixed towards uniform, nor as it is softened by a
   higher temperature, so a channel's weight is monotone in how sure it is;
3. a uniform posterior changes nothing: adding it, at any prior, leaves the pool as it was;
4. the existing properties still hold with certainty on: a lone modality returns its own
   posterior (uniform included), weight 0 is absent, order does not matter, outputs are
   distributions;
5. the pool is continuous as the posteriors go to uniform (the all-uniform fallback);
6. the fuser flags an estimate uncertain below ``uncertain_below`` and, with hysteresis,
   leaves that state only at ``uncertain_below + hysteresis``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.fusion import (
    Fuser,
    FusionConfig,
    apply_temperature,
    certainty,
    effective_weights,
    pool_batch,
)
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.taxonomy import CANONICAL_LABELS, NUM_LABELS

RULES = ["weighted", "product"]
UNIFORM = np.full(NUM_LABELS, 1.0 / NUM_LABELS)

posteriors_st = (
    st.lists(st.floats(min_value=1e-4, max_value=1.0), min_size=NUM_LABELS, max_size=NUM_LABELS)
    .map(np.array)
    .map(lambda p: p / p.sum())
)
weights_st = st.floats(min_value=1e-3, max_value=10.0)
powers = st.sampled_from([0.5, 1.0, 2.0, 3.0])


@settings(max_examples=200, deadline=None)
@given(q=posteriors_st, perm=st.permutations(range(NUM_LABELS)))
def test_certainty_is_in_the_unit_interval_zero_for_uniform_and_label_blind(q, perm):
    c = float(certainty(q))
    assert 0.0 <= c <= 1.0
    assert float(certainty(q[list(perm)])) == pytest.approx(c, abs=1e-12)
    assert float(certainty(UNIFORM)) == pytest.approx(0.0, abs=1e-12)
    if np.abs(q - UNIFORM).max() > 1e-3:
        assert c > 0.0
    one_hot = np.eye(NUM_LABELS)[0]
    assert float(certainty(one_hot)) == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(q=posteriors_st, a=st.floats(0.0, 1.0), b=st.floats(0.0, 1.0))
def test_certainty_never_grows_towards_uniform(q, a, b):
    lo, hi = sorted((a, b))
    nearer = (1 - hi) * q + hi * UNIFORM
    farther = (1 - lo) * q + lo * UNIFORM
    assert certainty(nearer) <= certainty(farther) + 1e-12


@settings(max_examples=200, deadline=None)
@given(q=posteriors_st, t1=st.floats(0.2, 5.0), t2=st.floats(0.2, 5.0))
def test_certainty_never_grows_with_temperature(q, t1, t2):
    lo, hi = sorted((t1, t2))
    mask = np.ones(NUM_LABELS, dtype=bool)
    softer = apply_temperature(q, mask, hi)
    sharper = apply_temperature(q, mask, lo)
    assert certainty(softer) <= certainty(sharper) + 1e-9


@settings(max_examples=200, deadline=None)
@given(q=posteriors_st, a=st.floats(0.0, 1.0), b=st.floats(0.0, 1.0), w=weights_st, p=powers)
def test_a_channels_weight_is_monotone_in_its_certainty(q, a, b, w, p):
    lo, hi = sorted((a, b))
    other = np.roll(q, 1)
    stack = np.array([[(1 - hi) * q + hi * UNIFORM, other], [(1 - lo) * q + lo * UNIFORM, other]])
    eff = effective_weights(stack, np.array([[w, 1.0], [w, 1.0]]), p)
    assert eff[0, 0] <= eff[1, 0] + 1e-12


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=150, deadline=None)
@given(
    qs=st.lists(posteriors_st, min_size=1, max_size=3),
    data=st.data(),
    uniform_w=weights_st,
    p=powers,
)
def test_a_uniform_posterior_contributes_nothing(rule, qs, data, uniform_w, p):
    w = [data.draw(weights_st) for _ in qs]
    without = pool_batch(np.array([qs]), np.array([w]), rule, p)[0]
    with_uniform = pool_batch(np.array([[*qs, UNIFORM]]), np.array([[*w, uniform_w]]), rule, p)[0]
    if all(float(certainty(q)) == 0.0 for q in qs):
        np.testing.assert_allclose(with_uniform, UNIFORM, atol=1e-12)
    else:
        np.testing.assert_allclose(with_uniform, without, atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=100, deadline=None)
@given(q=posteriors_st, w=weights_st, p=powers, flat=st.booleans())
def test_a_lone_modality_returns_its_own_posterior_with_certainty_on(rule, q, w, p, flat):
    q = UNIFORM if flat else q
    fused = pool_batch(np.array([[q]]), np.array([[w]]), rule, p)[0]
    np.testing.assert_allclose(fused, q, atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=100, deadline=None)
@given(qs=st.lists(posteriors_st, min_size=2, max_size=3), data=st.data(), p=powers)
def test_weight_zero_absent_order_free_and_a_distribution_with_certainty_on(rule, qs, data, p):
    w = [data.draw(weights_st) for _ in qs]
    gone = data.draw(st.integers(0, len(qs) - 1))
    rest = [i for i in range(len(qs)) if i != gone]
    zeroed = [0.0 if i == gone else w[i] for i in range(len(qs))]
    with_zero = pool_batch(np.array([qs]), np.array([zeroed]), rule, p)[0]
    without = pool_batch(
        np.array([[qs[i] for i in rest]]), np.array([[w[i] for i in rest]]), rule, p
    )
    np.testing.assert_allclose(with_zero, without[0], atol=1e-12)
    results = [
        pool_batch(np.array([[qs[i] for i in order]]), np.array([[w[i] for i in order]]), rule, p)[
            0
        ]
        for order in itertools.permutations(range(len(qs)))
    ]
    for r in results:
        np.testing.assert_allclose(r, results[0], atol=1e-12)
        assert np.all(np.isfinite(r)) and np.all(r >= 0) and r.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=100, deadline=None)
@given(qs=st.lists(posteriors_st, min_size=1, max_size=3), data=st.data(), p=powers)
def test_continuous_as_every_posterior_goes_to_uniform(rule, qs, data, p):
    w = [data.draw(weights_st) for _ in qs]
    near = [(1 - 1e-6) * UNIFORM + 1e-6 * q for q in qs]
    fused = pool_batch(np.array([near]), np.array([w]), rule, p)[0]
    np.testing.assert_allclose(fused, UNIFORM, atol=1e-5)
    at = pool_batch(np.array([[UNIFORM] * len(qs)]), np.array([w]), rule, p)[0]
    np.testing.assert_allclose(at, UNIFORM, atol=1e-12)


def _prediction(top: float, t: float) -> ModalityPrediction:
    p = np.full(NUM_LABELS, (1 - top) / (NUM_LABELS - 1))
    p[1] = top
    return ModalityPrediction(Modality.FACE, t, p, np.ones(NUM_LABELS, bool), top, "m")


def test_the_fuser_uses_the_certainty_of_each_input_and_keeps_a_lone_uniform_channel():
    fuser = Fuser(FusionConfig())
    fuser.update(_prediction(1.0 / NUM_LABELS, 0.0))
    est = fuser.estimate(0.0)
    assert not est.abstained
    np.testing.assert_allclose(est.probs, UNIFORM, atol=1e-9)
    assert est.weights[Modality.FACE] == pytest.approx(FusionConfig().reliability[Modality.FACE])


@settings(max_examples=100, deadline=None)
@given(tops=st.lists(st.floats(0.15, 1.0), min_size=1, max_size=30), thr=st.floats(0.2, 0.8))
def test_uncertain_flag_follows_the_threshold(tops, thr):
    fuser = Fuser(FusionConfig(uncertain_below=thr))
    for k, top in enumerate(tops):
        fuser.update(_prediction(top, float(k)))
        est = fuser.estimate(float(k))
        assert est.uncertain == (est.confidence < thr)
        assert est.label == "happy" or est.confidence <= 1.0 / NUM_LABELS + 1e-9


@settings(max_examples=100, deadline=None)
@given(tops=st.lists(st.floats(0.15, 1.0), min_size=2, max_size=30), margin=st.floats(0.01, 0.2))
def test_uncertain_hysteresis_enters_below_and_leaves_only_above_the_margin(tops, margin):
    thr = 0.5
    fuser = Fuser(FusionConfig(uncertain_below=thr, hysteresis=margin))
    previous = False
    for k, top in enumerate(tops):
        fuser.update(_prediction(top, float(k)))
        est = fuser.estimate(float(k))
        if est.confidence < thr:
            assert est.uncertain
        elif est.confidence >= thr + margin:
            assert not est.uncertain
        else:
            assert est.uncertain == previous
        previous = est.uncertain


def test_uncertain_is_off_at_zero():
    fuser = Fuser(FusionConfig(uncertain_below=0.0))
    fuser.update(_prediction(0.2, 0.0))
    assert not fuser.estimate(0.0).uncertain


@settings(max_examples=100, deadline=None)
@given(
    tops=st.lists(st.tuples(st.integers(0, NUM_LABELS - 1), st.floats(0.15, 1.0)), min_size=2,
                  max_size=60),
    hold=st.floats(0.0, 5.0),
    thr=st.sampled_from([0.0, 0.4]),
)  # fmt: skip
def test_the_shown_state_is_held_at_least_min_hold_s(tops, hold, thr):
    fuser = Fuser(FusionConfig(uncertain_below=thr, min_hold_s=hold))
    changes, previous = [], None
    for k, (label, top) in enumerate(tops):
        t = 0.5 * k
        p = np.full(NUM_LABELS, (1 - top) / (NUM_LABELS - 1))
        p[label] = top
        fuser.update(ModalityPrediction(Modality.FACE, t, p, np.ones(NUM_LABELS, bool), top, "m"))
        est = fuser.estimate(t)
        state = "uncertain" if est.uncertain else est.label
        assert est.label is not None and est.confidence == pytest.approx(
            float(est.probs[list(CANONICAL_LABELS).index(est.label)])
        )
        if previous is not None and state != previous:
            changes.append(t)
        previous = state
    gaps = np.diff(changes)
    assert np.all(gaps >= hold - 1e-9)
