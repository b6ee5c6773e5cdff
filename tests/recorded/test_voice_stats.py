"""Whole-recording speaker statistics for a voice model that adapts to the speaker
(``AnalysisConfig.voice_stats``, ``emoapp analyze --voice-stats``): the pre-pass computes
each window's features once and the run reuses them; every window is classified with the
statistics of all of the recording's speech; a model that does not adapt is unchanged;
a call's speakers get it by default, each from their own channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from emoapp.cli import main
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.encoders.adaptation import SpeakerStats
from emoapp.encoders.embedded.voice import EmbeddedVoiceEncoder
from emoapp.encoders.factory import build_encoder
from emoapp.encoders.voice import VoiceConfig
from emoapp.recorded.analyze import AnalysisConfig, analyze, recording_adapted_voice
from emoapp.registry import resolve_model

SR = 16_000
MODEL = "embedded/voice-multicorpus"


def vowel(seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    """A voiced, vowel-like sound: harmonics of ``f0`` with a slow pitch wobble."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.2 * wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


class CountingVoice(EmbeddedVoiceEncoder):
    """The shipped embedded voice model, counting the feature vectors it computes."""

    def __init__(self) -> None:
        spec = resolve_model(Modality.VOICE, MODEL)
        assert spec is not None
        super().__init__(spec, VoiceConfig(vad="energy"))
        self.vectors = 0
        self.load()
        self.vectors = 0  # the warm-up at load does not count

    def vector(self, samples_16k: np.ndarray) -> np.ndarray:
        self.vectors += 1
        return super().vector(samples_16k)


