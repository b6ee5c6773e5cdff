"""Rolling percentiles, rates and the per-modality snapshot of a live session."""

from __future__ import annotations

import pytest

from emoapp.core import clock
from emoapp.core.messages import Modality
from emoapp.live.metrics import ModalityMetrics, RateMeter, RollingPercentiles


def test_rolling_percentiles_follow_the_recent_window() -> None:
    p = RollingPercentiles(maxlen=100)
    assert p.percentile(50) is None
    for v in range(1, 101):
        p.add(v / 100)
    assert p.percentile(50) == pytest.approx(0.505)
    assert p.percentile(95) == pytest.approx(0.9505)
    for _ in range(100):  # the window moves on: old values are forgotten
        p.add(2.0)
    assert p.percentile(50) == 2.0 and len(p) == 100 and p.total == 200


def test_rate_meter_counts_events_in_its_window() -> None:
    meter = RateMeter(window_s=2.0, started=0.0)
    for i in range(40):  # 10 Hz for 4 s
        meter.mark(i * 0.1)
    assert meter.rate(now=4.0) == pytest.approx(10.0, abs=0.6)
    assert meter.rate(now=10.0) == 0.0
    early = RateMeter(window_s=5.0, started=0.0)
    for i in range(5):  # 5 events in the first second: 5/s, not 1/s
        early.mark(i * 0.2)
    assert early.rate(now=1.0) == pytest.approx(5.0)


def test_modality_metrics_snapshot() -> None:
    m = ModalityMetrics(Modality.FACE)
    for _ in range(10):
        m.record_input()
    m.record_dropped(4)
    for d in (0.01, 0.02, 0.03):
        m.encoder_started()
        m.encoder_finished(d)
    m.encoder_started()
    m.encoder_finished(0.5, ok=False)
    for age in (0.1, 0.2, 0.3, 0.4):
        m.record_age(age)
    m.record_latency(0.05)
    for present in (True, True, True, False):
        m.record_presence(present)
    m.encoder_started(t=clock.now() - 3.0)
    snap = m.snapshot()
    assert (snap.inputs, snap.dropped, snap.encoded, snap.errors) == (10, 4, 3, 1)
    assert snap.unit == "frames" and snap.drop_fraction == pytest.approx(0.4)
    assert snap.encoder_time_p50_s == pytest.approx(0.02)
    assert snap.age_p50_s == pytest.approx(0.25)
    assert snap.age_p95_s == pytest.approx(0.385)
    assert snap.latency_p50_s == pytest.approx(0.05)
    assert snap.presence == pytest.approx(0.75)
    assert snap.encoder_busy_s == pytest.approx(3.0, abs=0.5)
    assert snap.input_rate_hz > 0 and snap.encoder_rate_hz > 0
    empty = ModalityMetrics(Modality.VOICE).snapshot()
    assert empty.unit == "windows" and empty.presence is None and empty.age_p50_s is None
