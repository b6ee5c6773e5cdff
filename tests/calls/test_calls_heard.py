"""Calls as they are recorded: `--speakers auto|channels|N`, words from the recogniser
per speaker (only written with --include-text), the moments to listen to, the report's
audio player, and `emoapp batch --report` with its index page (rendered in headless
Chromium when it is installed).

The recordings are made on the spot with espeak-ng (two voices) and kept short: the
embedded recogniser (PocketSphinx) runs at about real time on a shared CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoapp.calls.analysis import channels_differ, parse_speakers
from emoapp.cli import main
from emoapp.core.errors import EmoappError
from emoapp.reports.call_report import customer_of, moments

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
RATE = 16_000
AGENT = ("en-us", "-p", "35", "Thank you for calling. How can I help?")
CUSTOMER = ("en+f3", "-p", "75", "My internet is down again.")


def _say(folder: Path, voice: str, pitch: list[str], text: str) -> np.ndarray:
    wav = folder / f"{abs(hash((voice, text)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, *pitch, "-w", str(wav), text], check=True)
    samples, sr = sf.read(wav, dtype="float32")
    if sr != RATE:
        import librosa

        samples = librosa.resample(samples, orig_sr=sr, target_sr=RATE)
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    return samples[loud[0] : loud[-1] + 1]


def _gap(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), np.float32)


@pytest.fixture(scope="module")
def lines(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    folder = tmp_path_factory.mktemp("voices")
    agent = _say(folder, AGENT[0], [AGENT[1], AGENT[2]], AGENT[3])
    customer = _say(folder, CUSTOMER[0], [CUSTOMER[1], CUSTOMER[2]], CUSTOMER[3])
    return agent, customer


MONO_TURNS: list[tuple[float, float, str]] = []


@pytest.fixture(scope="module")
def mono_call(lines, tmp_path_factory) -> Path:
    """agent, customer, agent, customer on one channel, 0.6 s apart (their spans go to
    MONO_TURNS)."""
    agent, customer = lines
    path = tmp_path_factory.mktemp("mono") / "mono.wav"
    parts, t = [_gap(0.5)], 0.5
    MONO_TURNS.clear()
    for who, line in (("agent", agent), ("customer", customer)) * 2:
        MONO_TURNS.append((t, t + len(line) / RATE, who))
        parts += [line, _gap(0.6)]
        t += len(line) / RATE + 0.6
    sf.write(path, np.concatenate(parts), RATE, subtype="PCM_16")
    return path


def _turn_at(t: float) -> str | None:
    return next((who for start, end, who in MONO_TURNS if start - 0.3 <= t <= end), None)


@pytest.fixture(scope="module")
def stereo_call(lines, tmp_path_factory) -> Path:
    """The agent on the left, then the customer on the right."""
    agent, customer = lines
    n = len(agent) + len(customer) + RATE * 2
    left, right = np.zeros(n, np.float32), np.zeros(n, np.float32)
    left[RATE // 2 : RATE // 2 + len(agent)] = agent
    start = RATE // 2 + len(agent) + RATE
    right[start : start + len(customer)] = customer
    path = tmp_path_factory.mktemp("stereo") / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), RATE, subtype="PCM_16")
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- small pieces ---------------------------------------------------------------------------


def test_speakers_option_values() -> None:
    assert parse_speakers(None) is None
    assert parse_speakers(" Auto ") == "auto"
    assert parse_speakers("channels") == "channels"
    assert parse_speakers("02") == "2"
    for bad in ("0", "9", "two", "-1"):
        with pytest.raises(EmoappError, match="--speakers"):
            parse_speakers(bad)


def test_channels_that_carry_one_mix_are_not_two_speakers() -> None:
    rng = np.random.default_rng(0)
    speech = rng.uniform(-40, -10, 500)
    assert not channels_differ([speech, speech + 0.5])  # the same mix, a touch louder
    quiet = np.full(500, -90.0)
    left = np.where(np.arange(500) < 250, speech, quiet)
    right = np.where(np.arange(500) >= 250, speech, quiet)
    assert channels_differ([left, right])
    assert not channels_differ([speech])


def _summary(utterances: dict, speakers: list[str], drops: dict | None = None) -> dict:
    return {
        "duration_s": 60.0,
        "speakers": [
            {"name": name, "valence_drops": (drops or {}).get(name, [])} for name in speakers
        ],
        "utterances": utterances,
        "customer": customer_of(speakers),
    }


def _utt(t: float, label: str, p: float) -> dict:
    return {"t": t, "end": t + 2, "label": label, "probs": {label: p}, "confidence": p}


def test_moments_watch_the_customer_for_anger_and_distress() -> None:
    utterances = {
        "agent": [_utt(1.0, "angry", 0.9)],
        "Customer": [_utt(5.0, "angry", 0.8), _utt(9.0, "sad", 0.5), _utt(12.0, "sad", 0.3)],
    }
    found = moments(_summary(utterances, ["agent", "Customer"]), [(20.0, 21.5), (30.0, 30.4)])
    kinds = [(m["t"], m["kind"], m["speaker"]) for m in found]
    assert kinds == [
        (5.0, "anger", "Customer"),
        (9.0, "distress", "Customer"),
        (20.0, "overlap", None),  # 1.5 s; the 0.4 s one is too short
    ]
    # With no side named the customer, everyone is watched.
    everyone = moments(_summary(utterances, ["agent", "other"]), [])
    assert [m["speaker"] for m in everyone] == ["agent"]


def test_long_silences_are_moments() -> None:
    class Speaker:
        def __init__(self, segments):
            self.segments = segments

    found = moments(
        _summary({}, ["a", "b"]), [], [Speaker([(0.0, 2.0), (9.0, 10.0)]), Speaker([(2.5, 3.0)])]
    )
    assert [(m["kind"], m["t"], m["end"]) for m in found] == [("silence", 3.0, 9.0)]


# --- whole runs -----------------------------------------------------------------------------


@pytest.mark.slow
@needs_espeak
def test_a_mono_call_is_diarized_heard_and_reported(mono_call: Path, tmp_path: Path, capsys):
    out, report = tmp_path / "rows.jsonl", tmp_path / "report"
    code = main([
        "analyze", str(mono_call), "--speakers", "auto", "--by", "utterance",
        "--speaker-names", "agent,customer", "--include-text", "--embed-audio",
        "--profile", "baseline", "--vad", "energy", "--out", str(out), "--report", str(report),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "who spoke when is found by diarization" in err
    assert "heard" in err and "embedded/asr-pocketsphinx" in err
    rows = _rows(out)
    assert {r["speaker"] for r in rows} == {"agent", "customer"}
    for row in rows:  # every utterance lies in a turn of the speaker it was given to
        assert _turn_at(row["t"]) == row["speaker"], (row["t"], row["speaker"], MONO_TURNS)
    assert all(r["fused"] and r["modalities"]["voice"] for r in rows)
    assert sum(bool(r["words"]) for r in rows) >= 3  # the recogniser heard most turns
    assert any(r["modalities"]["text"] for r in rows)  # and the words were classified
    summary = json.loads((report / "summary.json").read_text())
    assert summary["speakers_by"] == "diarization" and summary["text_from"] == "speech recognition"
    assert summary["words_included"] and summary["customer"] == "customer"
    page = (report / "report.html").read_text()
    assert "<audio id='call-audio'" in page and "data:audio/" in page
    assert "class='play'" in page and "<script>" in page
    assert "the words said (from speech recognition)" in page
    assert "speech recognition does not run" not in page


@pytest.mark.slow
@needs_espeak
def test_words_stay_out_without_include_text(mono_call: Path, tmp_path: Path, capsys):
    out, report = tmp_path / "rows.jsonl", tmp_path / "report"
    code = main([
        "analyze", str(mono_call), "--speakers", "2", "--by", "utterance", "--profile",
        "baseline", "--vad", "energy", "--out", str(out), "--report", str(report), "-q",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = _rows(out)
    assert {r["speaker"] for r in rows} == {"speaker 1", "speaker 2"}
    assert all("words" not in r for r in rows)
    assert any(r["modalities"]["text"] for r in rows)  # heard and classified all the same
    summary = json.loads((report / "summary.json").read_text())
    assert not summary["words_included"]
    assert all("words" not in u for us in summary["utterances"].values() for u in us)
    page = (report / "report.html").read_text()
    assert "no words: text from speech recognition" in page and "no audio" in page
    assert "<script" not in page and "<audio" not in page
    for word in ("internet", "calling"):
        assert word not in page.lower() and word not in out.read_text().lower()


@pytest.mark.slow
@needs_espeak
def test_a_stereo_call_gets_words_per_channel(stereo_call: Path, tmp_path: Path, capsys):
    out = tmp_path / "rows.jsonl"
    code = main([
        "analyze", str(stereo_call), "--speakers", "auto", "--by", "utterance",
        "--include-text", "--profile", "baseline", "--vad", "energy", "--out", str(out),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "2 channels that differ: one speaker each" in err
    rows = _rows(out)
    assert {r["speaker"] for r in rows} == {"speaker 1", "speaker 2"}
    for name in ("speaker 1", "speaker 2"):
        mine = [r for r in rows if r["speaker"] == name]
        assert all(r["fused"] is not None and r["modalities"]["voice"] for r in mine)
        assert " ".join(r["words"] for r in mine).strip()  # each channel heard on its own
        assert any(r["modalities"]["text"] for r in mine)


@pytest.mark.slow
@needs_espeak
def test_batch_reports_and_an_index_page(
    mono_call: Path, stereo_call: Path, tmp_path: Path, capsys
):
    calls = tmp_path / "calls"
    calls.mkdir()
    shutil.copy(mono_call, calls / "first.wav")
    shutil.copy(stereo_call, calls / "second.wav")
    out = tmp_path / "out"
    code = main([
        "batch", str(calls), "--out", str(out), "--speakers", "auto", "--report",
        "--asr", "off", "--profile", "baseline", "--vad", "energy", "--workers", "1", "-q",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    for name in ("first", "second"):
        assert (out / "reports" / name / "report.html").is_file()
        rows = _rows(out / "timelines" / f"{name}.jsonl")
        assert {r["speaker"] for r in rows} == {"speaker 1", "speaker 2"}
    page = (out / "index.html").read_text()
    assert "href='reports/first/report.html'" in page
    assert "href='reports/second/report.html'" in page
    assert "This page holds:" in page and "no words" in page and "no audio" in page
    assert page.count("class='sortable'") >= 3
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed: the index page was not rendered")
    shot = tmp_path / "index.png"
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1200,600", f"--screenshot={shot}", (out / "index.html").as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape[:2] == (600, 1200)
    # The label bars are drawn: the neutral grey of LABEL_COLORS fills part of the page.
    grey = np.all(np.abs(image - [0x9E, 0x9E, 0x9E]) <= 3, axis=2)
    assert grey.sum() > 500
