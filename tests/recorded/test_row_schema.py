"""The JSON Schema of a timeline row (resources/schema/timeline-row.schema.json) describes
the rows emoapp really writes: faces (with boxes), text, an abstaining fuser, CSV-free
JSON lines. The stream sends these very rows, so this is its message format too."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from emoapp.cli import main
from emoapp.recorded.timeline import read_timeline
from emoapp.stream.server import SCHEMA_VERSION, schema_path


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["version"] == SCHEMA_VERSION
    return jsonschema.Draft202012Validator(schema)


def test_face_and_text_rows_follow_the_schema(
    samples: Path, tiny_models: dict[str, Path], tmp_path: Path, validator
) -> None:
    out = tmp_path / "rows.jsonl"
    code = main([
        "analyze", str(samples / "face_only.mp4"), "--text", "what a lovely day",
        "--face-model", str(tiny_models["face"]), "--text-model", str(tiny_models["text"]),
        "--out", str(out), "-q",
    ])  # fmt: skip
    assert code == 0
    rows = read_timeline(out)  # the rows; the header record before them is not a row
    assert any(row["modalities"]["face"] for row in rows)
    assert any(row["modalities"]["text"] for row in rows)
    for row in rows:
        validator.validate(row)


def test_the_schema_refuses_what_a_row_must_not_hold(validator) -> None:
    row = {"t": 0.0, "fused": None, "abstained": "no modality has a prediction",
           "modalities": {"face": None, "voice": None, "text": None}, "notes": {}}  # fmt: skip
    validator.validate(row)
    joy = {"label": "joy", "confidence": 0.5, "probs": {}, "valence": 0.5, "arousal": 0.5}
    for bad in (
        {**row, "text": "my secret words"},  # content has no place in a row
        {**row, "t": -1.0},
        {k: v for k, v in row.items() if k != "modalities"},
        {**row, "fused": {**joy, "rule": "weighted"}},  # not a canonical label
    ):
        assert not validator.is_valid(bad)
