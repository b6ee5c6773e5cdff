"""Explanations in timeline rows: ``emoapp analyze --explain`` writes numbers (face grids,
voice moments, word weights), words only with ``--include-text``; the rows follow the
published schema; the export guard keeps words out unless text export is opted in."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from emoapp.cli import main
from emoapp.core.explanation import GRID, TextExplanation, WordWeight
from emoapp.core.fusion import Fuser
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.rows import row_from_estimate
from emoapp.encoders.explain import ExplainingEncoder
from emoapp.privacy.export import export_row
from emoapp.recorded.timeline import read_timeline
from emoapp.stream.server import schema_path

EMBEDDED = [
    "--face-model", "embedded/face-minixception",
    "--voice-model", "embedded/voice-multicorpus",
    "--text-model", "embedded/text-conversation",
]  # fmt: skip


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_path().read_text(encoding="utf-8")))


def rows_of(path: Path) -> list[dict]:
    return read_timeline(path)  # the rows; the header record before them is not a row


@pytest.fixture(scope="module")
def explained_file(samples: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("explain") / "rows.jsonl"
    code = main([
        "analyze", str(samples / "face_only.mp4"), "--text", "I am so glad today",
        *EMBEDDED, "--face-fps", "1", "--step", "1", "--explain", "--out", str(out), "-q",
    ])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def explained(explained_file: Path) -> list[dict]:
    return rows_of(explained_file)


def test_explained_rows_follow_the_schema(explained, validator) -> None:
    for row in explained:
        validator.validate(row)


def test_each_face_gets_a_coarse_grid_of_numbers(explained) -> None:
    faces = [
        face
        for row in explained
        if row["modalities"]["face"]
        for face in row["modalities"]["face"]["faces"]
    ]
    assert faces
    for face in faces:
        saliency = face["saliency"]
        assert saliency["label"] == face["label"]
        grid = np.array(saliency["grid"])
        assert grid.shape == (GRID, GRID) and grid.min() >= 0 and grid.max() == pytest.approx(1)
    entry = next(row["modalities"]["face"] for row in explained if row["modalities"]["face"])
    assert entry["explain"]["method"] == "grad-cam"


def test_words_stay_out_of_the_file_unless_text_is_opted_in(
    explained, explained_file, tmp_path
) -> None:
    text = next(row["modalities"]["text"] for row in explained if row["modalities"]["text"])
    words = text["explain"]["words"]
    assert [w["i"] for w in words] == [0, 1, 2, 3, 4]
    assert all(set(w) == {"i", "weight"} for w in words)
    assert "glad" not in json.dumps(explained)
    header = json.loads(explained_file.read_text(encoding="utf-8").splitlines()[0])
    assert "t" not in header and "glad" not in json.dumps(header)
    assert '"explain": true' in json.dumps(header)  # --resume cannot mix runs

    out = tmp_path / "with-text.jsonl"
    code = main([
        "analyze", "--text", "I am so glad today", *EMBEDDED, "--explain", "--include-text",
        "--out", str(out), "-q",
    ])  # fmt: skip
    assert code == 0
    [row] = rows_of(out)
    explain = row["modalities"]["text"]["explain"]
    assert [w["word"] for w in explain["words"]] == ["I", "am", "so", "glad", "today"]
    assert explain["label"] == "happy" and explain["unit"] == "logit"
    top = max(explain["words"], key=lambda w: w["weight"])
    assert top["word"] == "glad"


def test_voice_rows_carry_moments_as_times_and_weights(samples, tmp_path, validator) -> None:
    out = tmp_path / "voice.jsonl"
    code = main([
        "analyze", str(samples / "speech.wav"), *EMBEDDED, "--vad", "energy", "--explain",
        "--step", "1", "--out", str(out), "-q",
    ])  # fmt: skip
    assert code == 0
    entries = [r["modalities"]["voice"] for r in rows_of(out) if r["modalities"]["voice"]]
    assert entries
    for entry in entries:
        moments = entry["explain"]["moments"]
        assert entry["explain"]["label"] == entry["label"]
        assert moments[0]["t"] == pytest.approx(entry["t"], abs=1e-3)
        assert moments[-1]["t_end"] == pytest.approx(entry["t_end"], abs=1e-3)
        assert all(a["t_end"] == pytest.approx(b["t"]) for a, b in itertools.pairwise(moments))
    for row in rows_of(out):
        validator.validate(row)


def test_the_export_guard_drops_attributed_words_without_the_text_box() -> None:
    prediction = ModalityPrediction(
        Modality.TEXT, 0.0, np.eye(7)[1], np.ones(7, bool), 1.0, "m",
        detail={"explanation": TextExplanation(
            0.0, "m", "exact-linear", "happy", (WordWeight("secret", 0, 1.5),), "logit"
        )},
    )  # fmt: skip
    fuser = Fuser()
    fuser.update(prediction)
    row = row_from_estimate(fuser.estimate(0.0), include_text=True)
    assert row["modalities"]["text"]["explain"]["words"][0]["word"] == "secret"
    dropped: set[str] = set()
    scores_only = export_row(row, dropped=dropped)
    assert scores_only["modalities"]["text"]["explain"]["words"] == [{"i": 0, "weight": 1.5}]
    assert not dropped
    with_text = export_row(row, include_text=True)
    assert with_text["modalities"]["text"]["explain"]["words"][0]["word"] == "secret"


def test_a_failing_explainer_leaves_the_prediction_and_says_why() -> None:
    class Broken:
        method = "broken"

        def explain(self, item, prediction, label=None):
            raise RuntimeError("gradients went missing\nsecond line")

    class Fixed:
        modality = Modality.TEXT
        model_id = "fixed"

        def encode(self, items):
            return [
                ModalityPrediction(Modality.TEXT, 0.0, np.eye(7)[2], np.ones(7, bool), 1.0, "fixed")
                for _ in items
            ]

    enc = ExplainingEncoder(Fixed(), Broken())
    assert enc.model_id == "fixed"
    [out] = enc.encode(["sad"])
    assert isinstance(out, ModalityPrediction) and out.label == "sad"
    fuser = Fuser()
    fuser.update(out)
    row = row_from_estimate(fuser.estimate(0.0))
    assert row["modalities"]["text"]["explain"] == {"error": "RuntimeError: gradients went missing"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "hi", "--include-text"], "add --explain"),
        (["--text", "hi", "--explain", "--by", "utterance"], "not with --speakers"),
    ],
)
def test_explain_option_misuse_is_one_line(args, message, capfd) -> None:
    assert main(["analyze", *args]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
