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


@pytest.fixture(scope="module")
def header_validator() -> jsonschema.Draft202012Validator:
    path = schema_path().with_name("timeline-header.schema.json")
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _check_file(path: Path, rows: jsonschema.Validator, headers: jsonschema.Validator) -> int:
    """Validate every record of a JSON-lines timeline; returns how many header records
    it holds (at most one, and only as the first line)."""
    from emoapp.recorded.runheader import is_header

    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records, f"{path} is empty"
    found = 0
    for i, record in enumerate(records):
        if is_header(record):
            assert i == 0, "a header record only comes first"
            headers.validate(record)
            found += 1
        else:
            rows.validate(record)
    return found


def _models(tiny_models: dict[str, Path]) -> list[str]:
    return [
        "--face-model", str(tiny_models["face"]),
        "--voice-model", str(tiny_models["voice"]),
        "--text-model", str(tiny_models["text"]),
    ]  # fmt: skip


def test_what_analyze_live_and_batch_write_follows_the_schemas(
    samples: Path, tiny_models: dict[str, Path], tmp_path: Path, validator, header_validator
) -> None:
    models = _models(tiny_models)
    analyzed = tmp_path / "analyze.jsonl"
    assert main([
        "analyze", str(samples / "face_speech.mp4"), "--transcript", str(samples / "speech.srt"),
        "--asr", "off", "--out", str(analyzed), "-q", *models,
    ]) == 0  # fmt: skip
    assert _check_file(analyzed, validator, header_validator) == 1

    lived = tmp_path / "live.jsonl"
    assert main([
        "live", "--no-gui", "--camera", str(samples / "face_only.mp4"), "--mic",
        str(samples / "speech.wav"), "--replay-speed", "2", "--asr", "off", "--out", str(lived),
        "--status-every", "0", *models,
    ]) == 0  # fmt: skip
    _check_file(lived, validator, header_validator)

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "speech.wav").write_bytes((samples / "speech.wav").read_bytes())
    out = tmp_path / "batch"
    assert main([
        "batch", str(inputs), "--out", str(out), "--workers", "1", "--asr", "off", "-q", *models,
    ]) == 0  # fmt: skip
    timelines = sorted((out / "timelines").rglob("*.jsonl"))
    assert timelines
    for timeline in timelines:  # a batch keeps what each run was in its journal instead
        _check_file(timeline, validator, header_validator)
