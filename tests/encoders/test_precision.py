"""CPU precision: the rule ``--dtype auto`` follows, the machine record it reads, and int8
dynamic quantisation on the tiny models."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.errors import ModelLoadError
from emoapp.encoders.base import EncoderConfig
from emoapp.encoders.precision import (
    CPU_CANDIDATES,
    MAX_PROB_DIFF,
    MEASURE_COMMAND,
    MIN_TOP_AGREEMENT,
    RECORD_ENV,
    SPEEDUP_MARGIN,
    PrecisionMeasurement,
    choose_precision,
    model_key,
    no_record,
    record_path,
    resolve_precision,
    why_not,
    write_entry,
)

# --- the rule -------------------------------------------------------------------------------

times = st.one_of(
    st.floats(min_value=0.01, max_value=1e4),
    st.sampled_from([0.0, -1.0, math.nan, math.inf]),
)
measurement = st.builds(
    PrecisionMeasurement,
    precision=st.sampled_from(CPU_CANDIDATES),
    median_ms=times,
    max_prob_diff=st.one_of(st.floats(min_value=0, max_value=1), st.just(math.nan)),
    top_agreement=st.floats(min_value=0, max_value=1),
)
measurements = st.lists(measurement, max_size=6)


def _baseline(items: list[PrecisionMeasurement]) -> float | None:
    base = [
        m.median_ms
        for m in items
        if m.precision == "float32" and math.isfinite(m.median_ms) and m.median_ms > 0
    ]
    return min(base) if base else None


def _qualifying(items: list[PrecisionMeasurement]) -> list[PrecisionMeasurement]:
    base = _baseline(items)
    if base is None:
        return []
    return [m for m in items if m.precision != "float32" and why_not(m, base) is None]


@settings(max_examples=300, deadline=None)
@given(measurements)
def test_a_choice_other_than_float32_is_within_tolerance_and_margin(items):
    choice = choose_precision(items)
    assert choice.name in CPU_CANDIDATES
    if choice.name == "float32":
        return
    base = _baseline(items)
    assert base is not None
    best = [m for m in items if m.precision == choice.name and why_not(m, base) is None]
    assert best, "the chosen precision has a qualifying measurement"
    m = min(best, key=lambda m: m.median_ms)
    assert m.max_prob_diff <= MAX_PROB_DIFF
    assert m.top_agreement >= MIN_TOP_AGREEMENT
    assert base / m.median_ms >= SPEEDUP_MARGIN
    assert choice.speedup is not None and choice.speedup >= SPEEDUP_MARGIN - 1e-3


@settings(max_examples=300, deadline=None)
@given(measurements)
def test_float32_exactly_when_nothing_qualifies(items):
    assert (choose_precision(items).name == "float32") == (not _qualifying(items))


@settings(max_examples=300, deadline=None)
@given(measurements)
def test_the_fastest_qualifying_precision_wins(items):
    qualifying = _qualifying(items)
    choice = choose_precision(items)
    if qualifying:
        fastest = min(m.median_ms for m in qualifying)
        chosen = min(m.median_ms for m in qualifying if m.precision == choice.name)
        assert chosen == fastest


@settings(max_examples=200, deadline=None)
@given(measurements, st.randoms(use_true_random=False))
def test_the_choice_is_deterministic_and_ignores_order(items, rng):
    first = choose_precision(items)
    shuffled = list(items)
    rng.shuffle(shuffled)
    assert choose_precision(items) == first
    assert choose_precision(shuffled).name == first.name


@settings(max_examples=200, deadline=None)
@given(measurements)
def test_int8_is_never_picked_when_not_a_candidate(items):
    assert choose_precision(items, candidates=("float32", "bfloat16")).name != "int8"


def test_the_rule_on_examples():
    f32 = PrecisionMeasurement("float32", 100.0)
    fast_close = PrecisionMeasurement("int8", 60.0, 0.005, 1.0)
    faster_far = PrecisionMeasurement("bfloat16", 40.0, 0.05, 1.0)
    barely = PrecisionMeasurement("bfloat16", 90.0, 0.0, 1.0)
    assert choose_precision([f32, fast_close, faster_far]).name == "int8"
    assert choose_precision([f32, barely]).name == "float32"
    assert "under 1.15x" in choose_precision([f32, barely]).reason
    assert choose_precision([fast_close]).name == "float32"  # no float32 to compare with
    assert choose_precision([]).name == "float32"


# --- resolving --dtype ----------------------------------------------------------------------


def test_forced_and_device_choices():
    assert resolve_precision("bfloat16", "cpu", "text", None).name == "bfloat16"
    assert resolve_precision("int8", "cpu", "voice", None).name == "int8"
    face = resolve_precision("int8", "cpu", "face", None)
    assert face.name == "float32" and "gradients" in face.reason
    assert resolve_precision("auto", "cuda", "text", None).name == "float16"
    assert resolve_precision("auto", "mps", "text", None).name == "float32"
    none = resolve_precision("auto", "cpu", "text", None)
    assert none.name == "float32" and "emoapp bench --part precision" in none.reason
    with pytest.raises(ModelLoadError, match="unknown dtype 'int4'"):
        resolve_precision("int4", "cpu", "text", None)
    with pytest.raises(ModelLoadError, match="CPU only, not on cuda"):
        resolve_precision("int8", "cuda", "text", None)


def test_the_record_lives_in_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(RECORD_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert record_path() == tmp_path / "emoapp" / "precision.json"


# --- on the tiny models ---------------------------------------------------------------------


def _load(cls, path, dtype: str, **kwargs):
    encoder = cls(EncoderConfig(model=str(path), dtype=dtype, **kwargs))
    encoder.load()
    return encoder


def _text_rows(encoder):
    return encoder.preprocess(["I am so happy today!", "This is awful.", "See you at 3."]).rows


def _voice_rows():
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    return [
        (0.3 * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        for f in (120.0, 220.0, 330.0)
    ]


@pytest.mark.parametrize("modality", ["text", "voice"])
def test_int8_loads_runs_and_agrees_with_float32(tiny_models, modality):
    import torch

    from emoapp.encoders.text import TextEncoder
    from emoapp.encoders.voice import VoiceEncoder

    cls = TextEncoder if modality == "text" else VoiceEncoder
    f32 = _load(cls, tiny_models[modality], "float32")
    int8 = _load(cls, tiny_models[modality], "int8")
    quantised = [
        m for m in int8.model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)
    ]
    assert quantised, "the linear layers are quantised"
    assert not any(isinstance(m, torch.nn.Linear) for m in int8.model.modules())
    assert int8.info().dtype == "int8" and int8.info().precision == "--dtype"
    assert int8.dtype == torch.float32  # activations stay float
    rows = _text_rows(f32) if modality == "text" else _voice_rows()
    a, b = f32.classify_rows(rows), int8.classify_rows(rows)
    assert b.shape == a.shape and np.all(np.isfinite(b))
    assert np.allclose(b.sum(axis=1), a.sum(axis=1))
    assert np.abs(a - b).max() < 0.05
    assert "int8" in int8.describe_precision()


def test_int8_leaves_the_face_model_float(tiny_models):
    import torch

    from emoapp.encoders.face import FaceEncoder

    face = _load(FaceEncoder, tiny_models["face"], "int8")
    assert face.info().dtype == "float32" and "gradients" in face.info().precision
    assert any(isinstance(m, torch.nn.Linear) for m in face.model.modules())


def test_int8_on_a_cuda_device_is_refused(tiny_models, monkeypatch):
    import torch

    from emoapp.encoders import base
    from emoapp.encoders.text import TextEncoder

    monkeypatch.setattr(base, "select_device", lambda requested: torch.device("cuda"))
    encoder = TextEncoder(EncoderConfig(model=str(tiny_models["text"]), dtype="int8"))
    with pytest.raises(ModelLoadError, match=r"int8 .* CPU only, not on cuda"):
        encoder.load()
    with pytest.raises(ModelLoadError, match="CPU only"):
        base.select_dtype("int8", torch.device("cuda"))
    assert base.select_dtype("int8", torch.device("cpu")) == torch.float32


def _key_of(encoder):
    import torch

    return model_key(encoder.model_id, None, encoder.model.config, torch.__version__)


def test_auto_follows_this_machines_record(tiny_models, tmp_path, monkeypatch):
    from emoapp.encoders.text import TextEncoder

    record = tmp_path / "precision.json"
    monkeypatch.setenv(RECORD_ENV, str(record))
    path = tiny_models["text"]
    none = _load(TextEncoder, path, "auto")
    assert none.info().dtype == "float32"
    # the reason names the command that measures this very folder
    assert none.info().precision == f"auto: {no_record(f'{MEASURE_COMMAND} --real-models {path}')}"

    key = _key_of(none)
    write_entry(
        key,
        [
            PrecisionMeasurement("float32", 100.0),
            PrecisionMeasurement("bfloat16", 80.0, 0.001, 1.0),
            PrecisionMeasurement("int8", 50.0, 0.004, 1.0),
        ],
    )
    fast = _load(TextEncoder, path, "auto")
    assert fast.info().dtype == "int8" and "2.00x" in fast.info().precision
    assert _load(TextEncoder, path, "float32").info().dtype == "float32"  # forced wins

    write_entry(
        key,
        [
            PrecisionMeasurement("float32", 100.0),
            PrecisionMeasurement("int8", 50.0, 0.2, 0.5),  # fast but disagrees
        ],
    )
    assert _load(TextEncoder, path, "auto").info().dtype == "float32"


def test_a_corrupt_record_is_ignored_with_a_warning(tiny_models, tmp_path, monkeypatch, caplog):
    from emoapp.encoders.text import TextEncoder

    record = tmp_path / "precision.json"
    monkeypatch.setenv(RECORD_ENV, str(record))
    for broken in ("{not json", '{"schema": "something else"}', '["a list"]'):
        record.write_text(broken)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="emoapp.encoders.precision"):
            encoder = _load(TextEncoder, tiny_models["text"], "auto")
        assert encoder.info().dtype == "float32"
        assert "unreadable" in encoder.info().precision
        assert any("precision record" in r.getMessage() for r in caplog.records)
    record.unlink()
    record.mkdir()  # a folder where the file should be: unreadable
    assert _load(TextEncoder, tiny_models["text"], "auto").info().dtype == "float32"
    # a later measurement replaces a corrupt record
    record.rmdir()
    record.write_text("{not json")
    encoder = _load(TextEncoder, tiny_models["text"], "float32")
    write_entry(_key_of(encoder), [PrecisionMeasurement("float32", 1.0)])
    assert _load(TextEncoder, tiny_models["text"], "auto").info().dtype == "float32"
    assert "float32" in record.read_text()


def test_the_status_names_the_precision(tiny_models):
    from emoapp.encoders.text import TextEncoder
    from emoapp.live.supervisor import _encoder_device

    assert _encoder_device(_load(TextEncoder, tiny_models["text"], "int8")) == "cpu int8"


# --- agreement ------------------------------------------------------------------------------

probability_rows = st.integers(1, 6).flatmap(
    lambda n: st.lists(
        st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n), min_size=1, max_size=8
    )
)


@settings(max_examples=200, deadline=None)
@given(probability_rows, st.floats(-0.05, 0.05), st.integers(0, 10_000))
def test_agreement_properties(rows, scale, seed):
    from emoapp.encoders.precision import TIE_MARGIN, agreement

    ref = np.asarray(rows)
    ref = ref / ref.sum(axis=1, keepdims=True)
    same = agreement(ref, ref)
    assert same["max_prob_diff"] == 0 and same["top_agreement"] == 1.0
    noise = np.random.default_rng(seed).uniform(-1, 1, ref.shape) * scale
    other = ref + noise
    got = agreement(ref, other)
    assert got["max_prob_diff"] == pytest.approx(np.abs(noise).max(), abs=1e-12)
    assert got["top_agreement_strict"] <= got["top_agreement"] <= 1.0
    # a perturbation below half the lead of float32's top label cannot flip it
    top2 = np.sort(ref, axis=1)[:, -2:] if ref.shape[1] > 1 else None
    if top2 is not None and np.all(top2[:, 1] - top2[:, 0] > 2 * abs(scale) + 1e-12):
        assert got["top_agreement_strict"] == 1.0
    if top2 is not None and np.all(top2[:, 1] - top2[:, 0] > TIE_MARGIN):
        assert got["top_agreement"] == got["top_agreement_strict"]


def test_agreement_excuses_only_near_ties():
    from emoapp.encoders.precision import agreement

    ref = np.array([[0.5, 0.498, 0.002], [0.7, 0.2, 0.1]])
    flipped_tie = np.array([[0.498, 0.5, 0.002], [0.7, 0.2, 0.1]])
    flipped_real = np.array([[0.5, 0.498, 0.002], [0.2, 0.7, 0.1]])
    assert agreement(ref, flipped_tie)["top_agreement"] == 1.0
    assert agreement(ref, flipped_tie)["top_agreement_strict"] == 0.5
    assert agreement(ref, flipped_real)["top_agreement"] == 0.5
    with pytest.raises(ValueError):
        agreement(ref, ref[:1])
