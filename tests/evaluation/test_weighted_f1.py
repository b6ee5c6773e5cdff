"""Weighted F1 (per-class F1 weighted by gold support), by hand and as properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.evaluation.metrics import (
    classification_report,
    confusion_matrix,
    macro_f1,
    per_class_f1,
    weighted_f1,
)

# gold 0 0 1 1 2 2, predicted 0 1 1 1 2 0: per-class F1 0.5, 0.8, 2/3, equal supports
GOLD = np.array([0, 0, 1, 1, 2, 2])
PRED = np.array([0, 1, 1, 1, 2, 0])

labels = st.integers(min_value=0, max_value=6)
pairs = st.lists(st.tuples(labels, labels), min_size=1, max_size=60)


def test_weighted_f1_by_hand():
    # equal supports: the weighted mean is the macro mean
    assert weighted_f1(GOLD, PRED) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # supports 3 and 1: gold 0 0 0 1, pred 0 0 1 1 -> F1 0.8 (label 0), 2/3 (label 1)
    gold, pred = np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])
    assert weighted_f1(gold, pred) == pytest.approx(0.75 * 0.8 + 0.25 * 2 / 3)
    assert macro_f1(gold, pred) == pytest.approx((0.8 + 2 / 3) / 2)


def test_weighted_f1_of_nothing_is_nan():
    assert np.isnan(weighted_f1(np.zeros(0, dtype=int), np.zeros(0, dtype=int)))


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_weighted_f1_is_a_support_weighted_mean_of_the_class_f1s(items):
    gold = np.array([g for g, _ in items])
    pred = np.array([p for _, p in items])
    cm = confusion_matrix(gold, pred)
    f1 = per_class_f1(cm)[cm.sum(axis=1) > 0]
    value = weighted_f1(gold, pred)
    assert f1.min() - 1e-12 <= value <= f1.max() + 1e-12
    assert weighted_f1(gold, gold) == pytest.approx(1.0)
    # order of the items does not matter
    order = np.random.default_rng(len(items)).permutation(len(items))
    assert weighted_f1(gold[order], pred[order]) == pytest.approx(value)
    # the report carries the same figure
    probs = np.full((len(gold), 7), 0.01)
    probs[np.arange(len(gold)), pred] = 1.0
    assert classification_report(gold, probs, bootstrap=0).weighted_f1 == pytest.approx(value)


@settings(max_examples=40, deadline=None)
@given(pairs)
def test_weighted_f1_matches_scikit_learn(items):
    metrics = pytest.importorskip("sklearn.metrics")
    gold = np.array([g for g, _ in items])
    pred = np.array([p for _, p in items])
    present = sorted(set(gold.tolist()))
    expected = metrics.f1_score(gold, pred, labels=present, average="weighted", zero_division=0)
    assert weighted_f1(gold, pred) == pytest.approx(expected)
