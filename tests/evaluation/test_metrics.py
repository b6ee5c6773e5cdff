"""The metric code against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emoapp.evaluation.metrics import (
    accuracy,
    bootstrap_intervals,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    group_report,
    macro_f1,
    negative_log_likelihood,
    per_class_recall,
    reliability_bins,
)

# gold 0 0 1 1 2 2, predicted 0 1 1 1 2 0
GOLD = np.array([0, 0, 1, 1, 2, 2])
PRED = np.array([0, 1, 1, 1, 2, 0])


def test_confusion_matrix_rows_are_gold_columns_predicted():
    cm = confusion_matrix(GOLD, PRED, n_labels=3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_accuracy_and_recall_by_hand():
    assert accuracy(GOLD, PRED) == pytest.approx(4 / 6)
    recall = per_class_recall(confusion_matrix(GOLD, PRED))
    assert recall[:3].tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert np.isnan(recall[3:]).all()  # labels with no gold items


def test_macro_f1_by_hand():
    # class 0: tp 1, fp 1, fn 1 -> 2/4;  class 1: tp 2, fp 1, fn 0 -> 4/5;
    # class 2: tp 1, fp 0, fn 1 -> 2/3
    assert macro_f1(GOLD, PRED) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_macro_f1_ignores_labels_absent_from_gold():
    # Predicting label 3 (never in gold) costs class 0 a false negative, but label 3
    # itself is not averaged in: F1(0) = 2 / (2 + 0 + 1).
    assert macro_f1(np.array([0, 0]), np.array([0, 3])) == pytest.approx(2 / 3)


def test_expected_calibration_error_by_hand():
    confidence = np.array([0.9, 0.9, 0.6, 0.3])
    correct = np.array([1, 0, 1, 1])
    # bins: {0.9, 0.9} acc .5 conf .9; {0.6} acc 1; {0.3} acc 1
    expected = 2 / 4 * 0.4 + 1 / 4 * 0.4 + 1 / 4 * 0.7
    assert expected_calibration_error(confidence, correct) == pytest.approx(expected)


def test_reliability_bins_put_edges_in_the_lower_bin():
    bins = reliability_bins(np.array([0.0, 1 / 15, 0.6, 1.0]), np.ones(4))
    counts = {round(b.lower, 4): b.count for b in bins if b.count}
    assert counts == {0.0: 2, round(8 / 15, 4): 1, round(14 / 15, 4): 1}
    assert len(bins) == 15


def test_negative_log_likelihood_by_hand():
    probs = np.array([[0.5, 0.5, 0, 0, 0, 0, 0], [0.25, 0.75, 0, 0, 0, 0, 0]])
    assert negative_log_likelihood(probs, np.array([0, 0])) == pytest.approx(
        (math.log(2) + math.log(4)) / 2
    )


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.6, gold, rng.integers(0, 4, 200))
    a1, f1 = bootstrap_intervals(gold, pred, samples=300, seed=7)
    a2, f2 = bootstrap_intervals(gold, pred, samples=300, seed=7)
    assert (a1, f1) == (a2, f2)
    assert a1.low < accuracy(gold, pred) < a1.high
    assert f1.low < macro_f1(gold, pred) < f1.high
    assert 0.05 < a1.high - a1.low < 0.2
    perfect, perfect_f1 = bootstrap_intervals(gold, gold, samples=50)
    assert (perfect.low, perfect.high) == (1.0, 1.0)
    assert (perfect_f1.low, perfect_f1.high) == (1.0, 1.0)


def test_classification_report_from_probabilities():
    probs = np.full((4, 7), 0.0)
    probs[0, 0] = probs[1, 1] = probs[2, 1] = probs[3, 3] = 1.0
    report = classification_report(np.array([0, 1, 0, 3]), probs, bootstrap=0)
    assert report.n == 4
    assert report.accuracy == pytest.approx(0.75)
    # all confidences 1.0, accuracy 0.75 -> ECE 0.25
    assert report.ece == pytest.approx(0.25)
    assert report.accuracy_ci is None


def test_group_report_and_gap():
    probs = np.eye(7)[[0, 1, 1, 1]]
    gold = np.array([0, 1, 0, 1])
    report = group_report(gold, probs, ["a", "a", "b", "b"], bootstrap=0)
    assert report.groups["a"].accuracy == 1.0
    assert report.groups["b"].accuracy == 0.5
    assert report.accuracy_gap() == ("a", "b", 0.5)
    assert report.accuracy_gap(min_n=3) is None  # no group has 3 items
