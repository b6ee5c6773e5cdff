"""`emoapp live --no-gui`: replayed files through tiny models, rows in the analyze format
on stdout, status lines on stderr, and every way a run stops (duration, end of the
files, SIGINT, SIGTERM) leaving no thread behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emoapp.cli import main

REPO = Path(__file__).resolve().parents[2]


def _models(tiny_models: dict[str, Path]) -> list[str]:
    return [
        "--face-model", str(tiny_models["face"]),
        "--voice-model", str(tiny_models["voice"]),
        "--text-model", str(tiny_models["text"]),
    ]  # fmt: skip


def _rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_live_replays_files_and_prints_rows_and_status(
    samples: Path, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "live", "--no-gui",
        "--camera", str(samples / "face_speech.mp4"), "--mic", str(samples / "speech.wav"),
        "--duration", "3", "--out", "-", "--status-every", "1", *_models(tiny_models),
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = _rows(out)
    # About 10 rows a second for 3 s (the first ones abstain until a prediction exists).
    assert 20 <= len(rows) <= 33
    assert all(set(row) >= {"t", "fused", "modalities", "notes"} for row in rows)
    times = [row["t"] for row in rows]
    assert times == sorted(times)
    fused = [row for row in rows if row["fused"] is not None]
    assert fused, "no fused estimate was written"
    assert set(fused[-1]["fused"]["probs"]) == {
        "neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"
    }  # fmt: skip
    assert any(row["modalities"]["face"] for row in fused)
    assert any(row["modalities"]["face"] and row["modalities"]["face"]["faces"] for row in fused)
    # A status line per second on stderr: states, rates, drops, age percentiles.
    status_lines = [line for line in err.splitlines() if line.startswith("emoapp live ")]
    assert len(status_lines) >= 3
    assert "face running: in " in status_lines[-1] and "age p50/p95" in status_lines[-1]
    assert "drop " in status_lines[-1]
    # --duration counts from when the session is up; a slow start is named.
    ended = re.search(
        r"emoapp live: duration after ([\d.]+) s(?: \(([\d.]+) s of it starting\))?;", err
    )
    assert ended, err
    assert float(ended[1]) - float(ended[2] or 0) >= 2.95


def test_live_stops_at_the_end_of_the_replayed_files(
    samples: Path, tiny_models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "live.jsonl"
    started = time.monotonic()
    code = main([
        "live", "--no-gui", "--camera", str(samples / "face_only.mp4"), "--replay-speed", "2",
        "--out", str(out), "--status-every", "0", *_models(tiny_models),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "end of input" in err
    assert time.monotonic() - started < 15  # 2.5 s of video at twice the speed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(row["modalities"]["voice"] is None for row in rows)


def test_absent_camera_is_reported_and_the_rest_keeps_running(
    samples: Path, tiny_models: dict[str, Path], capsys
) -> None:
    code = main([
        "live", "--no-gui", "--camera", "0", "--allow-camera",
        "--mic", str(samples / "speech.wav"),
        "--duration", "5", "--out", "-", "--status-every", "1", *_models(tiny_models),
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "face failed [no camera at index 0" in err
    rows = _rows(out)
    assert any(row["modalities"]["voice"] for row in rows), "voice must run without the camera"
    assert rows[-1]["notes"]["face"].startswith("no camera at index 0")


def _interrupt_once_handled(sent: list[bool], give_up: threading.Event) -> None:
    """Send SIGINT to this process once `emoapp live` handles it (its handler replaced
    Python's default), never before: a SIGINT while the models load is an ordinary Ctrl-C
    (KeyboardInterrupt, exit 130), and on a busy machine loading takes any time."""
    while not give_up.is_set():
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            return
        give_up.wait(0.01)


def test_sigint_stops_the_run_cleanly(samples: Path, tiny_models: dict[str, Path], capsys) -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    sent: list[bool] = []
    give_up = threading.Event()
    timer = threading.Thread(target=_interrupt_once_handled, args=(sent, give_up))
    timer.start()
    try:
        code = main([
            "live", "--no-gui", "--mic", str(samples / "speech.wav"), "--loop",
            "--status-every", "0", *_models(tiny_models),
        ])  # fmt: skip
    finally:
        give_up.set()
        timer.join()
    err = capsys.readouterr().err
    assert sent, "the run ended before SIGINT was sent"
    assert code == 0, err
    assert "stopped by SIGINT" in err and "interrupted after" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_live_needs_no_gui_and_something_to_capture(capsys) -> None:
    assert main(["live"]) == 2
    assert "the window is `emoapp` without a subcommand" in capsys.readouterr().err
    assert main(["live", "--no-gui"]) == 2
    assert "nothing to capture" in capsys.readouterr().err
    assert main(["live", "--no-gui", "--camera", "absent.mp4"]) == 2
    assert "--camera absent.mp4: no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_stops_a_live_process(samples: Path, tiny_models: dict[str, Path]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "emoapp", "live", "--no-gui",
            "--camera", str(samples / "face_speech.mp4"), "--mic", str(samples / "speech.wav"),
            "--loop", "--out", "-", "--status-every", "0", *_models(tiny_models),
        ],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the pipeline is running once a row arrives
        assert json.loads(first)["t"] > 0
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM" in err
    assert "threads still running" not in err
    assert all(json.loads(line) for line in out.splitlines() if line.strip())
