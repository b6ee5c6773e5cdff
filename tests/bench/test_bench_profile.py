"""``emoapp bench --profile NAME``: the live part with one profile's models."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from emoapp.bench.profile import judge
from emoapp.cli import main


def run_embedded_profile(tmp_path_factory, name: str, *extra: str):
    """``emoapp bench --profile embedded`` for 2 s with one torch thread (and ``extra``):
    its exit status, JSON record and printed text; the process-wide thread settings the
    session's plan changes are put back."""
    import cv2
    import torch

    out = tmp_path_factory.mktemp(name) / "bench.json"
    before = torch.get_num_threads(), cv2.getNumThreads()
    printed = io.StringIO()
    argv = ["bench", "--profile", "embedded", *extra, "--duration", "2", "--threads", "1"]
    try:
        with contextlib.redirect_stdout(printed):
            rc = main([*argv, "--json", str(out)])
    finally:  # the session's thread plan is process-wide
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
    return rc, json.loads(out.read_text()), printed.getvalue()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return run_embedded_profile(tmp_path_factory, "profile", "--face-detect-every", "3")


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
    assert len(live["rss_each_minute_mb"]) == 1  # a 2 s run: the start only
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
    assert verdict["ui_lag_p99_met"] is None  # not measured without --window
    assert judge("embedded", {**live, "ui_lag_p99_ms": 51.0})["ui_lag_p99_met"] is False
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


@pytest.fixture(scope="module")
def embedded_in_window(tmp_path_factory):
    pytest.importorskip("PySide6")
    return run_embedded_profile(tmp_path_factory, "profile-window", "--window")


def test_the_window_run_adds_the_event_loop_lag_and_keeps_every_key(embedded, embedded_in_window):
    rc, result, printed = embedded_in_window
    assert rc == 0, result["live"]
    live = result["live"]
    assert live["window"] in ("offscreen", "x11")
    assert live["ui_lag_samples"] > 0
    assert 0.0 <= live["ui_lag_p50_ms"] <= live["ui_lag_p99_ms"] <= live["ui_lag_max_ms"]
    # The record has every key of the headless run.
    assert set(embedded[1]["live"]) <= set(live)
    assert set(live["modalities"]) == {"face", "voice", "text"}
    assert live["modalities"]["face"]["encoded"] > 0
    assert "--window" in result["command"]
    assert result["targets"]["ui_lag_p99_ms_max"] == 50.0
    assert result["targets"]["ui_lag_p99_met"] in (True, False)
    assert "event-loop lag" in printed


def test_the_window_goes_with_a_profile(capsys):
    assert main(["bench", "--window", "--skip", "encoders"]) == 2
    assert "--window" in capsys.readouterr().err
