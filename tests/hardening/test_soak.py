"""Soak: the live pipeline on replayed input, accelerated, with resources sampled.

The sample video and speech are replayed in a loop at ``EMOAPP_SOAK_SPEED`` times real
time (10 by default) through the real encoders (tiny models), with typed text from a
replayed file and every estimate written as a timeline row, until
``EMOAPP_SOAK_MINUTES`` minutes of input (2.5 by default, the CI form) have been
delivered. Every half second the test samples resident memory (VmRSS), the process's
OS threads, its open file descriptors (/proc/self/fd) and what the session holds in its
buffers. After a warm-up none of them may keep growing: the last quarter of the run is
compared with the first quarter after the warm-up (trends, not timings; OS threads are
judged by their median, as FFmpeg's decoder threads come and go with every pass of a
looped file, while the session's Python threads must stay a fixed set). After stop(),
threads and descriptors return to where they were before the session.

The long form, for the README's figures (30 minutes of input, about 3 minutes)::

    EMOAPP_SOAK_MINUTES=30 .venv/bin/python -m pytest tests/hardening/test_soak.py -s

``-s`` prints a one-line JSON summary of the run.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from emoapp.capture.replay import AudioReplaySource, TextReplaySource, VideoReplaySource
from emoapp.core.messages import FusedEstimate
from emoapp.encoders.base import EncoderConfig
from emoapp.live.session import LiveSession
from emoapp.recorded.timeline import TimelineWriter, row_from_estimate
from tests.hardening.live import FACE, TEXT, VOICE

SOAK_MINUTES = float(os.environ.get("EMOAPP_SOAK_MINUTES", "2.5"))
SOAK_SPEED = float(os.environ.get("EMOAPP_SOAK_SPEED", "10"))
VIDEO_FPS = 15.0  # the sample video's frame rate
SAMPLE_EVERY_S = 0.5
WARM_UP_SHARE = 0.2
RSS_GROWTH_MIB = 25.0
"""Allowed growth of the median resident memory between the first and the last quarter
after the warm-up: allocator noise, not a leak (a leak of one frame per second at 10x
would be ~500 KB/s, hundreds of MiB over the run)."""

LINES = [
    "I am so happy to see you today.",
    "This is terrible news and I am furious.",
    "I feel sad and lonely tonight.",
    "Wow, I did not expect that at all!",
]


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class RowWriter:
    """A listener writing every estimate as a timeline row, like ``emoapp live --out``."""

    def __init__(self, writer: TimelineWriter) -> None:
        self.writer = writer
        self.lock = threading.Lock()

    def on_estimate(self, estimate: FusedEstimate) -> None:
        with self.lock:
            self.writer.write(row_from_estimate(estimate))


def _quarter_medians(values: list[float]) -> tuple[float, float]:
    n = max(1, len(values) // 4)
    return statistics.median(values[:n]), statistics.median(values[-n:])


@pytest.mark.slow
@pytest.mark.timeout(int(600 + SOAK_MINUTES * 60 / SOAK_SPEED * 4))
def test_soak_resources_stay_flat(
    samples: Path, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from emoapp.encoders.face import FaceEncoder
    from emoapp.encoders.text import TextEncoder
    from emoapp.encoders.voice import VoiceConfig, VoiceEncoder

    encoders: dict[Any, Any] = {
        FACE: FaceEncoder(EncoderConfig(str(tiny_models["face"]), device="cpu")),
        VOICE: VoiceEncoder(
            EncoderConfig(str(tiny_models["voice"]), device="cpu"),
            VoiceConfig(vad="energy", min_speech_s=0.1),
        ),
        TEXT: TextEncoder(EncoderConfig(str(tiny_models["text"]), device="cpu")),
    }
    for encoder in encoders.values():
        encoder.load()
    text_file = tmp_path / "typed.txt"
    text_file.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    sources = {
        FACE: VideoReplaySource(samples / "face_speech.mp4", speed=SOAK_SPEED, loop=True),
        VOICE: AudioReplaySource(samples / "speech.wav", speed=SOAK_SPEED, loop=True),
        TEXT: TextReplaySource(text_file, interval_s=3.0, speed=SOAK_SPEED, loop=True),
    }
    threads_before = _proc_status("Threads")
    fds_before = _open_fds()
    out = tmp_path / "soak.jsonl"
    writer = TimelineWriter(out)
    session = LiveSession(sources, encoders)
    session.add_listener(RowWriter(writer))

    target_frames = SOAK_MINUTES * 60 * VIDEO_FPS
    wall_budget = SOAK_MINUTES * 60 / SOAK_SPEED * 3 + 30
    samples_taken: list[dict[str, float]] = []
    started = time.monotonic()
    session.start()
    try:
        while True:
            time.sleep(SAMPLE_EVERY_S)
            metrics = session.metrics()
            held = session.buffered()
            samples_taken.append(
                {
                    "s": time.monotonic() - started,
                    "rss_kib": _proc_status("VmRSS"),
                    "threads": _proc_status("Threads"),
                    "py_threads": threading.active_count(),
                    "fds": _open_fds(),
                    "held": sum(held.values()),
                    "frames_in": metrics[FACE].inputs,
                }
            )
            if metrics[FACE].inputs >= target_frames:
                break
            assert time.monotonic() - started < wall_budget, (
                f"only {metrics[FACE].inputs / VIDEO_FPS / 60:.1f} of {SOAK_MINUTES} minutes "
                f"of input in {wall_budget:.0f} s"
            )
        metrics = session.metrics()
        statuses = session.status()
    finally:
        left = session.stop(timeout=10.0)
        writer.close()
    elapsed = time.monotonic() - started
    assert left == [], f"threads left after stop(): {left}"

    # Everything ran, and nothing failed along the way.
    assert all(statuses[m].state in ("running", "degraded") for m in (FACE, VOICE, TEXT)), statuses
    assert metrics[FACE].encoded > 0 and metrics[VOICE].encoded > 0 and metrics[TEXT].encoded > 0
    assert metrics[FACE].errors == metrics[VOICE].errors == metrics[TEXT].errors == 0
    rows = out.read_text(encoding="utf-8").splitlines()
    assert len(rows) > 10 * elapsed * 0.5, "estimates did not keep coming"
    json.loads(rows[-1])

    # Trends after the warm-up: nothing grows without bound.
    steady = [s for s in samples_taken if s["s"] >= WARM_UP_SHARE * samples_taken[-1]["s"]]
    assert len(steady) >= 8, "the run was too short to judge a trend"
    rss_first, rss_last = _quarter_medians([s["rss_kib"] / 1024 for s in steady])
    threads = [s["threads"] for s in steady]
    py_threads = [s["py_threads"] for s in steady]
    fds = [s["fds"] for s in steady]
    quarter = max(1, len(steady) // 4)
    summary = {
        "input_minutes": round(metrics[FACE].inputs / VIDEO_FPS / 60, 1),
        "wall_s": round(elapsed, 1),
        "speed": SOAK_SPEED,
        "rows": len(rows),
        "encoded": {m.value: metrics[m].encoded for m in (FACE, VOICE, TEXT)},
        "dropped": {m.value: metrics[m].dropped for m in (FACE, VOICE, TEXT)},
        "rss_mib_first_quarter": round(rss_first, 1),
        "rss_mib_last_quarter": round(rss_last, 1),
        "rss_mib_max": round(max(s["rss_kib"] for s in steady) / 1024, 1),
        "threads_before": threads_before,
        "threads_steady": [min(threads), max(threads)],
        "py_threads_steady": [min(py_threads), max(py_threads)],
        "fds_before": fds_before,
        "fds_steady": [min(fds), max(fds)],
        "held_max": max(s["held"] for s in steady),
    }
    print("soak:", json.dumps(summary))
    assert rss_last - rss_first < RSS_GROWTH_MIB, summary
    # Python threads are the session's own: a fixed set. OS threads also count FFmpeg's
    # decoder threads, which come and go with each pass of a looped file: their typical
    # number must not creep up, and their peak stays near the early peak.
    assert max(py_threads[-quarter:]) <= max(py_threads[:quarter]) + 1, summary
    first, last = statistics.median(threads[:quarter]), statistics.median(threads[-quarter:])
    assert last <= first + 2, summary
    assert max(threads[-quarter:]) <= max(threads[:quarter]) + 8, summary
    assert max(fds[-quarter:]) <= max(fds[:quarter]) + 2, summary
    assert summary["held_max"] <= 200, summary  # bounded buffers (audio ring, slot, text)

    # And after stop(), threads and descriptors are back where they started.
    def settled() -> bool:
        return _proc_status("Threads") <= threads_before + 2 and _open_fds() <= fds_before + 1

    deadline = time.monotonic() + 10
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.1)
    summary_after = {"threads_after": _proc_status("Threads"), "fds_after": _open_fds()}
    print("soak after stop:", json.dumps(summary_after))
    assert settled(), {**summary, **summary_after}
