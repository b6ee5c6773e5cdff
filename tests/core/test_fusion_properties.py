"""The properties late fusion must have, for both pools (issue 12), tested with
hypothesis over random predictions, masks and weights:

1. a lone modality returns its own (expanded) posterior;
2. weight 0 is the same as absent, and the result is continuous as a weight goes to 0;
3. raising one modality's weight never moves the fused distribution away from its
   posterior (KL(q_m || fused) does not grow);
4. when two modalities put the same label first, the fused probability of that label is
   at least the smaller of theirs;
5. the order of modalities does not matter;
6. outputs sum to 1, with no NaN;
7. a modality holding at least 75 % of the weight whose posterior gives its top label at
   least 0.7 decides the fused label (linear pool: always; log-linear pool: while every
   other posterior keeps each label above (3/7)**3 of its top, the bound under which a
   logarithmic pool cannot be vetoed; a test shows the veto beyond it).

Plus the two cases the issue names and the smile detector's "no smile".
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.fusion import Fuser, FusionConfig, combine, expand, pool, pool_batch
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.observation import ObservationModel
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX, NUM_LABELS

RULES = ["weighted", "product"]


def _pred(modality, probs, mask, model="m"):
    p = np.where(mask, probs, 0.0)
    p = p / p.sum()
    return ModalityPrediction(modality, 0.0, p, mask.copy(), float(p.max()), model)


distributions = st.lists(
    st.floats(min_value=0.0, max_value=1.0), min_size=NUM_LABELS, max_size=NUM_LABELS
).map(np.array)
masks = (
    st.lists(st.booleans(), min_size=NUM_LABELS, max_size=NUM_LABELS)
    .filter(any)
    .map(lambda xs: np.array(xs, dtype=bool))
)


@st.composite
def predictions(draw, min_size=1, max_size=3):
    """Up to three modalities, each with a random mask and distribution over it."""
    n = draw(st.integers(min_size, max_size))
    out = {}
    for modality in list(Modality)[:n]:
        mask = draw(masks)
        p = draw(distributions)
        p = np.where(mask, p, 0.0)
        if p.sum() <= 0:
            p = mask.astype(float)
        out[modality] = _pred(modality, p, mask, model=f"model-{modality.value}")
    return out


weights_st = st.floats(min_value=1e-3, max_value=10.0)


def _kl(p, q):
    return float(np.sum(p * np.log(p / q)))


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=150, deadline=None)
@given(preds=predictions(1, 1), w=weights_st)
def test_a_lone_modality_returns_its_own_posterior(rule, preds, w):
    ((m, p),) = preds.items()
    fused = combine(preds, {m: w}, rule)
    np.testing.assert_allclose(fused, expand(p), atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=150, deadline=None)
@given(preds=predictions(2, 3), data=st.data())
def test_weight_zero_is_absent_and_the_limit_is_continuous(rule, preds, data):
    weights = {m: data.draw(weights_st) for m in preds}
    gone = data.draw(st.sampled_from(sorted(preds)))
    rest = {m: p for m, p in preds.items() if m != gone}
    without = combine(rest, {m: weights[m] for m in rest}, rule)
    with_zero = combine(preds, {**weights, gone: 0.0}, rule)
    np.testing.assert_allclose(with_zero, without, atol=1e-12)
    # Continuity: a weight 1e-9 of the smallest other weight changes the result by at most
    # about that share times the spread of its log-posterior (under 10 for any posterior).
    tiny = combine(preds, {**weights, gone: 1e-9 * min(weights[m] for m in rest)}, rule)
    np.testing.assert_allclose(tiny, without, atol=1e-6)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=150, deadline=None)
@given(
    preds=predictions(2, 3),
    data=st.data(),
    factor=st.floats(min_value=1.0, max_value=100.0),
)
def test_more_weight_never_moves_the_pool_away_from_that_modality(rule, preds, data, factor):
    weights = {m: data.draw(weights_st) for m in preds}
    m = data.draw(st.sampled_from(sorted(preds)))
    q = expand(preds[m])
    before = combine(preds, weights, rule)
    after = combine(preds, {**weights, m: weights[m] * factor}, rule)
    assert _kl(q, after) <= _kl(q, before) + 1e-9


@st.composite
def agreeing_pairs(draw):
    """Two predictions whose posteriors put the same label first."""
    k = draw(st.integers(0, NUM_LABELS - 1))
    out = {}
    for modality in (Modality.FACE, Modality.VOICE):
        mask = draw(masks)
        mask[k] = True
        mask[(k + draw(st.integers(1, NUM_LABELS - 1))) % NUM_LABELS] = True  # 2+ outputs
        p = np.where(mask, draw(distributions), 0.0)
        p[k] = p.max() + draw(st.floats(min_value=0.01, max_value=1.0))
        out[modality] = _pred(modality, p, mask)
    return k, out


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=200, deadline=None)
@given(case=agreeing_pairs(), data=st.data())
def test_two_modalities_agreeing_on_a_label_give_it_at_least_the_smaller_of_theirs(
    rule, case, data
):
    k, preds = case
    (a, pa), (b, pb) = preds.items()
    qa, qb = expand(pa), expand(pb)
    assert np.argmax(qa) == np.argmax(qb) == k
    weights = {a: data.draw(weights_st), b: data.draw(weights_st)}
    fused = combine(preds, weights, rule)
    assert fused[k] >= min(qa[k], qb[k]) - 1e-12


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=100, deadline=None)
@given(preds=predictions(2, 3), data=st.data())
def test_the_order_of_modalities_does_not_matter(rule, preds, data):
    weights = {m: data.draw(weights_st) for m in preds}
    posteriors = [expand(p) for p in preds.values()]
    w = [weights[m] for m in preds]
    results = [
        pool_batch(
            np.array([[posteriors[i] for i in order]]), np.array([[w[i] for i in order]]), rule
        )[0]
        for order in itertools.permutations(range(len(posteriors)))
    ]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=200, deadline=None)
@given(
    preds=predictions(1, 3), data=st.data(), ages=st.lists(st.floats(0, 3), min_size=3, max_size=3)
)
def test_the_estimate_is_a_distribution_without_nan(rule, preds, data, ages):
    fuser = Fuser(FusionConfig(rule=rule))
    for (m, p), age in zip(preds.items(), ages, strict=False):
        fuser.update(ModalityPrediction(m, -age, p.probs, p.mask, p.confidence, p.model_id))
    est = fuser.estimate(0.0)
    if est.abstained:
        return
    assert np.all(np.isfinite(est.probs)) and np.all(est.probs >= 0)
    assert est.probs.sum() == pytest.approx(1.0)
    assert sum(est.contributions.values()) == pytest.approx(1.0)
    assert sum(est.support.values()) == pytest.approx(1.0)


@st.composite
def dominance_cases(draw, flat_others=False):
    """A modality with >= 75 % of the weight whose posterior's top label is >= 0.7, and
    one or two others (with ``flat_others``: posteriors within the veto bound)."""
    k = draw(st.integers(0, NUM_LABELS - 1))
    mask = np.ones(NUM_LABELS, dtype=bool)
    rest = draw(distributions) + 1e-3
    strength = draw(st.floats(min_value=0.71, max_value=1.0))
    p = (1 - strength) * rest / rest.sum()
    p[k] += strength
    dominant = _pred(Modality.FACE, p, mask, "dominant")
    preds = {Modality.FACE: dominant}
    for modality in list(Modality)[1 : 1 + draw(st.integers(1, 2))]:
        other_mask = draw(masks)
        q = draw(distributions)
        if flat_others:
            other_mask[:] = True
            q = 0.3 + 0.7 * q  # every label within a factor 1/0.3 of the top
        q = np.where(other_mask, q, 0.0)
        if q.sum() <= 0:
            q = other_mask.astype(float)
        preds[modality] = _pred(modality, q, other_mask, f"other-{modality.value}")
    share = draw(st.floats(min_value=0.75, max_value=1.0))
    others = [o for o in preds if o is not Modality.FACE]
    raw = [draw(st.floats(min_value=1e-3, max_value=1.0)) for _ in others]
    weights = {Modality.FACE: share}
    weights.update({o: r * (1 - share) / sum(raw) for o, r in zip(others, raw, strict=True)})
    return expand(dominant), preds, weights


@settings(max_examples=300, deadline=None)
@given(case=dominance_cases())
def test_linear_pool_a_dominant_confident_modality_decides(case):
    q, preds, weights = case
    assert q.max() >= 0.7
    fused = combine(preds, weights, "weighted")
    assert np.argmax(fused) == np.argmax(q)


@settings(max_examples=300, deadline=None)
@given(case=dominance_cases(flat_others=True))
def test_log_linear_pool_a_dominant_confident_modality_decides_within_the_veto_bound(case):
    q, preds, weights = case
    assert q.max() >= 0.7
    for o, p in preds.items():
        if o is not Modality.FACE:
            qo = expand(p)
            assert qo.min() >= (3 / 7) ** 3 * qo.max()
    fused = combine(preds, weights, "product")
    assert np.argmax(fused) == np.argmax(q)


def test_log_linear_pool_can_be_vetoed_beyond_the_bound_and_the_linear_pool_cannot():
    face = np.full(NUM_LABELS, 1e-9)
    face[LABEL_INDEX["neutral"]], face[LABEL_INDEX["happy"]] = 0.7, 0.3
    voice = np.full(NUM_LABELS, 1e-9)
    voice[LABEL_INDEX["happy"]] = 1.0
    preds = {
        Modality.FACE: _pred(Modality.FACE, face, np.ones(NUM_LABELS, bool)),
        Modality.VOICE: _pred(Modality.VOICE, voice, np.ones(NUM_LABELS, bool)),
    }
    weights = {Modality.FACE: 0.75, Modality.VOICE: 0.25}
    assert CANONICAL_LABELS[int(np.argmax(combine(preds, weights, "product")))] == "happy"
    assert CANONICAL_LABELS[int(np.argmax(combine(preds, weights, "weighted")))] == "neutral"


# --- the cases the issue names ------------------------------------------------------------


def _mask(*labels):
    m = np.zeros(NUM_LABELS, dtype=bool)
    for label in labels:
        m[LABEL_INDEX[label]] = True
    return m


SMILE = ObservationModel(
    covers={"neutral": ["neutral", "sad", "angry", "fearful", "disgusted", "surprised"]}
)


@pytest.mark.parametrize("rule", RULES)
def test_smile_happy_beside_text_fearful_fuses_to_happy(rule):
    # Bundled sample, t=7.0 on the baseline profile: face (smile detector) says happy 0.91
    # with 55 % of the weight, text says fearful 0.52.
    face_mask = _mask("neutral", "happy")
    face = _pred(
        Modality.FACE, np.where(face_mask, [0.09, 0.91, 0, 0, 0, 0, 0], 0), face_mask, "smile"
    )
    text_p = np.array([0.12, 0.08, 0.1, 0.08, 0.52, 0.05, 0.05])
    text = _pred(Modality.TEXT, text_p, np.ones(NUM_LABELS, bool), "lexicon")
    fused = combine(
        {Modality.FACE: face, Modality.TEXT: text},
        {Modality.FACE: 0.55, Modality.TEXT: 0.45},
        rule,
        {"smile": SMILE},
    )
    assert CANONICAL_LABELS[int(np.argmax(fused))] == "happy"
    assert fused[LABEL_INDEX["fearful"]] < 0.52  # never above the only model that says it


@pytest.mark.parametrize("rule", RULES)
def test_neutral_face_with_most_weight_beside_a_4_class_voice_fuses_to_neutral(rule):
    face_p = np.array([0.92, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01])
    face = _pred(Modality.FACE, face_p, np.ones(NUM_LABELS, bool), "vit")
    voice_mask = _mask("neutral", "happy", "sad", "angry")
    voice_p = np.where(voice_mask, [0.1, 0.43, 0.07, 0.40, 0, 0, 0], 0)
    voice = _pred(Modality.VOICE, voice_p, voice_mask, "hubert")
    fuser = Fuser(
        FusionConfig(
            rule=rule,
            reliability={"face": 0.79 / 0.92, "voice": 0.21 / 0.43, "text": 1},
            certainty="confidence",  # the weights of that case: prior x top probability
            confidence_power=1.0,
        )
    )
    fuser.update(face)
    fuser.update(voice)
    est = fuser.estimate(0.0)
    assert est.contributions[Modality.FACE] == pytest.approx(0.79)
    assert est.label == "neutral"


def test_no_smile_is_spread_over_six_labels_not_called_neutral():
    mask = _mask("neutral", "happy")
    no_smile = _pred(Modality.FACE, np.where(mask, [1.0, 0, 0, 0, 0, 0, 0], 0), mask)
    post = SMILE.posterior(no_smile.probs, mask)
    assert post[LABEL_INDEX["happy"]] < 0.01
    others = np.delete(post, LABEL_INDEX["happy"])
    np.testing.assert_allclose(others, others[0])  # all six alike: it cannot tell them apart
    assert SMILE.cannot_tell_apart(mask) == [
        ["neutral", "sad", "angry", "fearful", "disgusted", "surprised"]
    ]


def test_pool_is_what_the_fuser_uses():
    preds = {
        Modality.FACE: _pred(Modality.FACE, np.arange(1, 8, dtype=float), np.ones(7, bool)),
        Modality.TEXT: _pred(Modality.TEXT, np.arange(7, 0, -1, dtype=float), np.ones(7, bool)),
    }
    fuser = Fuser()
    for p in preds.values():
        fuser.update(p)
    est = fuser.estimate(0.0)
    direct = pool({m: expand(p) for m, p in preds.items()}, est.weights, "weighted")
    np.testing.assert_allclose(est.probs, direct, atol=1e-12)
