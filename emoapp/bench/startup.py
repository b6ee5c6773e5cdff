"""Start-up: how long ``emoapp --help`` takes (and that it imports no torch), and how long
a fresh process takes to its first fused estimate of a live session on replayed media.

Both run in child processes of the current interpreter, so nothing this process has
already imported can flatter them. The first-estimate child is this module run as a
script (``python -m emoapp.bench.startup first-estimate ...``); it prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import emoapp
from emoapp.bench.common import BenchError, Timing, round_ms, say

HEAVY_MODULES = ("torch", "transformers", "cv2", "av", "librosa", "PySide6", "sounddevice")
"""Modules that ``emoapp --help`` must not import."""

_HELP_PROBE = """
import contextlib, io, json, sys, time
started = time.perf_counter()
from emoapp.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
heavy = %r
print(json.dumps({
    "in_process_s": time.perf_counter() - started,
    "heavy_imported": sorted(m for m in heavy if m in sys.modules),
}))
"""


def _child_env() -> dict[str, str]:
    """The environment with this emoapp first on the path (a checkout need not be
    installed)."""
    env = dict(os.environ)
    root = str(Path(emoapp.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _last_json_line(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def measure_help(runs: int) -> dict[str, Any]:
    """Median wall time of ``python -m emoapp --help`` over ``runs`` runs, and which heavy
    modules the help path imports (a probe that runs the same ``main(["--help"])``)."""
    env = _child_env()
    timing = Timing()
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "emoapp", "--help"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        timing.samples_ms.append((time.perf_counter() - started) * 1000.0)
        if done.returncode != 0:
            raise BenchError(f"`emoapp --help` failed: {done.stderr.strip()[-300:]}")
    probe = subprocess.run(
        [sys.executable, "-c", _HELP_PROBE % (HEAVY_MODULES,)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = _last_json_line(probe.stdout)
    if probe.returncode != 0 or found is None:
        raise BenchError(f"the import probe failed: {probe.stderr.strip()[-300:]}")
    return {
        "command": "python -m emoapp --help",
        "wall": timing.as_dict(),
        "help_s": round_ms(timing.median_ms / 1000.0),
        "torch_imported": "torch" in found["heavy_imported"],
        "heavy_modules_imported": found["heavy_imported"],
        "cli_import_and_parse_s": round_ms(found["in_process_s"]),
    }


def measure_first_estimate(
    paths: dict[str, Path],
    clip: Path,
    speech: Path,
    lines: Path,
    threads: int | None = None,
    timeout_s: float = 180.0,
) -> dict[str, Any]:
    """A fresh process: import, load the three models, start a live session on replayed
    media, and stop at its first fused estimate. Times from the moment it was spawned."""
    command = [
        sys.executable,
        "-m",
        "emoapp.bench.startup",
        "first-estimate",
        repr(time.time()),
        str(paths["face"]),
        str(paths["voice"]),
        str(paths["text"]),
        str(clip),
        str(speech),
        str(lines),
        str(threads or 0),
    ]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, env=_child_env(), capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"no first estimate within {timeout_s:g} s") from exc
    wall = time.perf_counter() - started
    found = _last_json_line(done.stdout)
    if done.returncode != 0 or found is None:
        raise BenchError(f"the first-estimate probe failed: {done.stderr.strip()[-400:]}")
    found["process_wall_s"] = round(wall, 3)
    return found


# --- the child ----------------------------------------------------------------------------


def _first_estimate_child(argv: list[str]) -> int:
    """Runs in the child process: see :func:`measure_first_estimate`."""
    spawned = float(argv[0])
    face_dir, voice_dir, text_dir, clip, speech, lines, threads = argv[1:8]
    python_up = time.time()
    import torch
    import transformers  # noqa: F401 - imported here so that its time counts as imports

    if int(threads):
        torch.set_num_threads(int(threads))
    from emoapp.bench.live import EstimateRecorder
    from emoapp.capture.replay import AudioReplaySource, TextReplaySource, VideoReplaySource
    from emoapp.core import clock
    from emoapp.core.messages import Modality
    from emoapp.encoders.base import EncoderConfig
    from emoapp.encoders.face import FaceEncoder
    from emoapp.encoders.text import TextEncoder
    from emoapp.encoders.voice import VoiceEncoder
    from emoapp.live.session import LiveSession

    imported = time.time()
    encoders: dict[Modality, Any] = {
        Modality.FACE: FaceEncoder(EncoderConfig(face_dir)),
        Modality.VOICE: VoiceEncoder(EncoderConfig(voice_dir)),
        Modality.TEXT: TextEncoder(EncoderConfig(text_dir)),
    }
    for encoder in encoders.values():
        encoder.load()
    loaded = time.time()
    sources = {
        Modality.FACE: VideoReplaySource(clip),
        Modality.VOICE: AudioReplaySource(speech),
        Modality.TEXT: TextReplaySource(lines, interval_s=3.0, first_s=1.0),
    }
    recorder = EstimateRecorder()
    session = LiveSession(sources, encoders)
    session.add_listener(recorder)
    session_started = time.time()
    clock_started = clock.now()
    session.start()
    try:
        got = recorder.first_event.wait(120.0)
        # Then wait (a little) for every modality to have taken part once.
        deadline = time.monotonic() + 20.0
        while got and len(recorder.first_seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        session.stop()
    if not got or recorder.first_estimate_t is None:
        print("no fused estimate within 120 s", file=sys.stderr)
        return 1
    first = recorder.first_estimate_t - clock_started
    result = {
        "python_start_s": round(python_up - spawned, 3),
        "imports_s": round(imported - python_up, 3),
        "models_load_s": round(loaded - imported, 3),
        "session_to_first_estimate_s": round(first, 3),
        "spawn_to_first_estimate_s": round(session_started - spawned + first, 3),
        "session_to_first_by_modality_s": {
            m.value: round(t - clock_started, 3) for m, t in sorted(recorder.first_seen.items())
        },
    }
    print(json.dumps(result), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["first-estimate"] and len(argv) == 9:
        return _first_estimate_child(argv[1:])
    print(
        "usage: python -m emoapp.bench.startup first-estimate SPAWN_TIME FACE VOICE TEXT "
        "CLIP SPEECH LINES THREADS",
        file=sys.stderr,
    )
    return 2


def run_startup(
    paths: dict[str, Path],
    clip: Path,
    speech: Path,
    lines: Path,
    help_runs: int,
    threads: int | None = None,
) -> dict[str, Any]:
    say("start-up: emoapp --help")
    result: dict[str, Any] = {"help": measure_help(help_runs)}
    say("start-up: time to first fused estimate (fresh process)")
    result["first_estimate"] = measure_first_estimate(paths, clip, speech, lines, threads)
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
