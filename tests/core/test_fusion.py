"""Late fusion by example (DESIGN.md: expand each prediction to a full posterior, weight
by reliability, confidence and age, pool with one normaliser, abstain with nothing).
The hypothesis properties are in test_fusion_properties.py."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.fusion import (
    Fuser,
    FusionConfig,
    calibrated,
    certainty,
    combine,
    disagreement,
    expand,
)
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.observation import FLOOR
from emoapp.core.taxonomy import LABEL_INDEX, NUM_LABELS

ALL = np.ones(NUM_LABELS, dtype=bool)


def pred(modality, probs, t=0.0, mask=None, confidence=None, model="m"):
    mask = ALL.copy() if mask is None else np.asarray(mask, dtype=bool)
    p = np.where(mask, np.asarray(probs, dtype=float), 0.0)
    p = p / p.sum()
    conf = float(p.max()) if confidence is None else confidence
    return ModalityPrediction(modality, t, p, mask, conf, model)


def onehotish(label, strength=0.7, mask=None):
    mask = ALL if mask is None else np.asarray(mask, dtype=bool)
    p = np.where(mask, (1 - strength) / (mask.sum() - 1), 0.0)
    p[LABEL_INDEX[label]] = strength
    return p


distributions = st.lists(
    st.floats(min_value=0.01, max_value=1.0), min_size=NUM_LABELS, max_size=NUM_LABELS
).map(lambda xs: np.array(xs) / sum(xs))
masks = (
    st.lists(st.booleans(), min_size=NUM_LABELS, max_size=NUM_LABELS)
    .filter(any)
    .map(lambda xs: np.array(xs, dtype=bool))
)
modalities = st.sampled_from(list(Modality))
rules = st.sampled_from(["weighted", "product"])


@settings(max_examples=200, deadline=None)
@given(p=distributions, mask=masks, modality=modalities, rule=rules)
def test_one_modality_alone_gives_its_own_posterior(p, mask, modality, rule):
    fuser = Fuser(FusionConfig(rule=rule))
    prediction = pred(modality, p, mask=mask)
    fuser.update(prediction)
    est = fuser.estimate(now=0.0)
    assert not est.abstained
    np.testing.assert_allclose(est.probs, expand(prediction), atol=1e-9)
    if mask.all():  # a 7-class model's posterior is its own output (up to the floor)
        np.testing.assert_allclose(est.probs, prediction.probs, atol=FLOOR)
    assert est.contributions == {modality: pytest.approx(1.0)}
    assert est.disagreement == 0.0


@settings(max_examples=200, deadline=None)
@given(
    ps=st.lists(st.tuples(distributions, masks), min_size=1, max_size=3),
    rule=rules,
    ages=st.lists(st.floats(0, 1.5), min_size=3, max_size=3),
)
def test_output_is_a_distribution_and_contributions_sum_to_one(ps, rule, ages):
    fuser = Fuser(FusionConfig(rule=rule))
    for (p, mask), modality, age in zip(ps, Modality, ages, strict=False):
        fuser.update(pred(modality, p, t=-age, mask=mask))
    est = fuser.estimate(now=0.0)
    assert est.probs.sum() == pytest.approx(1.0)
    assert (est.probs >= 0).all()
    assert sum(est.contributions.values()) == pytest.approx(1.0)
    assert 0.0 <= est.disagreement <= 1.0
    assert 0.0 <= est.valence <= 1.0 and 0.0 <= est.arousal <= 1.0


def test_a_model_neither_vetoes_nor_hands_over_labels_it_cannot_express():
    # Voice (4 classes) cannot say disgusted; the face says disgusted strongly.
    voice_mask = [LABEL_INDEX[x] for x in ("neutral", "happy", "sad", "angry")]
    vm = np.zeros(NUM_LABELS, dtype=bool)
    vm[voice_mask] = True
    face = pred(Modality.FACE, onehotish("disgusted", 0.6))
    voice = pred(Modality.VOICE, onehotish("neutral", 0.4, vm), mask=vm)
    fused = combine(
        {Modality.FACE: face, Modality.VOICE: voice}, {Modality.FACE: 1, Modality.VOICE: 1}
    )
    # The voice's posterior leaves disgust its share of "I cannot tell", not zero.
    assert np.argmax(fused) == LABEL_INDEX["disgusted"]
    # Versus a voice model that *can* express disgust and gives it ~0: disgust drops.
    voice_full = pred(Modality.VOICE, np.where(vm, onehotish("neutral", 0.4, vm), 1e-6))
    fused_zero_vote = combine(
        {Modality.FACE: face, Modality.VOICE: voice_full}, {Modality.FACE: 1, Modality.VOICE: 1}
    )
    assert fused_zero_vote[LABEL_INDEX["disgusted"]] < fused[LABEL_INDEX["disgusted"]]


def test_absent_modalities_are_renormalised_away():
    fuser = Fuser()
    fuser.update(pred(Modality.FACE, onehotish("happy")))
    fuser.update(pred(Modality.TEXT, onehotish("sad")))
    both = fuser.estimate(0.0)
    fuser.remove(Modality.TEXT)
    alone = fuser.estimate(0.0)
    np.testing.assert_allclose(alone.probs, onehotish("happy"), atol=FLOOR)
    assert set(both.contributions) == {Modality.FACE, Modality.TEXT}
    assert alone.contributions == {Modality.FACE: pytest.approx(1.0)}


def test_weights_follow_reliability_and_confidence():
    cfg = FusionConfig(reliability={"face": 2.0, "voice": 1.0, "text": 1.0}, certainty="confidence")
    fuser = Fuser(cfg)
    fuser.update(pred(Modality.FACE, onehotish("happy"), confidence=0.5))
    fuser.update(pred(Modality.TEXT, onehotish("sad"), confidence=0.5))
    est = fuser.estimate(0.0)
    assert est.weights[Modality.FACE] == pytest.approx(2 * est.weights[Modality.TEXT])
    assert est.label == "happy"
    fuser.update(pred(Modality.TEXT, onehotish("sad"), confidence=1.0))
    assert fuser.estimate(0.0).weights[Modality.TEXT] == pytest.approx(1.0)


def test_weights_follow_reliability_and_the_certainty_of_each_input():
    cfg = FusionConfig(reliability={"face": 2.0, "voice": 1.0, "text": 1.0})
    fuser = Fuser(cfg)
    fuser.update(pred(Modality.FACE, onehotish("happy", 0.6)))
    fuser.update(pred(Modality.TEXT, onehotish("sad", 0.6)))
    est = fuser.estimate(0.0)
    assert est.weights[Modality.FACE] == pytest.approx(2 * est.weights[Modality.TEXT])
    sure, unsure = onehotish("sad", 0.95), onehotish("sad", 0.3)
    fuser.update(pred(Modality.TEXT, sure, t=1.0))
    w_sure = fuser.estimate(1.0).weights[Modality.TEXT]
    fuser.update(pred(Modality.TEXT, unsure, t=2.0))
    w_unsure = fuser.estimate(2.0).weights[Modality.TEXT]
    assert w_unsure < w_sure
    c_sure = float(certainty(expand(pred(Modality.TEXT, sure))))
    assert w_sure == pytest.approx(c_sure**cfg.confidence_power)


def test_weight_halves_every_half_life_and_drops_past_max_age():
    cfg = FusionConfig()
    fuser = Fuser(cfg)
    p = pred(Modality.FACE, onehotish("happy"), t=0.0, confidence=1.0)
    hl = cfg.half_life[Modality.FACE]
    assert fuser.weight_of(p, hl) == pytest.approx(0.5 * fuser.weight_of(p, 0.0))
    assert fuser.weight_of(p, 2 * hl) == pytest.approx(0.25 * fuser.weight_of(p, 0.0))
    assert fuser.weight_of(p, cfg.max_age[Modality.FACE] + 0.01) == 0.0


def test_typed_text_stays_relevant_longer_than_a_face_frame():
    fuser = Fuser()
    fuser.update(pred(Modality.FACE, onehotish("happy"), t=0.0, confidence=1.0))
    fuser.update(pred(Modality.TEXT, onehotish("sad"), t=0.0, confidence=1.0))
    later = fuser.estimate(now=1.5)
    assert later.contributions[Modality.TEXT] > later.contributions[Modality.FACE]
    much_later = fuser.estimate(now=10.0)
    assert set(much_later.contributions) == {Modality.TEXT}


def test_abstains_with_nothing_and_when_everything_is_stale():
    fuser = Fuser()
    est = fuser.estimate(0.0)
    assert est.abstained and est.probs is None and est.label is None
    assert "no modality" in est.reason
    fuser.update(pred(Modality.FACE, onehotish("happy"), t=0.0))
    stale = fuser.estimate(100.0)
    assert stale.abstained and "too old" in stale.reason


def test_weight_zero_is_named_as_such_not_as_too_old():
    fuser = Fuser(FusionConfig(reliability={"face": 0, "voice": 1, "text": 1}))
    fuser.update(pred(Modality.FACE, onehotish("happy"), t=0.0))
    est = fuser.estimate(0.0)
    assert est.abstained and "face has weight 0" in est.reason and "old" not in est.reason


def test_out_of_order_prediction_is_ignored():
    fuser = Fuser()
    fuser.update(pred(Modality.FACE, onehotish("happy"), t=2.0))
    fuser.update(pred(Modality.FACE, onehotish("sad"), t=1.0))
    assert fuser.latest[Modality.FACE].label == "happy"


def test_product_rule_is_sharper_than_weighted_when_modalities_agree():
    preds = {
        Modality.FACE: pred(Modality.FACE, onehotish("angry", 0.5)),
        Modality.VOICE: pred(Modality.VOICE, onehotish("angry", 0.5)),
    }
    w = {Modality.FACE: 1.0, Modality.VOICE: 1.0}
    weighted = combine(preds, w, "weighted")
    product = combine(preds, w, "product")
    assert product[LABEL_INDEX["angry"]] > weighted[LABEL_INDEX["angry"]]


def test_smoothing_follows_its_time_constant():
    fuser = Fuser(FusionConfig(smoothing_s=1.0))
    fuser.update(pred(Modality.TEXT, onehotish("happy", 0.9), t=0.0))
    first = fuser.estimate(0.0)
    fuser.update(pred(Modality.TEXT, onehotish("sad", 0.9), t=0.1))
    step = fuser.estimate(0.1)
    alpha = 1 - np.exp(-0.1)
    expected = alpha * step.raw_probs + (1 - alpha) * first.probs
    np.testing.assert_allclose(step.probs, expected / expected.sum(), atol=1e-9)
    assert step.label == "happy"  # one sudden change does not flip it at once
    assert step.raw_label == "sad"  # and the raw estimate is kept beside it


def test_hysteresis_keeps_the_shown_label_until_another_leads_by_the_margin():
    fuser = Fuser(FusionConfig(hysteresis=0.2))
    fuser.update(pred(Modality.TEXT, onehotish("happy", 0.6), t=0.0))
    assert fuser.estimate(0.0).label == "happy"
    p = onehotish("sad", 0.5)
    p[LABEL_INDEX["happy"]] = 0.4
    fuser.update(pred(Modality.TEXT, p, t=0.1))
    held = fuser.estimate(0.1)
    assert held.label == "happy" and held.raw_label == "sad"  # sad leads by 0.1 < 0.2
    fuser.update(pred(Modality.TEXT, onehotish("sad", 0.8), t=0.2))
    assert fuser.estimate(0.2).label == "sad"


def test_disagreement_zero_when_identical_high_when_opposed():
    a = pred(Modality.FACE, onehotish("happy", 0.9))
    b = pred(Modality.TEXT, onehotish("happy", 0.9))
    c = pred(Modality.VOICE, onehotish("angry", 0.9))
    assert disagreement([a, b]) == pytest.approx(0.0, abs=1e-12)
    assert disagreement([a, c]) > 0.5


def test_valence_arousal_follow_the_label():
    fuser = Fuser()
    fuser.update(pred(Modality.TEXT, onehotish("happy", 0.95)))
    happy = fuser.estimate(0.0)
    fuser.update(pred(Modality.TEXT, onehotish("sad", 0.95), t=0.1))
    sad = fuser.estimate(0.1)
    assert happy.valence > 0.8 and sad.valence < 0.2
    assert happy.arousal > sad.arousal


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        FusionConfig(rule="max")
    with pytest.raises(ValueError):
        FusionConfig(reliability={"face": -1, "voice": 1, "text": 1})


def test_temperature_recalibrates_a_models_predictions_before_fusion():
    p = pred(Modality.TEXT, onehotish("happy", 0.9), model="over-confident")
    fuser = Fuser(FusionConfig(temperature={"over-confident": 2.0}))
    fuser.update(p)
    est = fuser.estimate(0.0)
    assert est.label == "happy"  # temperature never changes the top label
    assert est.confidence < 0.9
    expected = np.sqrt(p.probs) / np.sqrt(p.probs).sum()
    np.testing.assert_allclose(est.probs, (1 - FLOOR) * expected + FLOOR / NUM_LABELS, atol=1e-9)
    np.testing.assert_allclose(est.probs, expand(calibrated(p, 2.0)), atol=1e-12)


def test_a_models_own_reliability_replaces_the_modality_prior():
    cfg = FusionConfig(model_reliability={"baseline/text-lexicon": 0.25}, certainty="confidence")
    fuser = Fuser(cfg)
    p = pred(Modality.TEXT, onehotish("sad"), confidence=1.0, model="baseline/text-lexicon")
    q = pred(Modality.TEXT, onehotish("sad"), confidence=1.0, model="other")
    assert fuser.weight_of(p, 0.0) == pytest.approx(0.25)
    assert fuser.weight_of(q, 0.0) == pytest.approx(cfg.reliability[Modality.TEXT])
