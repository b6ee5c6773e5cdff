"""A one-hour recording streams in bounded memory.

The file (one hour of 8 kHz mono 16-bit PCM, 57.6 MB, made block by block in tmp) is
decoded at 16 kHz, windowed and gated in a separate process
(:mod:`tests.hardening.stream_probe`), which reports its peak resident memory. Holding
the decoded hour would take 230 MB (float32 at 16 kHz); streaming must add only a few
megabytes, and resident memory sampled every ten minutes must not climb.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hardening import corpus

REPO = Path(__file__).resolve().parents[2]
HOUR_S = 3600.0
MAX_GROWTH_MIB = 40.0
"""Peak-memory growth allowed while streaming: a sixth of the decoded audio's size."""


@pytest.mark.slow
def test_one_hour_of_audio_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = corpus.long_pcm_wav(tmp_path / "hour.wav", HOUR_S, sample_rate=8_000)
    assert path.stat().st_size == pytest.approx(HOUR_S * 8_000 * 2, rel=0.001)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.hardening.stream_probe", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    print("one-hour stream:", json.dumps(report))  # figures for the README (pytest -s)

    assert report["decoded_s"] == pytest.approx(HOUR_S, abs=0.01)
    assert report["chunks"] == 7200
    assert report["windows"] == 1 + (HOUR_S - 2.0) / 0.5
    # The file alternates tone and silence: the gate saw both.
    assert 0.2 * report["windows"] < report["speech_windows"] < 0.9 * report["windows"]
    assert report["buffer_capacity_samples"] == 32_000  # one 2 s window at 16 kHz

    growth_mib = (report["hwm_after_kib"] - report["hwm_before_kib"]) / 1024
    assert growth_mib < MAX_GROWTH_MIB, f"peak memory grew {growth_mib:.1f} MiB"
    samples = report["rss_every_10_min_kib"]
    assert len(samples) >= 6  # at 0, 10, ..., 60 minutes
    # Flat, not climbing: the last sample is within a few MiB of the first.
    assert (samples[-1] - samples[0]) / 1024 < 8.0, samples
