"""Diarization: the clustering, the turns and overlaps it makes, the pyannote adapter's
overlap handling, and the embedded diarizer on two synthetic voices (espeak-ng), scored
with pyannote.metrics."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.errors import EmoappError
from emoapp.encoders.diarize import (
    STEP_S,
    EmbeddedDiarizer,
    cluster_embeddings,
    from_labelled_segments,
    make_diarizer,
    speech_regions,
    turns_from_frames,
)


def _voices(n_per: list[int], seed: int, spread: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors scattered around one random direction per voice plus a shared one (as
    a line or a room adds to every window): different voices about 0.5 alike, as
    resemblyzer's embeddings of two people on one recording are."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=64)
    points, truth = [], []
    for voice, n in enumerate(n_per):
        centre = rng.normal(size=64) + shared
        for _ in range(n):
            x = centre + spread * np.linalg.norm(centre) / 8 * rng.normal(size=64)
            points.append(x / np.linalg.norm(x))
            truth.append(voice)
    return np.asarray(points), np.asarray(truth)


def _agreement(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of items whose cluster is the one most of their voice got."""
    right = 0
    for voice in np.unique(truth):
        right += np.bincount(labels[truth == voice]).max()
    return right / len(truth)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(8, 40), min_size=2, max_size=3),
    st.integers(0, 10_000),
)
def test_well_separated_voices_are_told_apart(sizes: list[int], seed: int) -> None:
    points, truth = _voices(sizes, seed)
    given_count = cluster_embeddings(points, speakers=len(sizes))
    assert sorted(set(given_count.tolist())) == list(range(len(sizes)))
    assert _agreement(given_count, truth) >= 0.95


@pytest.mark.parametrize(
    ("sizes", "seed"),
    [([20, 20], 1), ([30, 15], 2), ([40, 12], 3), ([12, 12, 30], 4), ([25, 25, 25], 5)],
)
def test_the_count_is_estimated_on_clear_cases(sizes: list[int], seed: int) -> None:
    """Estimating how many speakers there are is a heuristic (eigenvalue gaps, then
    merging alike clusters): it is not a property of every draw (two small clusters
    beside a large one can merge: sizes 8, 8, 28 did), and on synthetic calls it was right
    in 12 of 20 (docs/guide/calls.md). These clear cases pin that it works where it should."""
    points, truth = _voices(sizes, seed)
    estimated = cluster_embeddings(points)
    assert estimated.max() + 1 == len(sizes)
    assert _agreement(estimated, truth) >= 0.95


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 60), st.integers(0, 10_000), st.sampled_from([None, 1, 2, 3]))
def test_labels_are_dense_and_one_per_embedding(n: int, seed: int, speakers: int | None) -> None:
    points = np.random.default_rng(seed).normal(size=(n, 32))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = cluster_embeddings(points, speakers)
    assert labels.shape == (n,)
    assert sorted(set(labels.tolist())) == list(range(labels.max() + 1))
    if speakers == 1:
        assert not labels.any()


def test_one_voice_stays_one_speaker() -> None:
    points, _ = _voices([50], seed=3, spread=0.15)
    assert cluster_embeddings(points).max() == 0


@pytest.mark.parametrize("n", [10, 50])
def test_a_call_keeps_at_least_two_sides(n: int) -> None:
    """min_speakers (a call's two sides) stops the merging, on few windows or many."""
    points, _ = _voices([n], seed=4, spread=0.15)
    assert cluster_embeddings(points, min_speakers=2).max() == 1
    two, truth = _voices([n, n], seed=5)
    labels = cluster_embeddings(two, min_speakers=2)
    assert labels.max() == 1 and _agreement(labels, truth) >= 0.95


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-2, 3), min_size=1, max_size=80))
def test_turns_cover_each_step_once(values: list[int]) -> None:
    labels = np.asarray(values)
    turns, overlaps = turns_from_frames(labels)
    spans = sorted([(t.start, t.end) for t in turns] + overlaps)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start + 1e-9  # nothing is both a turn and an overlap, or two turns
    speech = sum(e - s for s, e in spans)
    assert speech == pytest.approx(float(np.sum(labels != -1)) * STEP_S, abs=1e-6)
    assert sum(e - s for s, e in overlaps) == pytest.approx(
        float(np.sum(labels == -2)) * STEP_S, abs=1e-6
    )


