"""What keeps a timeline file valid and continuable: no NaN in JSON, resume points read
from what an interrupted writer left, appends that do not repeat the CSV header, and an
analysis that does not fuse numbers that are not numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.recorded.analyze import NOT_FINITE_NOTE, AnalysisConfig, analyze
from emoapp.recorded.timeline import (
    CSV_COLUMNS,
    TimelineWriter,
    probs_by_label,
    resume_point,
)
from tests.hardening.checks import assert_valid_rows, read_csv_rows, read_rows
from tests.hardening.live import FakeEncoder


def _row(t: float) -> dict:
    probs = dict.fromkeys(CANONICAL_LABELS, 1.0 / 7)
    fused = {
        "label": "neutral",
        "confidence": 1 / 7,
        "probs": probs,
        "valence": 0.5,
        "arousal": 0.5,
        "rule": "weighted",
        "disagreement": 0.0,
        "disagree": False,
    }
    modalities = dict.fromkeys(("face", "voice", "text"))
    return {"t": t, "fused": fused, "modalities": modalities, "notes": {}}


def test_nan_probabilities_are_written_as_null() -> None:
    written = probs_by_label(np.array([np.nan, np.inf, 0.5, 0.5, 0, 0, 0]))
    assert written["neutral"] is None and written["happy"] is None and written["sad"] == 0.5
    json.loads(json.dumps(written), parse_constant=pytest.fail)


def test_resume_point_of_what_an_interrupted_writer_leaves(tmp_path: Path) -> None:
    assert resume_point(tmp_path / "missing.jsonl") is None
    out = tmp_path / "t.jsonl"
    out.write_text("")
    assert resume_point(out) is None
    with TimelineWriter(out) as writer:
        for t in (0.0, 0.5, 1.0):
            writer.write(_row(t))
    with out.open("a") as file:
        file.write('{"t": 1.5, "fus')  # killed mid-row
    assert resume_point(out) == 1.0
    assert out.read_text().endswith('"fus')  # reading changes nothing
    with TimelineWriter(out, append=True) as writer:  # appending cuts the half row first
        writer.write(_row(1.5))
    assert [r["t"] for r in read_rows(out)] == [0.0, 0.5, 1.0, 1.5]


def test_csv_append_keeps_one_header(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    with TimelineWriter(out) as writer:
        writer.write(_row(0.0))
        writer.write(_row(0.5))
    assert resume_point(out) == 0.5
    with TimelineWriter(out, append=True) as writer:
        writer.write(_row(1.0))
    rows = read_csv_rows(out)
    assert [float(r["t"]) for r in rows] == [0.0, 0.5, 1.0]
    assert out.read_text().splitlines().count(",".join(CSV_COLUMNS)) == 1

    header_only = tmp_path / "h.csv"
    header_only.write_text(",".join(CSV_COLUMNS) + "\n")
    assert resume_point(header_only) is None
    with TimelineWriter(header_only, append=True) as writer:
        writer.write(_row(0.0))
    assert len(read_csv_rows(header_only)) == 1


@pytest.mark.parametrize(
    ("content", "says"),
    [("[1, 2]\n", "not a JSON-lines timeline"), ('{"t": "soon"}\n', "has no time"),
     ('{"t": -3}\n', "invalid time"), (b"\xff\xfe\x00garbage\n", "not UTF-8")],
)  # fmt: skip
def test_resume_point_refuses_what_is_not_a_timeline(
    tmp_path: Path, content: str | bytes, says: str
) -> None:
    out = tmp_path / "x.jsonl"
    out.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(EmoappError, match=says):
        resume_point(out)


def test_analysis_does_not_fuse_nan_predictions(tmp_path: Path) -> None:
    """An encoder (a third-party or baseline one) that returns NaN probabilities: the
    analysis keeps going, the prediction is left out of fusion with a note, and the
    rows are valid JSON."""
    from emoapp.core.messages import ModalityPrediction

    text = FakeEncoder(Modality.TEXT)
    text.garbage = lambda items: [
        ModalityPrediction(
            Modality.TEXT, item.t, np.full(7, np.nan), np.ones(7, bool), 0.7, "nan-text"
        )
        for item in items
    ]
    out = tmp_path / "t.jsonl"
    with TimelineWriter(out) as writer:
        summary = analyze(None, {Modality.TEXT: text}, config=AnalysisConfig(text="hello"),
                          on_row=writer.write)  # fmt: skip
    rows = read_rows(out)
    assert summary.rows == len(rows) == 1
    assert_valid_rows(rows)
    assert rows[0]["fused"] is None
    assert rows[0]["notes"]["text"] == NOT_FINITE_NOTE
