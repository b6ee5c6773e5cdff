"""The timeline draws at most one point per tenth of a second, and never hides a gap."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from emoapp.ui.timeline_panel import DRAW_STEP_S, thin_series


@st.composite
def series(draw):
    n = draw(st.integers(min_value=0, max_value=200))
    steps = draw(arrays(float, n, elements=st.floats(0.0, 0.5)))
    x = np.cumsum(steps) - (steps.sum() if n else 0.0)  # ascending, newest at 0
    values = draw(arrays(float, (n, 3), elements=st.floats(0.0, 1.0) | st.just(float("nan"))))
    return x, values


@given(series())
def test_thinning_keeps_one_point_per_step_and_every_gap(data):
    x, values = data
    tx, tv = thin_series(x, values)
    assert tx.shape[0] == tv.shape[0] <= x.shape[0]
    bins = np.floor(x / DRAW_STEP_S)
    assert tx.shape[0] == np.unique(bins).size
    assert np.all(np.diff(tx) > 0) or tx.size <= 1
    assert set(tx.tolist()) <= set(x.tolist())
    for j, t in enumerate(tx):
        in_step = bins == np.floor(t / DRAW_STEP_S)
        for label in range(values.shape[1]):
            if np.isnan(values[in_step, label]).any():
                assert np.isnan(tv[j, label])  # a gap in the step stays a gap
            else:
                assert tv[j, label] == values[in_step, label][-1]  # the newest point


def test_points_further_apart_than_a_step_are_all_drawn():
    x = np.arange(-30.0, 1.0)
    values = np.random.default_rng(0).random((x.size, 4))
    tx, tv = thin_series(x, values)
    assert np.array_equal(tx, x) and np.array_equal(tv, values)
