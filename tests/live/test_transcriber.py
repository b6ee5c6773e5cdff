"""Speech into the text channel: transcribing a recording for `emoapp analyze`, the live
transcription worker (latest wins, never blocking, forgetting on demand), the live
session feeding heard text to the text encoder, and both commands end to end."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emoapp.cli import main
from emoapp.core.messages import AudioChunk, Modality, ModalityPrediction, TextEntry
from emoapp.encoders.asr import build_recognizer, resolve_recognizer
from emoapp.encoders.heard import EMBEDDED_ASR, HeardSegment
from emoapp.encoders.vad import EnergyVAD
from emoapp.live.transcriber import LiveTranscriber
from emoapp.recorded.timeline import read_timeline
from emoapp.recorded.transcribe import choose_recognizer, transcribe_recording

RATE = 16_000
# speech.wav's sentences (resources/samples/speech.srt): start and end in seconds.
SPEECH = [(0.700, 2.653), (2.953, 4.394), (5.094, 6.821)]
TOLERANCE = 0.25


def inside_speech(t: float) -> bool:
    return any(a - TOLERANCE <= t <= b + TOLERANCE for a, b in SPEECH)


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out")


class FakeRecognizer:
    """Says where each segment starts; can be held back to play a slow recogniser."""

    model_id = "fake/asr"

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.hold = hold
        self.calls: list[float] = []

    def load(self) -> None:
        pass

    def transcribe(self, samples: np.ndarray, sample_rate: int, t: float = 0.0) -> HeardSegment:
        if self.hold is not None:
            self.hold.wait(5)
        self.calls.append(t)
        return HeardSegment(t, t + samples.size / sample_rate, f"words at {t:.1f}", self.model_id)


def utterances(starts: list[float], t0: float = 0.0, length: float = 0.6) -> list[AudioChunk]:
    """0.25 s chunks of a stream with a 0.6 s tone at each start (seconds), then silence."""
    total = max(starts) + length + 1.5
    n = int(total * RATE)
    x = np.zeros(n, dtype=np.float32)
    for s in starts:
        a = int(s * RATE)
        t = np.arange(int(length * RATE)) / RATE
        x[a : a + t.size] = 0.3 * np.sin(2 * np.pi * 200 * t)
    step = RATE // 4
    return [AudioChunk(t0 + i / RATE, x[i : i + step], RATE, "mic") for i in range(0, n, step)]


# --- the worker ----------------------------------------------------------------------------


def test_the_newest_finished_segment_wins_and_older_ones_are_dropped():
    heard: list[TextEntry] = []
    transcriber = LiveTranscriber(FakeRecognizer(), heard.append, EnergyVAD())
    for chunk in utterances([0.5, 2.0, 3.5], t0=100.0):
        transcriber.feed(chunk)  # all waiting before the worker looks
    transcriber.start()
    try:
        wait_for(lambda: heard)
        wait_for(lambda: not transcriber.busy)
    finally:
        assert transcriber.stop()
    assert transcriber.stats.segments == 3 and transcriber.stats.dropped == 2
    (entry,) = heard
    assert entry.source == "heard:fake/asr" and 103.2 <= entry.t <= 103.5
    assert entry.end is not None and entry.end > entry.t


def test_feeding_never_waits_for_a_slow_recogniser_and_the_buffer_is_bounded():
    hold = threading.Event()
    heard: list[TextEntry] = []
    transcriber = LiveTranscriber(FakeRecognizer(hold), heard.append, EnergyVAD(), max_buffer_s=2.0)
    transcriber.start()
    try:
        for chunk in utterances([0.2])[:12]:
            transcriber.feed(chunk)
        wait_for(lambda: transcriber.busy)
        started = time.perf_counter()
        for chunk in utterances([0.5, 1.5, 2.5, 3.5], t0=10.0):
            transcriber.feed(chunk)  # the recogniser is stuck: feeding goes on
        assert time.perf_counter() - started < 1.0
        assert transcriber.buffered <= 9  # 2 s of 0.25 s chunks, plus one
        hold.set()
        wait_for(lambda: heard)
    finally:
        assert transcriber.stop()
    assert transcriber.buffered == 0 and not transcriber.running


def test_switching_transcription_off_forgets_the_audio_held():
    heard: list[TextEntry] = []
    transcriber = LiveTranscriber(FakeRecognizer(), heard.append, EnergyVAD())
    for chunk in utterances([0.5])[:4]:
        transcriber.feed(chunk)
    assert transcriber.buffered == 4
    transcriber.set_enabled(False)
    assert transcriber.buffered == 0 and not transcriber.busy
    transcriber.feed(utterances([0.5])[0])
    assert transcriber.buffered == 0  # off: nothing is taken in


def test_a_recogniser_that_fails_is_reported_and_the_worker_goes_on():
    errors: list[str] = []

    class Broken(FakeRecognizer):
        def transcribe(self, samples, sample_rate, t=0.0):
            raise RuntimeError("decoder exploded")

    transcriber = LiveTranscriber(Broken(), lambda e: None, EnergyVAD(), on_error=errors.append)
    transcriber.start()
    try:
        for chunk in utterances([0.3, 1.6]):
            transcriber.feed(chunk)
        wait_for(lambda: transcriber.stats.failures >= 1)
        assert transcriber.running
    finally:
        transcriber.stop()
    assert "decoder exploded" in errors[0] and "RuntimeError" in transcriber.error


# --- recordings and the commands -----------------------------------------------------------


@pytest.fixture(scope="module")
def sphinx():
    recognizer = build_recognizer(resolve_recognizer(EMBEDDED_ASR))  # type: ignore[arg-type]
    recognizer.load()
    return recognizer


def test_a_recording_is_transcribed_segment_by_segment_inside_its_speech(sphinx, samples: Path):
    heard = transcribe_recording(samples / "speech.wav", sphinx, EnergyVAD())
    assert heard.segments >= 2 and len(heard.entries) >= 2
    for entry in heard.entries:
        assert entry.source == f"heard:{EMBEDDED_ASR}" and entry.text.strip()
        assert inside_speech(entry.t) and entry.end is not None and inside_speech(entry.end)
    assert heard.realtime_factor is not None and heard.realtime_factor > 0


def test_auto_picks_the_profiles_recogniser_or_the_embedded_one(tmp_path: Path):
    assert choose_recognizer("auto", "embedded").spec.model == EMBEDDED_ASR  # type: ignore[union-attr]
    assert choose_recognizer("auto", "cpu").spec.model == "openai/whisper-base.en"  # type: ignore[union-attr]
    fallback = choose_recognizer("auto", "auto", models_dir=str(tmp_path))
    assert fallback.spec is not None and fallback.spec.model == EMBEDDED_ASR
    assert "not downloaded" in fallback.note
    assert choose_recognizer("auto", "auto", str(tmp_path), download=True).spec.model == (  # type: ignore[union-attr]
        "openai/whisper-small"
    )
    assert choose_recognizer("off", "embedded").spec is None


def _text_rows(path: Path) -> list[dict]:
    return [r["modalities"]["text"] for r in read_timeline(path) if r["modalities"]["text"]]


def test_analyze_without_a_transcript_hears_the_speech(tmp_path: Path, samples: Path, capsys):
    out = tmp_path / "heard.jsonl"
    args = ["analyze", str(samples / "speech.wav"), "--profile", "embedded", "--out", str(out)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"with {EMBEDDED_ASR}" in err and "speech segment" in err
    texts = _text_rows(out)
    assert texts and all(inside_speech(t["t"]) for t in texts)
    assert {t["model"] for t in texts} == {"embedded/text-conversation"}

    off = tmp_path / "off.jsonl"
    assert main([*args[:-1], str(off), "--asr", "off", "-q"]) == 0
    assert not _text_rows(off)


def test_a_given_transcript_always_wins(tmp_path: Path, samples: Path, capsys):
    out = tmp_path / "cues.jsonl"
    args = ["analyze", str(samples / "speech.wav"), "--transcript", str(samples / "speech.srt"),
            "--profile", "embedded", "--asr", EMBEDDED_ASR, "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "speech segment" not in capsys.readouterr().err
    assert {round(t["t"], 3) for t in _text_rows(out)} <= {a for a, _ in SPEECH}


def test_an_unknown_recogniser_is_a_one_line_error(samples: Path, capsys):
    assert main(["analyze", str(samples / "speech.wav"), "--asr", "embedded/nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown embedded recogniser" in err and len(err.splitlines()) == 1


def test_live_hears_a_replayed_microphone_without_typed_text(tmp_path: Path, samples: Path):
    out = tmp_path / "live.jsonl"
    code = main([
        "live", "--no-gui", "--mic", str(samples / "speech.wav"), "--profile", "embedded",
        "--replay-speed", "2", "--out", str(out), "--status-every", "0",
    ])  # fmt: skip
    assert code == 0
    texts = _text_rows(out)
    assert texts, "no heard text was fused"
    assert all(t["t_end"] is not None and t["t_end"] >= t["t"] for t in texts)


# --- the session ---------------------------------------------------------------------------


def test_the_session_feeds_heard_text_to_the_text_encoder_and_stops_the_worker(samples: Path):
    from emoapp.capture.replay import AudioReplaySource
    from emoapp.config import ModelOptions, load_encoders
    from emoapp.live.session import LiveSession

    loaded = load_encoders(ModelOptions(profile="embedded"), {Modality.VOICE, Modality.TEXT})
    heard: list[TextEntry] = []
    outputs: list[ModalityPrediction] = []

    class Listener:
        def on_heard(self, entry: TextEntry) -> None:
            heard.append(entry)

        def on_output(self, output) -> None:
            if isinstance(output, ModalityPrediction) and output.modality is Modality.TEXT:
                outputs.append(output)

    transcriber = LiveTranscriber(FakeRecognizer(), lambda e: None, EnergyVAD())
    session = LiveSession(
        {Modality.VOICE: AudioReplaySource(samples / "speech.wav", speed=3.0)},
        loaded.encoders,
        transcriber=transcriber,
    )
    session.add_listener(Listener())
    session.start()
    try:
        wait_for(lambda: session.sources_finished(), timeout=30)
    finally:
        session.stop()
    assert heard and all(e.source == "heard:fake/asr" for e in heard)
    assert outputs and all(o.t_end is not None and o.t_end > o.t for o in outputs)
    assert not transcriber.running and transcriber.buffered == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_transcription_thread_yields_the_cpu_to_face_and_voice():
    import os

    from emoapp.live.transcriber import lower_thread_priority

    seen: list[tuple[int, int, bool]] = []

    def probe() -> None:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        done = lower_thread_priority(5)
        seen.append((before, os.getpriority(os.PRIO_PROCESS, tid), done))

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    ((before, after, done),) = seen
    assert done and after == min(19, before + 5)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the rest of the process is untouched
    assert lower_thread_priority(0) is False
