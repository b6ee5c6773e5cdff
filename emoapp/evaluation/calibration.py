"""Temperature scaling of a model's canonical probabilities.

A model's canonical probabilities ``p`` (over the labels in its mask) are treated as
``softmax(log p)``; temperature ``T`` turns them into ``softmax(log p / T)``, that is
``p ** (1 / T)`` renormalised over the mask. ``T > 1`` softens an over-confident model,
``T < 1`` sharpens an under-confident one; the top label never changes, so accuracy and
macro-F1 of the model alone do not move, only its confidence (and its weight in fusion).

:func:`fit_temperature` finds the ``T`` that minimises the negative log-likelihood of
the gold labels (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):
a coarse log-spaced grid, then golden-section search around the best grid point.
"""

from __future__ import annotations

import math

import numpy as np

from emoapp.core.fusion import apply_temperature  # noqa: F401 - re-exported

T_MIN = 0.05
T_MAX = 20.0
_FLOOR = 1e-12


def temperature_nll(
    probs: np.ndarray, masks: np.ndarray, gold: np.ndarray, temperature: float
) -> float:
    """Mean negative log-likelihood of ``gold`` under ``probs`` at ``temperature``.
    Rows whose gold label is outside their mask must be left out by the caller."""
    logp = np.where(masks, np.log(np.maximum(probs, _FLOOR)), -np.inf) / temperature
    top = logp.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logp - top).sum(axis=1))
    picked = logp[np.arange(len(gold)), gold]
    return float(np.mean(log_norm - picked))


def fit_temperature(probs: np.ndarray, masks: np.ndarray, gold: np.ndarray) -> float:
    """The temperature in [0.05, 20] minimising :func:`temperature_nll`.

    Rows whose gold label the model cannot express are ignored (no temperature helps
    them); with no usable row the answer is 1.
    """
    probs = np.asarray(probs, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    gold = np.asarray(gold, dtype=np.int64)
    usable = masks[np.arange(len(gold)), gold] if len(gold) else np.zeros(0, dtype=bool)
    probs, masks, gold = probs[usable], masks[usable], gold[usable]
    if len(gold) == 0:
        return 1.0

    def loss(log_t: float) -> float:
        return temperature_nll(probs, masks, gold, math.exp(log_t))

    grid = np.linspace(math.log(T_MIN), math.log(T_MAX), 41)
    losses = [loss(x) for x in grid]
    best = int(np.argmin(losses))
    lo = grid[max(0, best - 1)]
    hi = grid[min(len(grid) - 1, best + 1)]
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(40):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return float(math.exp((a + b) / 2))
