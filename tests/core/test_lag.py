"""Percentiles in bounded memory (emoapp.core.lag): the window's lag figures and the
bench's estimate ages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emoapp.core.lag import Histogram, LagHistogram, lag_stats

lateness = st.lists(
    st.floats(min_value=-50.0, max_value=5000.0, allow_nan=False), min_size=1, max_size=300
)


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(max(0.0, v) for v in values)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]


@given(lateness)
def test_lag_percentiles_are_ordered_and_never_negative(values):
    stats = lag_stats(values)
    assert stats is not None
    assert stats.samples == len(values)
    assert 0.0 <= stats.p50_ms <= stats.p95_ms <= stats.p99_ms <= stats.max_ms
    assert stats.max_ms == pytest.approx(max(0.0, *values), abs=1e-3)


@given(lateness, st.sampled_from([0.0, 1.0, 50.0, 95.0, 99.0, 100.0]))
def test_a_percentile_is_the_exact_one_rounded_up_to_its_bin(values, q):
    histogram = Histogram(0.1)
    for v in values:
        histogram.add(v)
    exact = _nearest_rank(values, q)
    found = histogram.percentile(q)
    assert found is not None
    assert exact - 1e-9 <= found <= exact + 0.1 + 1e-9


def test_no_samples_give_no_figures():
    assert lag_stats([]) is None
    assert LagHistogram().stats() is None
    assert Histogram(1.0).percentile(50) is None


def test_memory_follows_the_range_of_the_values_not_their_number():
    histogram = LagHistogram()
    rng = np.random.default_rng(0)
    for v in rng.uniform(0.0, 20.0, size=60_000):  # a 10-minute run of a 10 ms timer
        histogram.add(float(v))
    assert histogram.count == 60_000
    assert histogram.nbytes <= 8 * 256  # 200 bins of 0.1 ms, grown by doubling
    histogram.clear()
    assert histogram.count == 0 and histogram.stats() is None


@given(st.lists(st.floats(0.0, 1e6), min_size=1, max_size=50))
def test_values_beyond_the_last_bin_keep_the_order_and_the_memory_bound(values):
    histogram = Histogram(1.0, max_bins=100)
    for v in values:
        histogram.add(v)
    p50, p99 = histogram.percentiles((50, 99)) or (None, None)
    assert 0.0 <= p50 <= p99 <= histogram.max == max(values)
    assert histogram.nbytes <= 8 * 100


def test_nan_is_on_time_and_bad_bins_are_refused():
    histogram = LagHistogram()
    histogram.add(float("nan"))
    assert histogram.stats() is not None and histogram.stats().max_ms == 0.0
    with pytest.raises(ValueError):
        histogram.add(float("inf"))
    with pytest.raises(ValueError):
        Histogram(0.0)
