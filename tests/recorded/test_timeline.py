"""The timeline row format and its writers (JSON lines, CSV, stdout)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from emoapp.core.errors import EmoappError
from emoapp.core.fusion import Fuser, FusionConfig
from emoapp.core.messages import FaceDetection, Modality, ModalityPrediction, NoPrediction
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.recorded.timeline import (
    CSV_COLUMNS,
    TimelineWriter,
    flatten_row,
    format_for,
    read_timeline,
    row_from_estimate,
)

ALL = np.ones(7, dtype=bool)
# A 4-class speech model: neutral, happy, sad, angry.
FOUR = np.array([True, True, True, True, False, False, False])


def _prediction(modality: Modality, t: float, probs, mask=ALL, **kwargs) -> ModalityPrediction:
    p = np.asarray(probs, dtype=float)
    p = np.where(mask, p, 0.0)
    p = p / p.sum()
    return ModalityPrediction(
        modality=modality,
        t=t,
        probs=p,
        mask=mask.copy(),
        confidence=float(p.max()),
        model_id=f"{modality.value}-model",
        **kwargs,
    )


def _face(t: float) -> ModalityPrediction:
    big = np.array([0.1, 0.6, 0.05, 0.05, 0.1, 0.05, 0.05])
    small = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
    return _prediction(
        Modality.FACE,
        t,
        big,
        faces=(FaceDetection((10, 20, 100, 120), big), FaceDetection((300, 40, 30, 30), small)),
        detail={"primary_index": 0},
    )


def _voice(t: float) -> ModalityPrediction:
    return _prediction(
        Modality.VOICE, t, [0.2, 0.1, 0.6, 0.1, 0, 0, 0], FOUR, detail={"speech_fraction": 0.8}
    )


def test_row_carries_fused_and_every_modality() -> None:
    fuser = Fuser(FusionConfig())
    fuser.update(_face(1.0))
    fuser.update(_voice(0.5))
    fuser.update(_prediction(Modality.TEXT, 0.0, [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4]))
    estimate = fuser.estimate(1.2)
    row = row_from_estimate(estimate)
    json.dumps(row)  # plain JSON types only

    assert row["t"] == pytest.approx(1.2)
    fused = row["fused"]
    assert list(fused["probs"]) == list(CANONICAL_LABELS)
    assert sum(fused["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    assert fused["label"] == estimate.label
    assert fused["rule"] == "weighted" and fused["disagree"] is True
    assert 0 <= fused["disagreement"] <= 1
    assert "abstained" not in row

    face, voice, text = (row["modalities"][m] for m in ("face", "voice", "text"))
    assert face["label"] == "happy" and face["model"] == "face-model"
    assert face["weight"] == pytest.approx(estimate.weights[Modality.FACE], abs=1e-6)
    shares = [row["modalities"][m]["contribution"] for m in ("face", "voice", "text")]
    assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    assert [f["box"] for f in face["faces"]] == [[10, 20, 100, 120], [300, 40, 30, 30]]
    assert face["faces"][1]["label"] == "neutral" and face["primary"] == 0
    # A 4-label model has no entry for the labels it cannot express.
    assert list(voice["probs"]) == ["neutral", "happy", "sad", "angry"]
    assert voice["speech"] == pytest.approx(0.8)
    assert text["t"] == 0.0 and text["baseline"] is False
    assert row["notes"] == {}


def test_abstained_row_and_notes() -> None:
    fuser = Fuser(FusionConfig())
    row = row_from_estimate(
        fuser.estimate(0.0),
        {Modality.FACE: NoPrediction(Modality.FACE, 0.0, "no face found")},
        {Modality.VOICE: "the file has no audio track"},
    )
    assert row["fused"] is None
    assert row["abstained"] == "no modality has a prediction"
    assert row["modalities"] == {"face": None, "voice": None, "text": None}
    assert row["notes"] == {"face": "no face found", "voice": "the file has no audio track"}


def test_stale_prediction_is_null_with_a_note_and_caller_notes_win() -> None:
    fuser = Fuser(FusionConfig())
    face = _face(0.0)
    fuser.update(face)
    fuser.update(_prediction(Modality.TEXT, 9.0, [1, 1, 1, 1, 1, 1, 2]))
    estimate = fuser.estimate(10.0)  # the face is 10 s old: past its max age
    row = row_from_estimate(
        estimate, {Modality.FACE: face, Modality.TEXT: None}, {"text": "typed by hand"}
    )
    assert row["modalities"]["face"] is None
    assert "10.0 s old" in row["notes"]["face"]
    assert row["modalities"]["text"] is not None
    assert row["notes"]["text"] == "typed by hand"
    # With text alone, the fused distribution is the text's posterior, all of it.
    text_posterior = row["modalities"]["text"]["posterior"]
    assert row["fused"]["probs"] == pytest.approx(text_posterior, abs=1e-6)
    assert row["modalities"]["text"]["support"] == pytest.approx(1.0)
    assert row["fused"]["raw"]["label"] == row["fused"]["label"]


def test_flatten_row_for_csv() -> None:
    fuser = Fuser(FusionConfig())
    fuser.update(_voice(0.0))
    row = row_from_estimate(
        fuser.estimate(0.5), {Modality.FACE: NoPrediction(Modality.FACE, 0.5, "no face found")}
    )
    flat = flatten_row(row)
    assert list(flat) == list(CSV_COLUMNS)
    assert flat["fused_label"] == "sad" and flat["voice_label"] == "sad"
    assert flat["voice_fearful"] is None  # outside the voice model's mask
    # A label the voice model cannot say keeps its share of "cannot tell", not 0.
    assert 0.0 < flat["fused_fearful"] < flat["fused_sad"]
    assert flat["voice_support"] == pytest.approx(1.0)
    assert flat["face_label"] is None and flat["text_weight"] is None
    assert flat["voice_speech"] == pytest.approx(0.8)
    assert flat["notes"] == "face: no face found"
    assert flat["disagree"] == 0 and flat["abstained"] is None


def _rows(n: int) -> list[dict]:
    fuser = Fuser(FusionConfig())
    rows = []
    for i in range(n):
        fuser.update(_face(i * 0.5))
        rows.append(row_from_estimate(fuser.estimate(i * 0.5)))
    return rows


def test_jsonl_rows_are_flushed_as_written(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    writer = TimelineWriter(path)
    assert writer.format == "jsonl"
    rows = _rows(3)
    for row in rows[:2]:
        writer.write(row)
    # Not closed yet (as after an interruption): the file already holds whole rows.
    assert read_timeline(path) == rows[:2]
    writer.write(rows[2])
    writer.close()
    assert read_timeline(path) == rows
    assert writer.rows_written == 3


def test_existing_file_survives_a_run_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text('{"t": 0}\n')
    with TimelineWriter(path):
        pass  # e.g. the model failed to load
    assert path.read_text() == '{"t": 0}\n'


def test_csv_writer(tmp_path: Path) -> None:
    path = tmp_path / "timeline.CSV"
    assert format_for(path) == "csv"
    rows = _rows(2)
    with TimelineWriter(path) as writer:
        writer.write(rows[0])
        # Flushed with its header before the next row.
        assert path.read_text().splitlines()[0].split(",") == list(CSV_COLUMNS)
        writer.write(rows[1])
    with path.open(newline="") as file:
        read = list(csv.DictReader(file))
    assert len(read) == 2
    assert float(read[1]["t"]) == 0.5 and read[1]["face_label"] == "happy"
    probs = [float(read[1][f"fused_{label}"]) for label in CANONICAL_LABELS]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert read[1]["voice_label"] == ""


def test_stdout_writer(capsys: pytest.CaptureFixture[str]) -> None:
    with TimelineWriter("-") as writer:
        assert writer.is_stdout and writer.format == "jsonl"
        for row in _rows(2):
            writer.write(row)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["t"] for line in lines] == [0.0, 0.5]


def test_unwritable_targets_fail_early(tmp_path: Path) -> None:
    with pytest.raises(EmoappError, match="does not exist"):
        TimelineWriter(tmp_path / "missing" / "out.jsonl")
    with pytest.raises(EmoappError, match="is a folder"):
        TimelineWriter(tmp_path)
