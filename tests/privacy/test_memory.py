"""The timeline the window keeps for an export: bounded, rate-limited, scores only, the
typed text and media references added to a copy only when asked, forgotten on clear."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.fusion import Fuser
from emoapp.core.messages import Modality, ModalityPrediction, NoPrediction
from emoapp.core.taxonomy import NUM_LABELS
from emoapp.privacy.export import export_row
from emoapp.privacy.memory import TimelineMemory, _pack, _unpack, row_shape

FACE, VOICE, TEXT = Modality.FACE, Modality.VOICE, Modality.TEXT


def prediction(modality: Modality, t: float, top: int = 1) -> ModalityPrediction:
    probs = np.full(NUM_LABELS, 0.05)
    probs[top] = 1.0 - 0.05 * (NUM_LABELS - 1)
    return ModalityPrediction(
        modality, t, probs, np.ones(NUM_LABELS, bool), float(probs[top]), f"test/{modality}"
    )


def test_rows_are_kept_at_most_at_the_row_rate_and_bounded():
    memory = TimelineMemory(max_rows=5, row_rate_hz=5.0, origin=100.0)
    fuser = Fuser()
    kept = []
    for i in range(60):  # 3 s of estimates at 20 a second
        t = 100.0 + 0.05 * i
        fuser.update(prediction(FACE, t))
        kept.append(memory.add_estimate(fuser.estimate(t)))
    assert sum(kept) == 15  # five a second
    assert len(memory) == 5 and memory.dropped == 10  # the oldest went first
    rows = memory.rows()
    assert [row["t"] for row in rows] == pytest.approx([2.0, 2.2, 2.4, 2.6, 2.8], abs=0.06)
    assert all(row["modalities"]["face"]["model"] == "test/face" for row in rows)
    assert memory.span_s() == pytest.approx(0.8, abs=0.06)


def test_typed_text_and_media_references_only_when_asked():
    memory = TimelineMemory(origin=0.0)
    memory.set_media(FACE, "/videos/interview.mp4")
    memory.set_media(TEXT, "typed text")
    memory.add_text(0.99, 1.01, "I never told anyone this")  # handed over in this interval
    memory.add_text(2.0, 2.1, "a later sentence")
    fuser = Fuser()
    fuser.update(prediction(FACE, 0.9))
    fuser.update(prediction(TEXT, 1.0))  # the session stamped it at 1.0
    memory.add_output(NoPrediction(VOICE, 1.1, "no speech (voice activity 0.02)"))
    memory.note_status(VOICE, "failed", "microphone not opened: no consent given")
    assert memory.add_estimate(fuser.estimate(1.2))

    plain = memory.rows()
    text = json.dumps(plain)
    assert "never told" not in text and "interview" not in text
    assert plain[0]["modalities"]["text"]["label"] == "happy"  # its scores are kept
    assert plain[0]["notes"]["voice"] == "microphone not opened: no consent given"
    assert plain == [export_row(row) for row in plain]  # nothing an export would drop

    full = memory.rows(include_text=True, include_media=True)[0]
    assert full["modalities"]["text"]["text"] == "I never told anyone this"
    assert full["modalities"]["face"]["media"] == "/videos/interview.mp4"
    assert full["modalities"]["text"]["media"] == "typed text"
    assert full["modalities"]["voice"] is None


def test_clear_forgets_rows_and_texts():
    memory = TimelineMemory(origin=0.0)
    memory.add_text(0.0, 0.1, "secret")
    fuser = Fuser()
    fuser.update(prediction(TEXT, 0.05))
    memory.add_estimate(fuser.estimate(0.2))
    memory.clear()
    assert len(memory) == 0 and memory.rows(include_text=True) == []
    fuser2 = Fuser()
    fuser2.update(prediction(TEXT, 0.05))
    memory.add_estimate(fuser2.estimate(0.3))
    assert "text" not in memory.rows(include_text=True)[0]["modalities"]["text"]


# -- rows are kept deflated against the first row's shape -------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_rows = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@settings(max_examples=60, deadline=None)
@given(row=json_rows, first=json_rows)
def test_a_packed_row_comes_back_exactly_whatever_the_dictionary(row, first):
    zdict = row_shape(first)
    assert _unpack(_pack(row, zdict), zdict) == json.loads(json.dumps(row))


@settings(max_examples=60, deadline=None)
@given(row=json_rows)
def test_the_dictionary_keeps_the_keys_and_no_value(row):
    shape = json.loads(row_shape(row))
    assert set(shape) == set(row)

    def leaves(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from leaves(v)
        elif isinstance(value, list):
            for v in value:
                yield from leaves(v)
        else:
            yield value

    assert all(leaf in ("", 0, None, True, False) for leaf in leaves(shape))


def test_rows_of_another_shape_than_the_first_come_back_as_built_and_smaller():
    memory = TimelineMemory(row_rate_hz=100.0, origin=0.0)
    fuser = Fuser()
    built = []
    memory.row_listeners.append(built.append)
    fuser.update(prediction(FACE, 0.0))
    memory.add_estimate(fuser.estimate(0.0))  # the first row: face only
    memory.note_status(VOICE, "degraded", "voice encoder failed: boom")
    for i in range(1, 40):
        t = 0.1 * i
        fuser.update(prediction(FACE, t, top=1 + i % 3))
        fuser.update(prediction(VOICE, t, top=2))
        fuser.update(prediction(TEXT, t, top=4))
        memory.add_estimate(fuser.estimate(t))
    assert memory.rows() == [json.loads(json.dumps(row)) for row in built]
    packed = sum(len(item.row) for item in memory._rows)
    plain = sum(len(json.dumps(row, separators=(",", ":")).encode()) for row in built)
    assert packed < plain / 2
    memory.clear()
    assert memory._zdict is None and memory.rows() == []
