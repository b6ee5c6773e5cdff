"""Temperature scaling: the formula, and fitting it back from data made at a known
temperature."""

from __future__ import annotations

import numpy as np
import pytest

from emoapp.evaluation.calibration import apply_temperature, fit_temperature, temperature_nll


def test_apply_temperature_is_a_power_renormalised_over_the_mask():
    p = np.array([0.5, 0.25, 0.25, 0, 0, 0, 0])
    mask = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    scaled = apply_temperature(p, mask, 2.0)
    expected = np.array([0.5**0.5, 0.25**0.5, 0.25**0.5]) / (0.5**0.5 + 2 * 0.25**0.5)
    assert scaled[:3] == pytest.approx(expected)
    assert scaled[3:].tolist() == [0, 0, 0, 0]
    assert apply_temperature(p, mask, 1.0).tolist() == p.tolist()
    assert np.argmax(apply_temperature(p, mask, 0.3)) == 0  # the top label never moves


def test_fit_recovers_the_temperature_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    n = 4000
    logits = rng.normal(0, 1.5, size=(n, 7))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gold = np.array([rng.choice(7, p=row) for row in true])
    # The model reports softmax(2 z): over-confident by a temperature of 2.
    sharp = np.exp(2 * logits)
    sharp /= sharp.sum(axis=1, keepdims=True)
    masks = np.ones((n, 7), dtype=bool)
    t = fit_temperature(sharp, masks, gold)
    assert t == pytest.approx(2.0, rel=0.1)
    assert temperature_nll(sharp, masks, gold, t) < temperature_nll(sharp, masks, gold, 1.0)


def test_fit_ignores_gold_labels_the_model_cannot_express():
    probs = np.array([[0.9, 0.1, 0, 0, 0, 0, 0]] * 4)
    masks = np.array([[1, 1, 0, 0, 0, 0, 0]] * 4, dtype=bool)
    assert fit_temperature(probs, masks, np.array([3, 3, 3, 3])) == 1.0
