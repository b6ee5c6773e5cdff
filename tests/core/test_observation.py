"""Observation models: P(output | true label) from a label map, catch-all outputs, or
fitted on data; and the posterior they give a prediction."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.observation import (
    FLOOR,
    ObservationModel,
    default_matrix,
    fit_observation,
)
from emoapp.core.taxonomy import LABEL_INDEX, NUM_LABELS

masks = (
    st.lists(st.booleans(), min_size=NUM_LABELS, max_size=NUM_LABELS)
    .filter(any)
    .map(lambda xs: np.array(xs, dtype=bool))
)


@settings(max_examples=200, deadline=None)
@given(mask=masks, p=st.lists(st.floats(0, 1), min_size=7, max_size=7))
def test_default_matrix_columns_are_distributions_over_the_outputs(mask, p):
    m = default_matrix(mask)
    np.testing.assert_allclose(m.sum(axis=0), 1.0)
    assert np.all(m[~mask] == 0)
    probs = np.where(mask, np.array(p) + 1e-3, 0.0)
    probs /= probs.sum()
    post = ObservationModel().posterior(probs, mask)
    assert post.sum() == pytest.approx(1.0)
    assert post.min() >= FLOOR / NUM_LABELS - 1e-15
    if mask.all():  # a 7-class model means what it says
        np.testing.assert_allclose(post, (1 - FLOOR) * probs + FLOOR / NUM_LABELS)


def test_a_four_class_model_leaves_mass_on_labels_it_cannot_say():
    mask = np.zeros(NUM_LABELS, dtype=bool)
    for label in ("neutral", "happy", "sad", "angry"):
        mask[LABEL_INDEX[label]] = True
    angry = np.where(np.arange(NUM_LABELS) == LABEL_INDEX["angry"], 1.0, 0.0)
    post = ObservationModel().posterior(angry, mask)
    # P(angry | "angry") = 1 / (1 + 3/4); fear, disgust, surprise 1/4 of that each.
    assert post[LABEL_INDEX["angry"]] == pytest.approx(4 / 7, abs=2 * FLOOR)
    for label in ("fearful", "disgusted", "surprised"):
        assert post[LABEL_INDEX[label]] == pytest.approx(1 / 7, abs=2 * FLOOR)
    assert post[LABEL_INDEX["happy"]] < 2 * FLOOR


def test_fitting_recovers_a_confusion_and_keeps_unseen_labels_at_the_label_map():
    rng = np.random.default_rng(0)
    mask = np.ones(NUM_LABELS, dtype=bool)
    # A model that says "neutral" for half of the sad items.
    gold = rng.integers(0, NUM_LABELS - 1, size=4000)  # never surprised
    probs = np.eye(NUM_LABELS)[gold].copy()
    sad = gold == LABEL_INDEX["sad"]
    flip = sad & (rng.random(len(gold)) < 0.5)
    probs[flip] = np.eye(NUM_LABELS)[LABEL_INDEX["neutral"]]
    fitted = fit_observation(probs, np.repeat(mask[None], len(gold), 0), gold)
    m = fitted.matrix_for(mask)
    assert m[LABEL_INDEX["neutral"], LABEL_INDEX["sad"]] == pytest.approx(0.5, abs=0.05)
    np.testing.assert_allclose(m[:, LABEL_INDEX["surprised"]], np.eye(7)[LABEL_INDEX["surprised"]])
    # "neutral" from this model now also means "maybe sad".
    post = fitted.posterior(np.eye(NUM_LABELS)[LABEL_INDEX["neutral"]], mask)
    assert post[LABEL_INDEX["sad"]] > 0.25


def test_bad_observation_tables_are_refused_with_a_reason():
    mask = np.ones(NUM_LABELS, dtype=bool)
    with pytest.raises(ValueError, match="canonical"):
        default_matrix(mask, {"joy": ["happy"]})
    with pytest.raises(ValueError, match="7x7"):
        ObservationModel(matrix=np.ones((3, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        ObservationModel(matrix=-np.ones((7, 7)))
    small = np.zeros(NUM_LABELS, dtype=bool)
    small[0] = True
    with pytest.raises(ValueError, match="cannot output"):
        default_matrix(small, {"happy": ["happy"]})
