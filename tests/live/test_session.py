"""The live session: replayed camera and microphone through tiny models, and the faults
it must survive (a slow or hung encoder, an encoder that raises, a source that fails and
comes back, a model that does not load), stopping modalities, and shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emoapp.capture.base import ItemCallback, ThreadedSource
from emoapp.capture.replay import AudioReplaySource, VideoReplaySource
from emoapp.core import clock
from emoapp.core.errors import ModelLoadError, SourceError
from emoapp.core.messages import (
    EncoderOutput,
    FusedEstimate,
    Modality,
    ModalityPrediction,
    TextEntry,
    VideoFrame,
)
from emoapp.core.taxonomy import CANONICAL_LABELS, NUM_LABELS
from emoapp.encoders.base import EncoderConfig, EncoderInfo
from emoapp.live.session import LiveSession, ModalityStatus

FACE, VOICE, TEXT = Modality.FACE, Modality.VOICE, Modality.TEXT


# --- helpers ------------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")


class Probe:
    """A listener that records everything the session says, with arrival times."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.estimates: list[FusedEstimate] = []
        self.outputs: list[tuple[float, EncoderOutput]] = []
        self.statuses: list[ModalityStatus] = []
        self.frames: list[float] = []
        self.levels: list[tuple[float, float, bool | None]] = []

    def on_estimate(self, estimate: FusedEstimate) -> None:
        with self.lock:
            self.estimates.append(estimate)

    def on_output(self, output: EncoderOutput) -> None:
        with self.lock:
            self.outputs.append((clock.now(), output))

    def on_status(self, status: ModalityStatus) -> None:
        with self.lock:
            self.statuses.append(status)

    def on_frame(self, frame: VideoFrame) -> None:
        with self.lock:
            self.frames.append(clock.now())

    def on_audio_level(self, t: float, rms_dbfs: float, speech: bool | None) -> None:
        with self.lock:
            self.levels.append((t, rms_dbfs, speech))

    def predictions(self, m: Modality, since: float = float("-inf")) -> list[ModalityPrediction]:
        with self.lock:
            return [
                o
                for at, o in self.outputs
                if at >= since and o.modality is m and isinstance(o, ModalityPrediction)
            ]

    def states(self, m: Modality) -> list[tuple[str, str]]:
        with self.lock:
            return [(s.state, s.message) for s in self.statuses if s.modality is m]

    def has_state(self, m: Modality, state: str, contains: str = "") -> bool:
        return any(st == state and contains in msg for st, msg in self.states(m))


class FakeEncoder:
    """An encoder with no model: one fixed distribution, optionally slow, failing or
    hanging (on an event) on demand."""

    def __init__(self, modality: Modality, label: str = "happy", delay: float = 0.0) -> None:
        self.modality = modality
        self.model_id = f"fake-{modality.value}"
        self.baseline = False
        self.device = "cpu"
        self.delay = delay
        self.fail: BaseException | None = None
        self.hang: threading.Event | None = None
        self.fell_back_to_cpu: str | None = None
        self.calls = 0
        probs = np.full(NUM_LABELS, 0.3 / (NUM_LABELS - 1))
        probs[CANONICAL_LABELS.index(label)] = 0.7
        self.probs = probs

    def load(self) -> None:
        pass

    def encode(self, items: Sequence[Any]) -> list[EncoderOutput]:
        self.calls += 1
        if self.hang is not None:
            self.hang.wait()
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        mask = np.ones(NUM_LABELS, dtype=bool)
        return [
            ModalityPrediction(self.modality, item.t, self.probs, mask, 0.7, self.model_id)
            for item in items
        ]

    def info(self) -> EncoderInfo:
        return EncoderInfo(self.modality, self.model_id, self.device, "float32", False)


