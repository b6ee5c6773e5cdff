"""The eGeMAPS trial script's pieces (scripts/voice_egemaps_trial.py): the 88 functionals
of one window, the trial's column layout, and the check that its windows are the shipped
cache's. Skipped where opensmile (the ``egemaps`` extra, not CI's) is not installed."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("opensmile")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

E = pytest.importorskip("voice_egemaps_trial")


def test_window_egemaps_gives_88_finite_numbers_that_follow_pitch() -> None:
    smile = E.egemaps_extractor()
    t = np.arange(2 * E.SAMPLE_RATE) / E.SAMPLE_RATE
    rng = np.random.default_rng(0)
    rows = []
    for f0 in (120.0, 240.0):
        # a voiced-like harmonic tone with a little noise
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
        x = 0.1 * x + 0.001 * rng.standard_normal(t.size)
        rows.append(E.window_egemaps(smile, x))
    for row in rows:
        assert row.shape == (E.N_EGEMAPS,)
        assert np.all(np.isfinite(row))
    names = list(smile.feature_names)
    f0 = names.index("F0semitoneFrom27.5Hz_sma3nz_amean")
    # an octave is 12 semitones
    assert rows[1][f0] - rows[0][f0] == pytest.approx(12.0, abs=1.0)


def test_trial_columns_are_disjoint_and_the_shipped_set_is_unchanged() -> None:
    T = E.T
    assert np.array_equal(E.trial_columns("base+emb"), T.columns("base+emb"))
    ege = E.trial_columns("egemaps")
    assert len(ege) == E.N_EGEMAPS and ege.min() == T.N_BASE + T.N_MEL + T.N_EMB
    both = E.trial_columns("base+egemaps+emb")
    assert len(set(both.tolist())) == len(both) == T.N_BASE + T.N_EMB + E.N_EGEMAPS
    with E.trial_layout():
        assert T.columns is E.trial_columns
    assert T.columns is not E.trial_columns
    with pytest.raises(ValueError, match="unknown feature set"):
        E.trial_columns("mfcc")


def test_align_accepts_the_same_windows_and_refuses_others() -> None:
    clip = np.array([0, 0, 1, 2, 2, 2])
    x = np.arange(6 * 4, dtype=np.float64).reshape(6, 4)
    shipped = SimpleNamespace(name="c", clip=clip, x=x)
    skip = np.array([False, True, False])  # clip 1 is a held-out actor's
    ege = {
        "owner": np.array([0, 0, 2, 2, 2]),
        "check_rows": np.array([2]),
        "check_x": x[[3]],
    }
    out = E.align(shipped, ege, skip)
    assert out["rows"].tolist() == [0, 1, 3, 4, 5]
    assert out["max_abs_diff"] == 0.0
    with pytest.raises(SystemExit, match="windows differ"):
        E.align(shipped, {**ege, "owner": np.array([0, 2, 2, 2, 2])}, skip)
    with pytest.raises(SystemExit, match="recomputed features differ"):
        E.align(shipped, {**ege, "check_x": x[[3]] + 1.0}, skip)


def test_the_level_dependent_functionals_are_those_that_scale_with_the_level() -> None:
    smile = E.egemaps_extractor()
    t = np.arange(2 * E.SAMPLE_RATE) / E.SAMPLE_RATE
    x = sum(np.sin(2 * np.pi * 150.0 * k * t) / k for k in range(1, 6))
    x = 0.1 * x * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    noise = np.random.default_rng(1).standard_normal(t.size)
    # voiced in the even quarter-seconds, noise (unvoiced) in the odd ones
    x = np.where((t * 4).astype(int) % 2 == 0, x + 0.001 * noise, 0.05 * noise)
    loud, quiet = E.window_egemaps(smile, x), E.window_egemaps(smile, 0.25 * x)
    change = np.abs(quiet - loud) / (np.abs(loud) + 1e-9)
    names = E.egemaps_names()
    dependent = np.array([E.level_dependent(n) for n in names])
    assert dependent.sum() == 19
    # 12 dB quieter: every one named moves by more than 5%
    assert np.all(change[dependent] > 0.05), [
        n for n, d, c in zip(names, dependent, change, strict=True) if d and c <= 0.05
    ]
    assert len(E.trial_columns("egemaps-lf")) == E.N_EGEMAPS - 19


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=64).filter(
        lambda v: np.sqrt(np.mean(np.square(v))) > 1e-3
    ),
    st.floats(1e-3, 1e3),
)
def test_at_level_fixes_the_level_whatever_the_gain(values: list[float], gain: float) -> None:
    x = np.array(values)
    y = E.at_level(x)
    assert np.sqrt(np.mean(np.square(y.astype(np.float64)))) == pytest.approx(E.LEVEL_RMS, rel=1e-5)
    np.testing.assert_allclose(E.at_level(gain * x), y, rtol=1e-4, atol=1e-6)


def test_at_level_leaves_silence_alone() -> None:
    assert not np.any(E.at_level(np.zeros(16)))