def test_short_interruptions_of_one_speaker_are_smoothed() -> None:
    labels = np.asarray([0] * 10 + [1] * 2 + [0] * 10)
    turns, _ = turns_from_frames(labels, min_turn_s=0.3)
    assert [(t.start, t.end, t.speaker) for t in turns] == [(0.0, 2.2, 0)]


def test_overlapping_pipeline_segments_become_overlap_not_a_speaker() -> None:
    result = from_labelled_segments(
        [(0.0, 2.0, "A"), (1.5, 3.0, "B"), (4.0, 5.0, "A")], duration=5.0, method="test"
    )
    assert result.speakers == 2
    assert result.overlaps == [(1.5, 2.0)]
    assert result.segments(0) == [(0.0, 1.5), (4.0, 5.0)]
    assert result.segments(1) == [(2.0, 3.0)]


def test_speech_regions_bridge_short_gaps_and_drop_blips() -> None:
    probs = np.zeros(100)
    probs[10:30] = 0.9
    probs[33:50] = 0.9  # a 0.096 s gap: bridged
    probs[70:72] = 0.9  # a 64 ms blip: dropped
    assert speech_regions(probs, 0.032, 0.5, 0.3, 0.25) == [(0.32, 1.6)]


def test_asking_for_pyannote_without_it_says_what_is_missing(monkeypatch) -> None:
    monkeypatch.delenv("EMOAPP_PYANNOTE_PIPELINE", raising=False)
    assert isinstance(make_diarizer("auto"), EmbeddedDiarizer)
    with pytest.raises(EmoappError, match="EMOAPP_PYANNOTE_PIPELINE"):
        make_diarizer("pyannote")
    with pytest.raises(EmoappError, match="unknown diarizer"):
        make_diarizer("magic")


# --- two synthetic voices -------------------------------------------------------------------

LINES = [
    ("en-us", "Thank you for calling, how can I help you today?"),
    ("en+f3", "My internet has been down for three days now."),
    ("en-us", "I am sorry to hear that, let me check your account."),
    ("en+f3", "This is the third time I call about it."),
]


def espeak_call(folder: Path, pause_s: float = 0.6) -> tuple[Path, list[tuple[float, float, str]]]:
    """A mono 16 kHz two-voice call from espeak-ng lines, and its truth (start, end, voice)."""
    rate = 16_000
    pieces: list[np.ndarray] = [np.zeros(round(pause_s * rate), np.float32)]
    truth = []
    t = pause_s
    for i, (voice, text) in enumerate(LINES):
        wav = folder / f"line{i}.wav"
        pitch = ["-p", "75"] if "f" in voice else ["-p", "35"]
        subprocess.run(["espeak-ng", "-v", voice, *pitch, "-w", str(wav), text], check=True)
        samples, sr = sf.read(wav, dtype="float32")
        if sr != rate:
            import librosa

            samples = librosa.resample(samples, orig_sr=sr, target_sr=rate)
        loud = np.flatnonzero(np.abs(samples) > 0.01)
        samples = samples[loud[0] : loud[-1] + 1]
        truth.append((round(t, 3), round(t + len(samples) / rate, 3), voice))
        pieces += [samples, np.zeros(round(pause_s * rate), np.float32)]
        t += len(samples) / rate + pause_s
    path = folder / "call.wav"
    sf.write(path, np.concatenate(pieces), rate, subtype="PCM_16")
    return path, truth


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_two_synthetic_voices_are_diarized(tmp_path: Path) -> None:
    pytest.importorskip("pyannote.metrics", reason="pyannote.metrics is in the test extra")
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    from emoapp.calls.analysis import read_mono

    path, truth = espeak_call(tmp_path)
    result = EmbeddedDiarizer().diarize(read_mono(path))
    assert result.speakers == 2
    reference, hypothesis = Annotation(), Annotation()
    for i, (start, end, voice) in enumerate(truth):
        reference[Segment(start, end), i] = voice
    for i, turn in enumerate(result.turns):
        hypothesis[Segment(turn.start, turn.end), i] = turn.speaker
    der = DiarizationErrorRate(collar=0.5)(reference, hypothesis, uem=Segment(0, truth[-1][1]))
    assert der <= 0.15
