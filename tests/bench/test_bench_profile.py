"""``emoapp bench --profile NAME``: the live part with one profile's models."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from emoapp.bench.profile import judge
from emoapp.cli import main


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    import cv2
    import torch

    out = tmp_path_factory.mktemp("profile") / "bench.json"
    before = torch.get_num_threads(), cv2.getNumThreads()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            rc = main(
                [
                    "bench",
                    "--profile",
                    "embedded",
                    "--duration",
                    "2",
                    "--threads",
                    "1",
                    "--face-detect-every",
                    "3",
                    "--json",
                    str(out),
                ]
            )
    finally:  # the session's thread plan is process-wide
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
    return rc, json.loads(out.read_text()), printed.getvalue()


def test_the_embedded_profile_runs_live_with_its_own_models(embedded):
    rc, result, printed = embedded
    assert rc == 0
    live = result["live"]
    assert live["profile"] == "embedded"
    assert result["models"]["profile"] == "embedded"
    assert result["models"]["face"].startswith("embedded/")
    for part in ("encoders", "scaling", "startup", "batch"):
        assert result[part] == {"status": "skipped"}
    assert set(live["modalities"]) == {"face", "voice", "text"}
    face = live["modalities"]["face"]
    assert face["encoded"] > 0 and "age_p95_ms" in face and "encoder_rate_hz" in face
    assert "rss_slope_mib_per_min" in live
    assert "torch 1" in live["thread_plan"] and "(--threads)" in live["thread_plan"]
    assert live["face_detect_every"] == 3
    located = live["face_frames_located"]
    assert located["detected"] >= 1 and located["tracked"] >= 1
    assert live["face_reclassify_after_s"] == 1.0
    classified = live["face_frames_classified"]
    assert set(classified) == {"run", "reused"}
    assert classified["run"] >= located["detected"]  # a detected frame is always classified
    assert classified["run"] + classified["reused"] <= located["detected"] + located["tracked"]
    # beside encoder_rate_hz (predictions issued): how often the classifier itself ran
    assert face["classifier_rate_hz"] >= 0
    assert set(result["targets"]) >= {"face_encoder_rate_met", "voice_age_p95_met"}
    assert "targets:" in printed and "JSON:" in printed


def test_targets_are_judged_per_profile():
    live = {
        "modalities": {
            "face": {"encoder_rate_hz": 12.0, "age_p95_ms": 300.0},
            "voice": {"age_p95_ms": None},
        }
    }
    verdict = judge("embedded", live)
    assert verdict["face_encoder_rate_met"] is True
    assert verdict["face_age_p95_met"] is False
    assert verdict["voice_age_p95_met"] is None
    assert judge("cpu", live)["face_age_p95_met"] is True
    assert judge("baseline", live) == {}
    assert judge("embedded", {"status": "failed"}) == {}


def test_an_unknown_profile_is_a_one_line_error(capsys):
    assert main(["bench", "--profile", "no-such-profile", "--duration", "1"]) == 2
    assert "no-such-profile" in capsys.readouterr().err
    assert main(["bench", "--profile", "embedded", "--face-detect-every", "0"]) == 2
    assert "--face-detect-every" in capsys.readouterr().err
    assert main(["bench", "--profile", "embedded", "--face-reclassify-after", "-0.5"]) == 2
    assert "--face-reclassify-after" in capsys.readouterr().err


def test_the_precision_each_torch_encoder_runs_is_recorded(tiny_models):
    from emoapp.bench.profile import precision_choices
    from emoapp.core.messages import Modality
    from emoapp.encoders.base import EncoderConfig
    from emoapp.encoders.embedded.face import MiniXceptionFaceEncoder
    from emoapp.encoders.text import TextEncoder

    text = TextEncoder(EncoderConfig(model=str(tiny_models["text"]), dtype="int8"))
    text.load()
    chosen = precision_choices(
        {
            Modality.TEXT: text,
            Modality.FACE: MiniXceptionFaceEncoder.__new__(MiniXceptionFaceEncoder),
        }
    )
    assert chosen == {"text": {"dtype": "int8", "reason": "--dtype"}}  # numpy models: none


def test_profile_and_part_do_not_go_together(capsys):
    assert main(["bench", "--profile", "cpu", "--part", "precision"]) == 2
    assert "--part and --profile" in capsys.readouterr().err
