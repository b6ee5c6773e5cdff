"""`emoapp live --verbose`: the thread plan and the face path (detected / tracked)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from emoapp.cli import main


@pytest.fixture
def restore_threads():
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(before[0])  # the session's thread plan is process-wide
    cv2.setNumThreads(before[1])


def test_verbose_shows_the_thread_plan_and_how_faces_were_found(
    samples: Path, capsys: pytest.CaptureFixture[str], restore_threads
) -> None:
    code = main([
        "live", "--no-gui", "--camera", str(samples / "face_speech.mp4"),
        "--profile", "embedded", "--duration", "3", "--status-every", "1",
        "--verbose", "--threads", "1", "--face-detect-every", "3",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    plan = next(line for line in err.splitlines() if "threads:" in line)
    assert "1 model worker(s) (face)" in plan and "torch 1" in plan and "(--threads)" in plan
    assert "applied: torch intra-op 1" in plan
    found = re.search(r"face: (\d+) frame\(s\) detected, (\d+) tracked", err)
    assert found, err
    detected, tracked = int(found[1]), int(found[2])
    assert detected >= 1 and tracked >= 1
    status = [line for line in err.splitlines() if line.startswith("emoapp live ")][-1]
    assert re.search(
        r"face running: .* faces \d+% tracked, \d+% reused, detected every 3", status
    ), status
    found = re.search(r"face: classifier ran on (\d+) frame\(s\), (\d+) reused", err)
    assert found, err
    assert int(found[1]) >= detected  # a detected frame is always classified


def test_the_face_path_note_reads_the_tracker():
    from emoapp.encoders.face import FaceDetector, TrackingLocator
    from emoapp.live.headless import face_path_note

    class Encoder:
        detector: object = FaceDetector()

    encoder = Encoder()
    assert face_path_note(encoder) is None  # detects every frame: nothing to say
    assert face_path_note(None) is None
    tracker = TrackingLocator(FaceDetector(), every=4)
    encoder.detector = tracker
    assert face_path_note(encoder) == "faces - tracked, detected every 4"
    tracker.detections, tracker.tracked = 1, 3
    assert face_path_note(encoder) == "faces 75% tracked, detected every 4"
    # with classification reuse on: the share of frames whose classification was reused
    from emoapp.encoders.face import ClassifyReuse

    encoder.reuse = ClassifyReuse(1.0)
    assert face_path_note(encoder) == "faces 75% tracked, - reused, detected every 4"
    encoder.reuse.run, encoder.reuse.reused = 2, 3
    assert face_path_note(encoder) == "faces 75% tracked, 60% reused, detected every 4"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--threads", "0"),
        ("--face-detect-every", "0"),
        ("--face-reclassify-after", "-1"),
        ("--face-reclassify-after", "nan"),
        ("--face-reclassify-after", "inf"),
    ],
)
def test_bad_counts_are_one_line_errors(samples: Path, capsys, option: str, value: str) -> None:
    code = main([
        "live", "--no-gui", "--camera", str(samples / "face_speech.mp4"),
        "--profile", "embedded", option, value,
    ])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert option in err and len(err.strip().splitlines()) == 1, err


def test_verbose_names_each_models_precision_and_why(
    tiny_models, tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_threads
) -> None:
    lines = tmp_path / "typed.txt"
    lines.write_text("I am so happy today\nThis is awful\n")
    code = main([
        "live", "--no-gui", "--text-file", str(lines), "--profile", "embedded",
        "--text-model", str(tiny_models["text"]), "--dtype", "int8", "--duration", "1",
        "--verbose", "--threads", "1",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "emoapp live: text: cpu int8 (--dtype)" in err


def test_the_reclassify_option_reaches_the_live_options():
    import argparse

    from emoapp.commands.common import add_live_options, live_options

    parser = argparse.ArgumentParser()
    add_live_options(parser)
    assert live_options(parser.parse_args([])).face_reclassify_after == 1.0
    off = live_options(parser.parse_args(["--face-reclassify-after", "0"]))
    assert off.face_reclassify_after == 0
    options = live_options(parser.parse_args(["--face-reclassify-after", "2.5"]))
    assert options.face_reclassify_after == 2.5
