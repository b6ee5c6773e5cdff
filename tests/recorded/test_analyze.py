"""Headless analysis end to end: ``emoapp analyze`` over the sample media with tiny models.

The tiny models are random, so the tests check structure and the fusion rules (the fused
distribution is what :func:`emoapp.core.fusion.combine` makes of the modality entries
and their weights), not which emotion comes out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emoapp.capture.media import TruncatedMediaError
from emoapp.cli import main
from emoapp.core.fusion import FusionConfig, certainty, combine, expand
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.recorded.analyze import (
    NO_AUDIO_NOTE,
    NO_VIDEO_NOTE,
    AnalysisConfig,
    analyze,
)
from emoapp.recorded.timeline import read_timeline

REPO = Path(__file__).resolve().parents[2]


def _models(tiny_models: dict[str, Path]) -> list[str]:
    return [
        "--face-model",
        str(tiny_models["face"]),
        "--voice-model",
        str(tiny_models["voice"]),
        "--text-model",
        str(tiny_models["text"]),
    ]


def _prediction_from_entry(modality: Modality, entry: dict) -> ModalityPrediction:
    mask = np.array([label in entry["probs"] for label in CANONICAL_LABELS])
    probs = np.array([entry["probs"].get(label, 0.0) for label in CANONICAL_LABELS])
    return ModalityPrediction(
        modality,
        entry["t"],
        probs,
        mask,
        entry["confidence"],
        entry["model"],
        t_end=entry.get("t_end"),
    )


def assert_follows_fusion(row: dict, config: FusionConfig | None = None) -> None:
    """The row's fused estimate is the masked weighted combination of its modality entries,
    each weighted by prior x certainty ** power x age decay."""
    config = config or FusionConfig()
    predictions: dict[Modality, ModalityPrediction] = {}
    weights: dict[Modality, float] = {}
    for name, entry in row["modalities"].items():
        if entry is None:
            continue
        modality = Modality(name)
        predictions[modality] = _prediction_from_entry(modality, entry)
        age = row["t"] - entry.get("t_end", entry["t"])
        assert age >= -1e-9, f"a {name} output from the future at t={row['t']}"
        if config.certainty == "confidence":
            sure = entry["confidence"]
        else:  # 1 - H/log 7 of the posterior it was pooled as
            sure = float(certainty(np.array([entry["posterior"][c] for c in CANONICAL_LABELS])))
        decayed = config.reliability[modality] * 0.5 ** (age / config.half_life[modality])
        expected_weight = decayed * sure**config.confidence_power
        assert entry["weight"] == pytest.approx(expected_weight, rel=1e-3, abs=1e-5)
        weights[modality] = entry["weight"]
    fused = row["fused"]
    if not predictions:
        assert fused is None and row["abstained"]
        return
    assert list(fused["probs"]) == list(CANONICAL_LABELS)
    got = np.array([fused["probs"][label] for label in CANONICAL_LABELS])
    assert got.sum() == pytest.approx(1.0, abs=1e-5)
    expected = combine(predictions, weights, config.rule)
    np.testing.assert_allclose(got, expected, atol=2e-4)
    assert fused["label"] == CANONICAL_LABELS[int(np.argmax(got))]
    shares = sum(row["modalities"][m.value]["contribution"] for m in predictions)
    assert shares == pytest.approx(1.0, abs=1e-5)
    if len(predictions) == 1:  # one modality alone: its own (full) posterior
        (only,) = predictions.values()
        np.testing.assert_allclose(got, expand(only), atol=2e-5)


# --- the sample video, all three modalities ---------------------------------------------


@pytest.fixture(scope="module")
def full_run(tiny_models, samples, tmp_path_factory) -> tuple[list[dict], str]:
    """face_speech.mp4 + speech.srt with the tiny models, through the real CLI entry."""
    out = tmp_path_factory.mktemp("analyze") / "timeline.jsonl"
    argv = [
        "analyze",
        str(samples / "face_speech.mp4"),
        "--transcript",
        str(samples / "speech.srt"),
        "--out",
        str(out),
        *_models(tiny_models),
    ]
    import contextlib
    import io

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(argv) == 0
    return read_timeline(out), stderr.getvalue()


def test_sample_video_rows_carry_all_modalities(full_run) -> None:
    rows, _ = full_run
    assert [row["t"] for row in rows] == pytest.approx([i * 0.5 for i in range(15)])
    for name in ("face", "voice", "text"):
        assert any(row["modalities"][name] for row in rows), f"no {name} in any row"
    # The face is in every frame; the first transcript cue starts at 0.7 s.
    assert all(row["modalities"]["face"] for row in rows)
    assert rows[1]["modalities"]["text"] is None and rows[2]["modalities"]["text"]
    assert any(all(row["modalities"].values()) for row in rows)
    face = rows[0]["modalities"]["face"]
    assert face["faces"] and len(face["faces"][0]["box"]) == 4
    assert face["model"].endswith("face") and face["baseline"] is False
    voice = next(row["modalities"]["voice"] for row in rows if row["modalities"]["voice"])
    assert set(voice["probs"]) == {"neutral", "happy", "sad", "angry"}  # the 4-class model
    assert voice["speech"] is None or 0 <= voice["speech"] <= 1


def test_sample_video_rows_follow_the_fusion_rules(full_run) -> None:
    rows, _ = full_run
    for row in rows:
        assert_follows_fusion(row)
    # Outputs are used only once available: a voice window when it has ended (2 s).
    for row in rows:
        voice = row["modalities"]["voice"]
        if voice is not None:
            assert voice["t"] + 2.0 <= row["t"] + 1e-6
    assert rows[3]["modalities"]["voice"] is None  # t = 1.5: no window has ended yet


def test_sample_video_summary_on_stderr(full_run) -> None:
    _, stderr = full_run
    assert "analysed face_speech.mp4" in stderr
    assert "15 rows" in stderr
    for name in ("face", "voice", "text"):
        assert f"\n{name} " in stderr
    assert "fused labels:" in stderr
    assert "Traceback" not in stderr


# --- odd but valid input ----------------------------------------------------------------


def test_video_without_audio_via_subprocess(tiny_models, samples, tmp_path) -> None:
    out = tmp_path / "faces.jsonl"
    models = _models(tiny_models)
    models[3] = str(tmp_path / "no-such-voice-model")  # would fail if it were loaded
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "emoapp", "analyze", str(samples / "face_only.mp4"),
         "--out", str(out), *models],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no audio track; analysing faces only" in result.stderr
    rows = read_timeline(out)
    assert len(rows) == 6  # 2.5 s at 0.5 s steps
    for row in rows:
        assert row["modalities"]["voice"] is None and row["modalities"]["text"] is None
        assert row["modalities"]["face"] is not None
        assert row["notes"]["voice"] == NO_AUDIO_NOTE
        assert_follows_fusion(row)


def test_audio_file_gives_voice_only_as_csv(tiny_models, samples, tmp_path, capfd) -> None:
    out = tmp_path / "voice.csv"
    models = _models(tiny_models)
    models[1] = str(tmp_path / "no-such-face-model")  # a wav must not load the face model
    # --asr off: with it on, the speech would be transcribed into text.
    code = main(
        ["analyze", str(samples / "speech.wav"), "--out", str(out), "--vad", "energy", "-q",
         "--asr", "off", *models]
    )  # fmt: skip
    assert code == 0, capfd.readouterr().err
    import csv

    with out.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 15
    assert all(r["face_label"] == "" and r["text_label"] == "" for r in rows)
    assert all(f"face: {NO_VIDEO_NOTE}" in r["notes"] for r in rows)
    voiced = [r for r in rows if r["voice_label"]]
    assert voiced, "no voice prediction in a file full of speech"
    for r in voiced:
        fused = [float(r[f"fused_{label}"]) for label in CANONICAL_LABELS]
        assert sum(fused) == pytest.approx(1.0, abs=1e-5)
        assert r["fused_label"] == r["voice_label"]
        assert r["voice_fearful"] == ""  # outside the 4-class model's mask
        assert float(r["voice_contribution"]) == pytest.approx(1.0)
    assert rows[0]["abstained"]  # nothing is known at t = 0


def test_text_alone_prints_one_row(tiny_models, capfd) -> None:
    code = main(["analyze", "--text", "I am happy", "--text-model", str(tiny_models["text"])])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["t"] == 0.0
    assert row["modalities"]["face"] is None and row["modalities"]["voice"] is None
    text = row["modalities"]["text"]
    assert row["fused"]["probs"] == pytest.approx(text["posterior"], abs=1e-6)
    assert row["fused"]["label"] == text["label"]
    assert_follows_fusion(row)


# --- the API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoders(tiny_models):
    from emoapp.encoders.base import EncoderConfig
    from emoapp.encoders.face import FaceEncoder
    from emoapp.encoders.text import TextEncoder
    from emoapp.encoders.voice import VoiceConfig, VoiceEncoder

    built = {
        Modality.FACE: FaceEncoder(EncoderConfig(model=str(tiny_models["face"]))),
        Modality.VOICE: VoiceEncoder(
            EncoderConfig(model=str(tiny_models["voice"])), VoiceConfig(vad="energy")
        ),
        Modality.TEXT: TextEncoder(EncoderConfig(model=str(tiny_models["text"]))),
    }
    for encoder in built.values():
        encoder.load()
    return built


def test_analyze_api_summary_and_product_rule(encoders, samples) -> None:
    rows: list[dict] = []
    progress: list[tuple[float, float | None]] = []
    notes: list[str] = []
    fusion = FusionConfig(rule="product")
    summary = analyze(
        samples / "face_speech.mp4",
        encoders,
        fusion,
        AnalysisConfig(step_s=1.0, face_fps=1.0, transcript=samples / "speech.vtt"),
        on_row=rows.append,
        progress=lambda t, end: progress.append((t, end)),
        on_note=notes.append,
    )
    assert summary.rows == len(rows) == 8  # t = 0..7
    assert [t for t, _ in progress] == [row["t"] for row in rows]
    assert summary.truncated is None and notes == []
    assert summary.counts[Modality.FACE].predictions == 8  # one frame per second
    assert summary.counts[Modality.TEXT].predictions == 3
    voice = summary.counts[Modality.VOICE]
    assert voice.predictions + voice.no_predictions == 11  # (7.36 - 2) / 0.5 + 1 windows
    assert sum(summary.labels.values()) == summary.rows
    assert summary.end_t == pytest.approx(7.36, abs=0.01)
    assert summary.realtime_factor and summary.realtime_factor > 0
    for row in rows:
        assert row["fused"] is None or row["fused"]["rule"] == "product"
        assert_follows_fusion(row, fusion)
    table = summary.format_table()
    assert "face_speech.mp4" in table and "voice" in table


def test_audio_shorter_than_a_window_is_classified_once(encoders, tmp_path) -> None:
    import soundfile

    t = np.arange(16000) / 16000
    path = tmp_path / "short.wav"
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    rows: list[dict] = []
    summary = analyze(path, encoders, config=AnalysisConfig(), on_row=rows.append)
    voice = summary.counts[Modality.VOICE]
    assert voice.predictions + voice.no_predictions == 1
    assert [row["t"] for row in rows] == [0.0, 0.5, 1.0]


def test_truncated_file_keeps_the_rows_before_the_cut(encoders, samples, tmp_path) -> None:
    import av

    whole = tmp_path / "faststart.mp4"
    with (
        av.open(str(samples / "face_speech.mp4")) as inp,
        av.open(str(whole), "w", format="mp4", options={"movflags": "faststart"}) as out,
    ):
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])

    rows: list[dict] = []
    summary = analyze(cut, {Modality.FACE: encoders[Modality.FACE]}, on_row=rows.append)
    assert isinstance(summary.truncated, TruncatedMediaError)
    assert 1.0 < summary.truncated.decoded_until < 6.0
    assert rows and rows[-1]["t"] <= summary.truncated.decoded_until + 0.5
    assert all(row["modalities"]["face"] for row in rows)

    out = tmp_path / "cut.jsonl"
    code = main(
        ["analyze", str(cut), "--out", str(out), "-q", "--voice-model", "none",
         "--face-model", encoders[Modality.FACE].model_id]
    )  # fmt: skip
    assert code == 2
    assert len(read_timeline(out)) == len(rows)


# --- broken input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["missing", "empty", "truncated", "text-as-mp4", "unknown-model", "wrong-task", "no-input"],
)
def test_bad_input_exits_2_with_one_line(case, tiny_models, samples, tmp_path, capfd) -> None:
    media = samples / "face_only.mp4"
    models = ["--face-model", str(tiny_models["face"])]
    expected = ""
    if case == "missing":
        media, expected = tmp_path / "missing.mp4", "no such file"
    elif case == "empty":
        media, expected = tmp_path / "empty.mp4", "file is empty"
        media.write_bytes(b"")
    elif case == "truncated":
        data = (samples / "face_speech.mp4").read_bytes()
        media, expected = tmp_path / "half.mp4", "truncated or corrupt"
        media.write_bytes(data[: len(data) // 2])
    elif case == "text-as-mp4":
        media, expected = tmp_path / "notes.mp4", "not a readable media file"
        media.write_text("meeting notes, not a video\n")
    elif case == "unknown-model":
        models, expected = ["--face-model", "nobody/no-such-model"], "no-such-model"
    elif case == "wrong-task":
        models, expected = ["--face-model", str(tiny_models["text"])], "face model"
    out = tmp_path / "out.jsonl"
    argv = ["analyze", "--out", str(out), *models]
    if case != "no-input":
        argv.insert(1, str(media))
    else:
        expected = "analyze needs MEDIA"
    assert main(argv) == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("emoapp: error: ") and expected in lines[0]
    assert "Traceback" not in err
    assert not out.exists()  # nothing written, nothing clobbered


def test_transcript_alone_with_a_fallback_encoding(tiny_models, tmp_path, capfd) -> None:
    transcript = tmp_path / "windows.srt"
    transcript.write_bytes(
        "1\n00:00:00,500 --> 00:00:01,500\nÇa va très bien\n\n"
        "2\n00:00:02,000 --> 00:00:01,000\nbackwards\n".encode("cp1252")
    )
    out = tmp_path / "text.jsonl"
    code = main(
        ["analyze", "--transcript", str(transcript), "--out", str(out),
         "--text-model", str(tiny_models["text"])]
    )  # fmt: skip
    err = capfd.readouterr().err
    assert code == 0, err
    assert "not valid UTF-8" in err and "cp1252" in err
    assert "ends (1.000 s) before it starts (2.000 s)" in err
    rows = read_timeline(out)
    assert [row["t"] for row in rows] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert rows[0]["fused"] is None and rows[1]["modalities"]["text"]["t"] == 0.5
    assert rows[4]["modalities"]["text"]["t"] == 2.0
    for row in rows:
        assert_follows_fusion(row)


def test_out_may_not_overwrite_an_input(samples, tmp_path, capfd) -> None:
    media = tmp_path / "speech.wav"
    media.write_bytes((samples / "speech.wav").read_bytes())
    assert main(["analyze", str(media), "--out", str(media)]) == 2
    assert "is an input file" in capfd.readouterr().err
    assert media.read_bytes() == (samples / "speech.wav").read_bytes()


def test_bundled_sample_on_the_baseline_profile_fuses_to_what_the_strong_face_says(
    samples, tmp_path
) -> None:
    """Issue 12's case: at t=7.0 the smile detector says happy with most of the weight and
    the lexicon says fearful; the fused label must be happy (it was fearful before the
    smile detector's "no smile" was read as six labels, not as neutral)."""
    import contextlib
    import io

    out = tmp_path / "timeline.jsonl"
    argv = [
        "analyze",
        str(samples / "face_speech.mp4"),
        "--transcript",
        str(samples / "speech.srt"),
        "--profile",
        "baseline",
        "--out",
        str(out),
    ]
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    rows = {row["t"]: row for row in read_timeline(out)}
    row = rows[7.0]
    assert row["modalities"]["face"]["label"] == "happy"
    assert row["modalities"]["text"]["label"] == "fearful"
    assert row["fused"]["label"] == "happy"
    # Fearful is never fused above what the only model that says it gave it.
    assert row["fused"]["probs"]["fearful"] <= row["modalities"]["text"]["probs"]["fearful"]