@pytest.fixture(scope="module")
def voice() -> CountingVoice:
    return CountingVoice()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 s low voice, 1 s silence, 5 s high voice: one speaker, two manners."""
    path = tmp_path_factory.mktemp("voice") / "speaker.wav"
    audio = np.concatenate([vowel(5.0, 110.0), np.zeros(SR, np.float32), vowel(5.0, 230.0, 1)])
    sf.write(path, audio, SR, subtype="PCM_16")
    return path


def run(path: Path, encoder: Any, **options: Any) -> tuple[list[dict], list[str]]:
    rows: list[dict] = []
    notes: list[str] = []
    analyze(path, {Modality.VOICE: encoder}, None, AnalysisConfig(**options), rows.append,
            on_note=notes.append)  # fmt: skip
    return rows, notes


def voice_probs(rows: list[dict]) -> list[list[float]]:
    return [r["modalities"]["voice"]["probs"] for r in rows if r["modalities"].get("voice")]


def test_features_are_computed_once_and_all_speech_gives_the_statistics(voice, recording):
    voice.vectors = 0
    running_rows, notes = run(recording, voice, voice_stats="running")
    per_run = voice.vectors
    assert per_run >= 10 and not any("whole recording" in n for n in notes)

    voice.vectors = 0
    rows, notes = run(recording, voice, voice_stats="recording")
    assert voice.vectors == per_run  # the pre-pass's features are reused, not recomputed
    assert any("statistics from the whole recording" in n for n in notes)
    assert len(rows) == len(running_rows)
    assert voice_probs(rows) != voice_probs(running_rows)

    # Every window is classified with the statistics of every speech window.
    adapted = recording_adapted_voice(recording, voice, AnalysisConfig())
    outputs = list(adapted._outputs.values())
    speech = [o for o in outputs if isinstance(o, ModalityPrediction)]
    assert len(speech) == per_run
    vectors = [voice.vector(np.asarray(c)) for c in _speech_windows(recording, speech)]
    stats = SpeakerStats.of(np.stack(vectors))
    assert voice.label_map is not None
    for output, v in zip(speech, vectors, strict=True):
        expected = voice.label_map.apply(voice.classify(v[None, :], stats)[0])
        np.testing.assert_allclose(output.probs, expected, atol=1e-6)
    assert voice.current_stats() is None  # the live state is left alone


def _speech_windows(path: Path, outputs: list[ModalityPrediction]) -> list[np.ndarray]:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == SR
    return [audio[round(o.t * SR) : round(o.t * SR) + 2 * SR] for o in outputs]


def test_a_voice_model_that_does_not_adapt_is_unchanged(recording):
    spec = resolve_model(Modality.VOICE, "baseline/voice-prosody")
    assert spec is not None
    baseline = build_encoder(spec)
    baseline.load()
    assert not getattr(baseline, "adaptive", False)
    running, _ = run(recording, baseline, voice_stats="running")
    whole, notes = run(recording, baseline, voice_stats="recording")
    assert voice_probs(whole) == voice_probs(running) and voice_probs(whole)
    assert not any("whole recording" in n for n in notes)


def test_a_diarized_speakers_statistics_come_from_their_turns_only(voice, recording):
    voice.vectors = 0
    run(recording, voice, voice_stats="running", voice_spans=((0.0, 5.0),))
    turns_only = voice.vectors
    voice.vectors = 0
    run(recording, voice, voice_stats="recording", voice_spans=((0.0, 5.0),))
    assert voice.vectors == turns_only
    adapted = recording_adapted_voice(recording, voice, AnalysisConfig(voice_spans=((0.0, 5.0),)))
    speech = [o for o in adapted._outputs.values() if isinstance(o, ModalityPrediction)]
    assert speech and max(o.t for o in speech) < 5.0  # the other turns are silenced


def test_a_calls_speakers_each_get_their_own_recording_statistics(tmp_path: Path, capsys):
    left = np.concatenate([vowel(4.0, 110.0), np.zeros(4 * SR, np.float32)])
    right = np.concatenate([np.zeros(4 * SR, np.float32), vowel(4.0, 230.0, 2)])
    call = tmp_path / "call.wav"
    sf.write(call, np.stack([left, right], axis=1), SR, subtype="PCM_16")
    base = ["analyze", str(call), "--speakers", "channels", "--profile", "baseline",
            "--voice-model", MODEL, "--vad", "energy", "--asr", "off"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a.jsonl")]) == 0
    err = capsys.readouterr().err
    assert err.count("statistics from the whole recording") == 2, err
    assert main([*base, "--voice-stats", "running", "--out", str(tmp_path / "b.jsonl")]) == 0
    assert "whole recording" not in capsys.readouterr().err
    assert (tmp_path / "a.jsonl").read_text() != (tmp_path / "b.jsonl").read_text()


def test_one_recording_keeps_the_running_estimate_unless_asked(
    recording: Path, tmp_path: Path, capsys
):
    """``emoapp analyze`` of one recording: running by default; ``--voice-stats
    recording`` is said, written in the header, resumes to the same rows, and a resume
    with the other setting is refused."""
    import json

    base = ["analyze", str(recording), "--profile", "baseline", "--voice-model", MODEL,
            "--vad", "energy"]  # fmt: skip
    default, whole = tmp_path / "default.jsonl", tmp_path / "whole.jsonl"
    assert main([*base, "--out", str(default)]) == 0
    assert "whole recording" not in capsys.readouterr().err
    header = json.loads(default.read_text().splitlines()[0])["header"]
    assert "voice_stats" not in header["options"]  # auto: as before this option existed

    assert main([*base, "--voice-stats", "recording", "--out", str(whole)]) == 0
    assert "statistics from the whole recording" in capsys.readouterr().err
    lines = whole.read_text().splitlines()
    assert json.loads(lines[0])["header"]["options"]["voice_stats"] == "recording"
    assert lines[1:] != default.read_text().splitlines()[1:]

    whole.write_text("\n".join(lines[:8]) + "\n")  # interrupted after 7 rows
    assert main([*base, "--voice-stats", "recording", "--out", str(whole), "--resume"]) == 0
    assert whole.read_text().splitlines() == lines  # the same rows as one run
    capsys.readouterr()
    assert main([*base, "--voice-stats", "running", "--out", str(whole), "--resume"]) == 2
    assert "options.voice_stats" in capsys.readouterr().err