class SlowEncoder:
    """Wraps a real encoder and sleeps before each call: an encoder that cannot keep up."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.modality = inner.modality
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def baseline(self) -> bool:
        return self.inner.baseline

    def load(self) -> None:
        self.inner.load()

    def encode(self, items: Sequence[Any]) -> list[EncoderOutput]:
        self.calls += 1
        time.sleep(self.delay)
        return self.inner.encode(items)

    def info(self) -> EncoderInfo:
        return self.inner.info()


class SyntheticCamera(ThreadedSource):
    """A camera made of numbers: small frames at ``fps``. It can refuse to open
    ``fail_opens`` times, and lose the device once after ``fail_after`` frames."""

    modality = FACE
    is_device = True

    def __init__(self, fps: float = 30.0, fail_opens: int = 0, fail_after: int | None = None):
        super().__init__()
        self.name = "synthetic camera"
        self.fps = fps
        self.fail_opens = fail_opens
        self.fail_after = fail_after
        self.opens = 0
        self.open_attempts = 0
        self.released = 0
        self.delivered = 0

    def open(self) -> None:
        self.open_attempts += 1
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceError("camera unplugged (test)")
        self.opens += 1
        self._mark_open()

    def run(self, stop: threading.Event, emit: ItemCallback) -> str:
        while not stop.wait(1.0 / self.fps):
            if self.fail_after is not None and self.delivered >= self.fail_after:
                self.fail_after = None
                raise SourceError("camera lost mid-stream (test)")
            self.delivered += 1
            emit(VideoFrame(clock.now(), np.zeros((8, 8, 3), np.uint8), self.delivered))
        return ""

    def release(self) -> None:
        self.released += 1


@pytest.fixture(scope="module")
def tiny_encoders(tiny_models: dict[str, Path]) -> dict[Modality, Any]:
    """The real encoders over the tiny models, loaded once (outside the thread check)."""
    from emoapp.encoders.face import FaceEncoder
    from emoapp.encoders.text import TextEncoder
    from emoapp.encoders.voice import VoiceConfig, VoiceEncoder

    encoders = {
        FACE: FaceEncoder(EncoderConfig(str(tiny_models["face"]))),
        VOICE: VoiceEncoder(
            EncoderConfig(str(tiny_models["voice"])), VoiceConfig(vad="energy", min_speech_s=0.1)
        ),
        TEXT: TextEncoder(EncoderConfig(str(tiny_models["text"]))),
    }
    for encoder in encoders.values():
        encoder.load()
    return encoders


@pytest.fixture
def sessions():
    """Sessions made by a test are stopped even when it fails."""
    made: list[LiveSession] = []

    def make(*args: Any, **kwargs: Any) -> LiveSession:
        kwargs.setdefault("voice_window_s", 0.5)
        kwargs.setdefault("voice_hop_s", 0.25)
        session = LiveSession(*args, **kwargs)
        made.append(session)
        return session

    yield make
    for session in made:
        session.stop(timeout=2.0)


def emoapp_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("emoapp-")]


# --- the pipeline -------------------------------------------------------------------


def test_replayed_camera_and_microphone_through_tiny_models(
    samples: Path, tiny_encoders: dict[Modality, Any], sessions
) -> None:
    video = VideoReplaySource(samples / "face_speech.mp4", speed=2.0)
    audio = AudioReplaySource(samples / "speech.wav", speed=2.0)
    session = sessions({FACE: video, VOICE: audio}, tiny_encoders)
    probe = Probe()
    session.add_listener(probe)
    session.start()
    assert session.running
    assert session.submit_text("I am so happy to see you today.")
    wait_for(session.sources_finished, 60, "the replays to end")  # ~4 s when quiet

    # Estimates came steadily, and some fused all three modalities.
    assert len(probe.estimates) >= 25
    fused = [e for e in probe.estimates if not e.abstained]
    assert any(set(e.inputs) == {FACE, VOICE, TEXT} for e in fused)
    assert all(abs(sum(e.contributions.values()) - 1) < 1e-6 for e in fused)
    faces = probe.predictions(FACE)
    assert faces and any(p.faces for p in faces), "the face in the clip was not found"
    assert probe.predictions(VOICE) and probe.predictions(TEXT)

    # Timestamps are the session clock, in capture order.
    face_t = [p.t for p in faces]
    assert face_t == sorted(face_t)

    # What each modality did, in words.
    assert probe.has_state(FACE, "starting")
    assert probe.has_state(FACE, "running")
    assert probe.has_state(FACE, "stopped", "end of face_speech.mp4")
    status = session.status()
    assert status[FACE].model_id == tiny_encoders[FACE].model_id
    assert status[FACE].device == "cpu float32"  # where, and in what precision
    # ... and why, for the device's tooltip: auto's reason for float32
    assert status[FACE].device_detail.startswith("cpu float32: auto: ")
    assert status[FACE].source == "face_speech.mp4"

    # Metrics: every frame is either encoded or counted as dropped.
    metrics = session.metrics()
    face = metrics[FACE]
    assert face.inputs == pytest.approx(7.36 * 15, abs=3)
    assert face.inputs - face.encoded - face.dropped in (0, 1)
    assert face.age_p50_s is not None and face.age_p95_s >= face.age_p50_s
    assert face.encoder_time_p50_s is not None
    assert metrics[VOICE].encoded > 0 and metrics[VOICE].age_p95_s is not None
    assert metrics[TEXT].inputs == 1 and metrics[TEXT].encoded == 1

    # The preview is throttled; the level meter moved.
    assert probe.frames
    assert probe.levels and all(np.isfinite(db) for _, db, _ in probe.levels)
    assert any(speech is not None for _, _, speech in probe.levels)

    assert session.stop() == []
    assert not session.running and emoapp_threads() == []
    assert all(s.state == "stopped" for s in session.status().values())


def test_slow_encoder_drops_stale_frames_and_others_keep_going(
    samples: Path, tiny_encoders: dict[Modality, Any], sessions
) -> None:
    slow_face = SlowEncoder(tiny_encoders[FACE], delay=0.6)
    video = VideoReplaySource(samples / "face_speech.mp4", loop=True)
    audio = AudioReplaySource(samples / "speech.wav", loop=True)
    session = sessions({FACE: video, VOICE: audio}, {FACE: slow_face, VOICE: tiny_encoders[VOICE]})
    probe = Probe()
    session.add_listener(probe)
    session.start()
    held_max = 0
    started = clock.now()

    def enough() -> bool:
        """2.5 s have passed, and as much came as 2.5 s bring on a quiet machine (a
        loaded one can take longer: the counts are not what this test is about)."""
        return (
            clock.now() - started >= 2.5
            and session.metrics()[FACE].inputs >= 25
            and len(probe.predictions(VOICE)) >= 4
            and len(probe.estimates) >= 20
        )

    while not enough() and clock.now() - started < 30:
        held_max = max(held_max, session.buffered()[FACE])
        time.sleep(0.01)
    face = session.metrics()[FACE]
    elapsed = clock.now() - started
    session.stop()

    # ~15 frames/s arrived but fewer than 2/s could be encoded: the rest were dropped
    # and counted, never queued (the slot and preview hold at most one frame each).
    assert face.inputs >= 25
    assert face.encoded <= elapsed / 0.6 + 1
    assert face.dropped >= face.inputs - face.encoded - 2
    assert face.drop_fraction > 0.5
    assert held_max <= 2
    # Meanwhile voice predictions and estimates kept flowing.
    assert len(probe.predictions(VOICE)) >= 4
    assert len(probe.estimates) >= 20
    gaps = np.diff([e.t for e in probe.estimates])
    assert gaps.max() < 0.45, "the estimate stream stalled behind the slow encoder"


def test_hung_encoder_blocks_only_its_worker_and_stop_still_returns(
    samples: Path, sessions
) -> None:
    face = FakeEncoder(FACE)
    face.hang = threading.Event()
    voice = FakeEncoder(VOICE, "sad")
    camera = SyntheticCamera(fps=30)
    audio = AudioReplaySource(samples / "speech.wav", loop=True)
    session = sessions({FACE: camera, VOICE: audio}, {FACE: face, VOICE: voice},
                       stall_after_s=0.3)  # fmt: skip
    probe = Probe()
    session.add_listener(probe)
    try:
        session.start()
        wait_for(lambda: probe.has_state(FACE, "degraded", "has not returned"), 5,
                 "the stall to show")  # fmt: skip
        before = len(probe.predictions(VOICE))
        wait_for(lambda: len(probe.predictions(VOICE)) >= before + 2, 5, "voice to go on")
        assert session.metrics()[FACE].encoder_busy_s > 0.3
        assert session.buffered()[FACE] <= 2
        began = time.monotonic()
        left = session.stop(timeout=0.5)
        assert time.monotonic() - began < 2.0
        assert left == ["emoapp-face-worker"]
        assert camera.released == 1, "the camera must be closed even though its encoder hangs"
    finally:
        face.hang.set()  # let the stuck call return: the worker then exits by itself
    wait_for(lambda: not emoapp_threads(), 5, "the released worker to exit")


def test_source_failure_degrades_then_recovers_while_others_run(samples: Path, sessions) -> None:
    camera = SyntheticCamera(fps=50, fail_opens=2, fail_after=10)
    face, voice = FakeEncoder(FACE), FakeEncoder(VOICE, "sad")
    audio = AudioReplaySource(samples / "speech.wav", loop=True)
    session = sessions({FACE: camera, VOICE: audio}, {FACE: face, VOICE: voice},
                       retry_initial_s=0.05, retry_max_s=0.1)  # fmt: skip
    probe = Probe()
    session.add_listener(probe)
    session.start()
    # Absent at first: failed with the reason, retried...
    wait_for(lambda: probe.has_state(FACE, "failed", "camera unplugged (test)"), 5)
    # ...then it opens and runs, until it is lost mid-stream: degraded with the reason...
    wait_for(lambda: probe.has_state(FACE, "degraded", "camera lost mid-stream (test)"), 5)
    lost_at = clock.now()
    # ...and comes back without a restart.
    wait_for(lambda: len(probe.predictions(FACE, since=lost_at)) >= 3, 5, "face to return")
    wait_for(lambda: session.status()[FACE].state == "running", 5)
    assert camera.open_attempts >= 4 and camera.opens == 2
    assert camera.released >= 1
    states = [s for s, _ in probe.states(FACE)]
    assert states.index("failed") < states.index("running") < states.index("degraded")
    assert "retrying" in dict(probe.states(FACE))["degraded"]
    # The voice never stopped: it predicted before the loss and goes on after it.
    assert [p for p in probe.predictions(VOICE) if p.t < lost_at]
    wait_for(lambda: probe.predictions(VOICE, since=lost_at), 5, "voice to go on")
    # Estimates went on throughout (at the steady rate at least).
    gaps = np.diff([e.t for e in probe.estimates])
    assert gaps.max() < 0.45


def test_encoder_that_raises_is_shown_and_recovers(samples: Path, sessions) -> None:
    face, voice = FakeEncoder(FACE), FakeEncoder(VOICE, "sad")
    face.fail = RuntimeError("CUDA error: device-side assert (test)")
    audio = AudioReplaySource(samples / "speech.wav", loop=True)
    session = sessions({FACE: SyntheticCamera(fps=30), VOICE: audio}, {FACE: face, VOICE: voice})
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: probe.has_state(FACE, "degraded", "device-side assert (test)"), 5)
    status = session.status()[FACE]
    assert status.message.startswith("face encoder failed: RuntimeError")
    wait_for(lambda: len(probe.predictions(VOICE)) >= 2, 5, "voice to go on")
    assert not probe.predictions(FACE)
    assert session.metrics()[FACE].errors > 0
    face.fail = None
    wait_for(lambda: session.status()[FACE].state == "running", 5, "face to recover")
    wait_for(lambda: probe.predictions(FACE), 5)


def test_stop_modality_removes_it_from_fusion_and_empties_its_buffers(
    samples: Path, sessions
) -> None:
    camera = SyntheticCamera(fps=60)
    face = FakeEncoder(FACE, delay=0.05)  # slow enough that a frame is usually waiting
    voice = FakeEncoder(VOICE, "sad")
    audio = AudioReplaySource(samples / "speech.wav", loop=True)
    session = sessions({FACE: camera, VOICE: audio}, {FACE: face, VOICE: voice})
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: (e := session.latest_estimate()) and set(e.inputs) == {FACE, VOICE}, 5)

    stopped_at = clock.now()
    session.stop_modality(FACE)
    assert camera.released == 1, "the camera must be closed at once"
    assert session.buffered()[FACE] == 0
    assert session.status()[FACE].state == "stopped"
    wait_for(lambda: any(e.t > stopped_at for e in probe.estimates), 10)
    later = [e for e in probe.estimates if e.t > stopped_at]
    assert later[0].t - stopped_at < 0.3, "the estimate without face must come at once"
    assert all(FACE not in e.inputs for e in later)
    assert VOICE in later[-1].inputs
    delivered = camera.delivered
    time.sleep(0.1)
    assert camera.delivered == delivered and session.buffered()[FACE] == 0

    # ...and it can be started again.
    session.start_modality(FACE)
    wait_for(lambda: (e := session.latest_estimate()) and FACE in e.inputs, 5)
    assert camera.opens == 2


def test_model_that_fails_to_load_disables_only_its_modality(samples: Path, sessions) -> None:
    class BrokenEncoder(FakeEncoder):
        def load(self) -> None:
            raise ModelLoadError("model 'x/y' is not available locally (test)")

    camera = SyntheticCamera()
    voice = FakeEncoder(VOICE, "sad")
    audio = AudioReplaySource(samples / "speech.wav", loop=True)
    session = sessions({FACE: camera, VOICE: audio}, {FACE: BrokenEncoder(FACE), VOICE: voice})
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: probe.has_state(FACE, "failed", "not available locally (test)"), 5)
    assert session.status()[FACE].message.startswith("face model failed to load")
    wait_for(lambda: len(probe.predictions(VOICE)) >= 2, 5)
    wait_for(lambda: camera.opens == camera.released, 10, "the unused camera to be closed")


def test_typed_text_and_modalities_without_model_or_source(tiny_encoders, sessions) -> None:
    why = "voice model failed to load: no weights (test)"
    session = sessions({}, {TEXT: tiny_encoders[TEXT]}, unavailable={VOICE: why})
    probe = Probe()
    session.add_listener(probe)
    assert not session.submit_text("too early")
    session.start()
    status = session.status()
    assert status[TEXT].state == "running" and status[TEXT].source == "typed text"
    assert status[VOICE].state == "failed" and "no weights (test)" in status[VOICE].message
    assert status[FACE].state == "off"
    assert session.submit_text("This is wonderful news, thank you!")
    wait_for(lambda: probe.predictions(TEXT), 5)
    wait_for(lambda: (e := session.latest_estimate()) and TEXT in e.inputs, 5)
    session.stop_modality(TEXT)
    assert not session.submit_text("ignored")


def test_listeners_cannot_stall_workers(samples: Path, sessions) -> None:
    class SlowListener:
        def __init__(self) -> None:
            self.calls = 0

        def on_estimate(self, estimate: FusedEstimate) -> None:
            self.calls += 1
            time.sleep(0.25)

    class BrokenListener:
        def on_output(self, output: EncoderOutput) -> None:
            raise ValueError("listener bug (test)")

    face = FakeEncoder(FACE, delay=0.01)
    camera = SyntheticCamera(fps=100)
    session = sessions({FACE: camera}, {FACE: face})
    probe, slow = Probe(), SlowListener()
    for listener in (BrokenListener(), slow, probe):
        session.add_listener(listener)
    started = time.monotonic()
    session.start()
    # 1.2 s at least (~100 encoded on a quiet machine), longer if a loaded one needs it
    wait_for(
        lambda: time.monotonic() - started >= 1.2 and session.metrics()[FACE].encoded >= 30,
        30,
        "30 frames encoded",
    )
    encoded = session.metrics()[FACE].encoded
    session.stop()
    elapsed = time.monotonic() - started
    # The worker went on at the encoder's pace while listeners took 0.25 s per estimate:
    # many frames per listener call (a worker waiting on them would encode about one).
    assert encoded >= 30
    assert slow.calls <= elapsed / 0.25 + 1
    assert encoded >= 2 * slow.calls
    assert probe.estimates, "a broken listener must not silence the others"
    # The preview is throttled to at most 30 frames a second.
    assert len(probe.frames) <= elapsed * 30 + 2


def test_cpu_fallback_is_surfaced(sessions) -> None:
    text = FakeEncoder(TEXT)
    text.fell_back_to_cpu = "cuda ran out of memory; text runs on the CPU"
    session = sessions({}, {TEXT: text})
    session.start()
    status = session.status()[TEXT]
    assert status.state == "degraded"
    assert "ran out of memory" in status.message


def test_session_rejects_mismatched_sources(samples: Path) -> None:
    with pytest.raises(ValueError, match="cannot feed"):
        LiveSession({VOICE: VideoReplaySource(samples / "face_only.mp4")}, {})
    session = LiveSession({}, {})
    with pytest.raises(ValueError, match="cannot feed"):
        session.set_source(FACE, AudioReplaySource(samples / "speech.wav"))
    assert session.stop() == []


def test_typed_and_heard_text_carry_what_was_said_before_until_text_stops(sessions) -> None:
    class RecordingText(FakeEncoder):
        def __init__(self) -> None:
            super().__init__(TEXT)
            self.seen: list[Any] = []

        def encode(self, items: Sequence[Any]) -> list[EncoderOutput]:
            self.seen.extend(items)
            return super().encode(items)

    text = RecordingText()
    session = sessions({}, {TEXT: text})
    session.start()
    assert session.submit_text("I got the job!")
    wait_for(lambda: len(text.seen) >= 1, 5)
    assert session.submit_heard(TextEntry(1.0, "No way!", "heard:test"))
    wait_for(lambda: len(text.seen) >= 2, 5)
    assert [e.context for e in text.seen] == [(), ("I got the job!",)]
    # Stopping text forgets the conversation: the next entry starts afresh.
    session.stop_modality(TEXT)
    session.start_modality(TEXT)
    assert session.submit_text("Hello again")
    wait_for(lambda: len(text.seen) >= 3, 5)
    assert text.seen[2].context == ()
