"""Fault injection across the live pipeline (:class:`~emoapp.live.session.LiveSession`).

Each test runs a session with a faulty part next to a healthy one and checks the same
four things: the session keeps running (the healthy modality goes on predicting and
estimates keep coming), the fault shows in the faulty modality's status where it
happened, the modality recovers when the fault goes away, and ``stop()`` leaves no
thread behind.

Faults: sources that send garbage frames or audio, die with unexpected errors, or stall;
encoders that raise, hang, run out of memory on the CPU or on a (simulated) GPU, or
return numbers that are not numbers. The garbage goes through the real encoders (tiny
models); the other faults use stand-ins that misbehave on demand.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emoapp.capture.base import PermanentSourceError
from emoapp.capture.replay import AudioReplaySource
from emoapp.core import clock
from emoapp.core.messages import AudioChunk, ModalityPrediction, NoPrediction
from emoapp.encoders.base import EncoderConfig
from emoapp.live.session import LiveSession
from tests.hardening import corpus
from tests.hardening.live import (
    FACE,
    TEXT,
    VOICE,
    FakeEncoder,
    Probe,
    ScriptedSource,
    chunk_of,
    frame_of,
    tone_block,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def tiny(tiny_models: dict[str, Path]) -> dict[str, Any]:
    """Real encoders over the tiny models, loaded once."""
    from emoapp.encoders.face import FaceEncoder
    from emoapp.encoders.text import TextEncoder
    from emoapp.encoders.voice import VoiceConfig, VoiceEncoder

    encoders = {
        FACE: FaceEncoder(EncoderConfig(str(tiny_models["face"]), device="cpu")),
        VOICE: VoiceEncoder(
            EncoderConfig(str(tiny_models["voice"]), device="cpu"),
            VoiceConfig(vad="energy", min_speech_s=0.1),
        ),
        TEXT: TextEncoder(EncoderConfig(str(tiny_models["text"]), device="cpu")),
    }
    for encoder in encoders.values():
        encoder.load()
    return encoders


@pytest.fixture(scope="module")
def face_image(samples: Path) -> np.ndarray:
    return corpus.first_frame(samples / "face_only.mp4")


@pytest.fixture
def sessions() -> Iterator[Any]:
    """Sessions made by a test; each is stopped at the end, and must leave no thread."""
    made: list[LiveSession] = []

    def make(*args: Any, **kwargs: Any) -> LiveSession:
        kwargs.setdefault("voice_window_s", 0.5)
        kwargs.setdefault("voice_hop_s", 0.25)
        kwargs.setdefault("retry_initial_s", 0.05)
        kwargs.setdefault("retry_max_s", 0.2)
        session = LiveSession(*args, **kwargs)
        made.append(session)
        return session

    yield make
    for session in made:
        assert session.stop(timeout=5.0) == [], "threads left running after stop()"


def _looped_speech(samples: Path) -> AudioReplaySource:
    return AudioReplaySource(samples / "speech.wav", loop=True, speed=2.0)


def _keeps_going(probe: Probe, healthy: Any, since: float, n: int = 3) -> None:
    """The healthy modality predicts and estimates flow after ``since``."""
    wait_for(lambda: len(probe.predictions(healthy, since)) >= n, 20, f"{healthy.value} to go on")
    wait_for(lambda: len(probe.estimates_since(since)) >= 5, 10, "estimates to go on")


# --- sources -----------------------------------------------------------------------------

GARBAGE_FRAMES: dict[str, Any] = {
    "float64 in [0, 1]": np.random.default_rng(0).random((120, 160, 3)),
    "float with NaN": np.full((120, 160, 3), np.nan, np.float32),
    "grayscale": np.zeros((120, 160), np.uint8),
    "five channels": np.zeros((120, 160, 5), np.uint8),
    "zero by zero": np.zeros((0, 0, 3), np.uint8),
    "one pixel": np.zeros((1, 1, 3), np.uint8),
    "4-D": np.zeros((2, 120, 160, 3), np.uint8),
    "int64 out of range": np.full((120, 160, 3), 10**12, np.int64),
    "uint16": np.full((120, 160, 3), 40000, np.uint16),
    "bool": np.ones((120, 160, 3), bool),
    "not an array": None,
    "a string": "frame",
    "4K": np.zeros((2160, 3840, 3), np.uint8),
}


def test_garbage_frames_from_a_camera(
    tiny: dict, face_image: np.ndarray, samples: Path, sessions
) -> None:
    def script() -> Iterator[Any]:
        yield frame_of(face_image)
        for image in GARBAGE_FRAMES.values():
            yield frame_of(image)
            yield ("pause", 0.25)  # each one reaches the encoder (latest-wins slot)
        while True:
            yield frame_of(face_image)

    camera = ScriptedSource(FACE, script, rate=8, name="garbage camera")
    session = sessions({FACE: camera, VOICE: _looped_speech(samples)}, tiny)
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: camera.delivered > len(GARBAGE_FRAMES) + 1, 30, "the garbage to go through")
    after = clock.now()

    # The face worker survived every one: real frames are classified again afterwards.
    wait_for(lambda: probe.predictions(FACE, after), 20, "face predictions after the garbage")
    reasons = {o.reason for o in probe.outputs_of(FACE) if isinstance(o, NoPrediction)}
    assert any("expected H x W x 3" in r or "channels" in r for r in reasons), reasons
    assert any("not an image" in r for r in reasons), reasons
    _keeps_going(probe, VOICE, after)
    wait_for(lambda: session.status()[FACE].state == "running", 10, "face to be running")


def test_garbage_audio_from_a_microphone(tiny: dict, sessions) -> None:
    good = tone_block()
    garbage: list[Any] = [
        chunk_of(np.full(800, np.nan, np.float32)),
        chunk_of(np.full(800, np.inf, np.float32)),
        chunk_of((good * 32767).astype(np.int16)),  # integer PCM
        chunk_of(np.stack([good, good], axis=1)),  # stereo (n, 2)
        chunk_of(np.stack([good, good])),  # stereo (2, n)
        chunk_of(np.zeros(0, np.float32)),  # empty
        chunk_of(good * 1e9),  # far past full scale
        chunk_of(tone_block(sample_rate=48_000), 48_000),  # the device changed its rate
        chunk_of(np.zeros((4, 4, 4), np.float32)),  # 3-D
        lambda t, i: AudioChunk(t - 30.0, good, 16_000, "scripted"),  # clock jumped back
    ]

    def script() -> Iterator[Any]:
        for _ in range(20):
            yield chunk_of(good)
        for item in garbage:
            yield item
            for _ in range(10):  # a window's worth of good audio after each
                yield chunk_of(good)
        while True:
            yield chunk_of(good)

    mic = ScriptedSource(VOICE, script, rate=50, name="garbage microphone")
    face = FakeEncoder(FACE)
    camera = ScriptedSource(
        FACE, lambda: itertools.repeat(frame_of(np.zeros((8, 8, 3), np.uint8))), rate=20
    )
    session = sessions({FACE: camera, VOICE: mic}, {FACE: face, VOICE: tiny[VOICE]})
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: mic.delivered > 20 + 11 * len(garbage), 60, "the garbage to go through")
    after = clock.now()

    wait_for(lambda: len(probe.predictions(VOICE, after)) >= 2, 20, "voice after the garbage")
    assert all(np.all(np.isfinite(p.probs)) for p in probe.predictions(VOICE))
    estimates = [e for e in probe.estimates if e.probs is not None]
    assert all(np.all(np.isfinite(e.probs)) for e in estimates)
    _keeps_going(probe, FACE, after)
    wait_for(lambda: session.status()[VOICE].state == "running", 10, "voice to be running")


@pytest.mark.parametrize(
    "error",
    [RuntimeError("driver crashed (test)"), OSError(5, "Input/output error (test)"),
     ZeroDivisionError("bug in a driver (test)")],
    ids=["RuntimeError", "OSError", "ZeroDivisionError"],
)  # fmt: skip
def test_a_source_that_dies_mid_stream_is_retried(
    error: Exception, samples: Path, sessions
) -> None:
    """Unexpected exceptions from a camera driver: degraded with the reason, retried,
    back without a restart; the microphone never stops."""
    dies = {"left": 2}

    def script() -> Iterator[Any]:
        for _ in range(10):
            yield frame_of(np.zeros((8, 8, 3), np.uint8))
        if dies["left"]:
            dies["left"] -= 1
            yield ("raise", error)
        while True:
            yield frame_of(np.zeros((8, 8, 3), np.uint8))

    camera = ScriptedSource(FACE, script, rate=50, name="flaky camera")
    session = sessions(
        {FACE: camera, VOICE: _looped_speech(samples)},
        {FACE: FakeEncoder(FACE), VOICE: FakeEncoder(VOICE, "sad")},
    )
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: probe.has_state(FACE, "degraded", "(test)"), 10, "the failure to show")
    lost = clock.now()
    wait_for(lambda: camera.opens >= 3 and not dies["left"], 10, "the camera to be reopened")
    wait_for(lambda: len(probe.predictions(FACE, lost)) >= 3, 10, "face to come back")
    wait_for(lambda: session.status()[FACE].state == "running", 10)
    _keeps_going(probe, VOICE, lost)


def test_a_file_that_fails_for_good_is_not_retried(samples: Path, sessions, tmp_path: Path):
    """A replayed file that becomes unreadable mid-way: its modality fails with the reason,
    is never opened again (however many retry intervals pass), and the other goes on."""

    def script() -> Iterator[Any]:
        for _ in range(5):
            yield frame_of(np.zeros((8, 8, 3), np.uint8))
        yield ("raise", PermanentSourceError("clip.mp4: file vanished (test)"))

    clip = ScriptedSource(FACE, script, rate=50, name="clip.mp4", is_device=False)
    session = sessions(
        {FACE: clip, VOICE: _looped_speech(samples)},
        {FACE: FakeEncoder(FACE), VOICE: FakeEncoder(VOICE, "sad")},
    )
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: probe.has_state(FACE, "failed", "file vanished (test)"), 10)
    assert clip.opens == 1
    failed_at = clock.now()
    # Voice goes on for several seconds: dozens of retry intervals (the backoff is at most
    # 0.2 s here), during which a retry would have reopened the clip.
    _keeps_going(probe, VOICE, failed_at, n=6)
    wait_for(lambda: clock.now() - failed_at > 1.0, 5)
    assert clip.opens == 1, "a file that failed for good was opened again"
    assert not probe.has_state(FACE, "retrying") and not probe.has_state(FACE, "degraded")
    status = session.status()[FACE]
    assert status.state == "failed" and "file vanished (test)" in status.message


def test_a_stalled_source_ages_out_of_fusion_and_comes_back(samples: Path, sessions) -> None:
    """A camera that stops delivering without an error (a frozen driver): estimates keep
    coming, the face drops out of them once its last frame is older than the fusion's
    max_age, and returns when frames flow again."""
    resume = threading.Event()

    def script() -> Iterator[Any]:
        for _ in range(20):
            yield frame_of(np.zeros((8, 8, 3), np.uint8))
        yield ("stall", resume)
        while True:
            yield frame_of(np.zeros((8, 8, 3), np.uint8))

    camera = ScriptedSource(FACE, script, rate=20, name="frozen camera")
    session = sessions(
        {FACE: camera, VOICE: _looped_speech(samples)},
        {FACE: FakeEncoder(FACE), VOICE: FakeEncoder(VOICE, "sad")},
    )
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: camera.delivered >= 20, 10)
    stalled = clock.now()
    wait_for(
        lambda: any(FACE not in e.inputs and VOICE in e.inputs
                    for e in probe.estimates_since(stalled)),
        10, "the frozen face to age out",
    )  # fmt: skip
    _keeps_going(probe, VOICE, stalled)
    assert session.status()[FACE].state in ("running", "degraded")  # never "failed"
    resume.set()
    back = clock.now()
    wait_for(lambda: any(FACE in e.inputs for e in probe.estimates_since(back)), 10, "face back")


def test_a_stalled_source_is_reported_in_status(samples: Path, sessions) -> None:
    resume = threading.Event()

    def script() -> Iterator[Any]:
        for _ in range(10):
            yield frame_of(np.zeros((8, 8, 3), np.uint8))
        yield ("stall", resume)

    camera = ScriptedSource(FACE, script, rate=20, name="frozen camera")
    session = sessions({FACE: camera}, {FACE: FakeEncoder(FACE)}, stall_after_s=0.5)
    session.start()
    try:
        wait_for(lambda: camera.delivered >= 10, 10)
        wait_for(lambda: session.status()[FACE].state == "degraded", 10, "the stall in status")
    finally:
        resume.set()


# --- encoders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [RuntimeError("CUDA error: an illegal memory access (test)"), ValueError("bad shape (test)"),
     MemoryError("out of host memory (test)"), KeyError("missing key (test)")],
    ids=["RuntimeError", "ValueError", "MemoryError", "KeyError"],
)  # fmt: skip
def test_an_encoder_that_raises(error: Exception, samples: Path, sessions) -> None:
    face = FakeEncoder(FACE)
    face.fail = error
    camera = ScriptedSource(
        FACE, lambda: itertools.repeat(frame_of(np.zeros((8, 8, 3), np.uint8))), rate=30
    )
    session = sessions(
        {FACE: camera, VOICE: _looped_speech(samples)},
        {FACE: face, VOICE: FakeEncoder(VOICE, "sad")},
    )
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: probe.has_state(FACE, "degraded", type(error).__name__), 10)
    _keeps_going(probe, VOICE, clock.now())
    face.fail = None
    back = clock.now()
    wait_for(lambda: probe.predictions(FACE, back), 10, "face to recover")
    wait_for(lambda: session.status()[FACE].state == "running", 10)


def test_an_encoder_that_hangs_past_the_stall_timeout(samples: Path, sessions) -> None:
    face = FakeEncoder(FACE)
    face.hang = threading.Event()
    camera = ScriptedSource(
        FACE, lambda: itertools.repeat(frame_of(np.zeros((8, 8, 3), np.uint8))), rate=30
    )
    session = sessions(
        {FACE: camera, VOICE: _looped_speech(samples)},
        {FACE: face, VOICE: FakeEncoder(VOICE, "sad")},
        stall_after_s=0.5,
    )
    probe = Probe()
    session.add_listener(probe)
    try:
        session.start()
        wait_for(lambda: probe.has_state(FACE, "degraded", "has not returned"), 10)
        _keeps_going(probe, VOICE, clock.now())
        assert session.buffered()[FACE] <= 2  # frames are dropped, not queued behind it
    finally:
        face.hang.set()
    face.hang = None
    back = clock.now()
    wait_for(lambda: probe.predictions(FACE, back), 10, "face to recover")
    wait_for(lambda: session.status()[FACE].state == "running", 10)


def _out_of_memory() -> BaseException:
    import torch

    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (test)")


def test_out_of_memory_on_the_cpu_is_shown_and_passes(
    tiny: dict, face_image: np.ndarray, samples: Path, sessions, monkeypatch
) -> None:
    """On the CPU there is nowhere to fall back to: the base re-raises, the session shows
    it, and the next frames are classified once memory is there again."""
    encoder = tiny[FACE]
    real_forward = encoder._forward
    left = {"ooms": 3}

    def forward(inputs: dict) -> np.ndarray:
        if left["ooms"]:
            left["ooms"] -= 1
            raise _out_of_memory()
        return real_forward(inputs)

    monkeypatch.setattr(encoder, "_forward", forward)
    camera = ScriptedSource(FACE, lambda: itertools.repeat(frame_of(face_image)), rate=10)
    session = sessions(
        {FACE: camera, VOICE: _looped_speech(samples)},
        {FACE: encoder, VOICE: FakeEncoder(VOICE, "sad")},
    )
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: probe.has_state(FACE, "degraded", "OutOfMemoryError"), 20)
    _keeps_going(probe, VOICE, clock.now())
    wait_for(lambda: probe.predictions(FACE), 20, "face to recover")
    wait_for(lambda: session.status()[FACE].state == "running", 10)
    assert encoder.fell_back_to_cpu is None


def test_out_of_memory_on_a_gpu_falls_back_to_the_cpu(
    tiny_models: dict[str, Path], samples: Path, sessions, monkeypatch, capfd
) -> None:
    """A text encoder on a (simulated) GPU that runs out of memory: the base moves it to
    the CPU for good, the status says so, and typed text is classified."""
    import torch

    from emoapp.encoders.text import TextEncoder

    encoder = TextEncoder(EncoderConfig(str(tiny_models["text"]), device="cpu"))
    encoder.load()
    encoder.device = torch.device("cuda")  # what a GPU run would hold
    real_forward = encoder._forward

    def forward(inputs: dict) -> np.ndarray:
        if encoder.device.type == "cuda":
            raise _out_of_memory()
        return real_forward(inputs)

    monkeypatch.setattr(encoder, "_forward", forward)
    session = sessions(
        {VOICE: _looped_speech(samples)}, {TEXT: encoder, VOICE: FakeEncoder(VOICE, "sad")}
    )
    probe = Probe()
    session.add_listener(probe)
    session.start()
    assert session.submit_text("I am so happy to see you today.")
    wait_for(lambda: probe.predictions(TEXT), 20, "text after the fallback")
    assert encoder.device.type == "cpu"
    status = session.status()[TEXT]
    assert (
        status.state == "degraded" and "ran out of memory; text runs on the CPU" in status.message
    )
    assert "ran out of memory" in capfd.readouterr().err
    _keeps_going(probe, VOICE, clock.now())


def _poisoned(modality: Any, tiny_models: dict[str, Path], face_image: np.ndarray):
    """A real encoder whose weights are all NaN (as a float16 overflow leaves them), and
    an input it would otherwise classify."""
    import torch

    from emoapp.core.messages import TextEntry, VideoFrame
    from emoapp.encoders.face import FaceEncoder
    from emoapp.encoders.text import TextEncoder
    from emoapp.encoders.voice import VoiceConfig, VoiceEncoder

    config = EncoderConfig(str(tiny_models[modality.value]), device="cpu")
    if modality is FACE:
        encoder: Any = FaceEncoder(config)
        item: Any = VideoFrame(0.0, face_image, 0)
    elif modality is VOICE:
        encoder = VoiceEncoder(config, VoiceConfig(vad="off"))
        item = AudioChunk(0.0, tone_block(1.0), 16_000)
    else:
        encoder = TextEncoder(config)
        item = TextEntry(0.0, "I am so happy to see you today.")
    encoder.load()
    with torch.no_grad():
        for parameter in encoder.model.parameters():
            parameter.fill_(float("nan"))
    return encoder, item


@pytest.mark.parametrize("modality", [FACE, VOICE, TEXT], ids=lambda m: m.value)
def test_a_model_that_outputs_nan_never_votes_nan(
    modality: Any, tiny_models: dict[str, Path], face_image: np.ndarray
) -> None:
    """NaN logits never reach fusion as NaN: the label map spreads a sum that is not
    positive evenly over the model's labels (a uniform, low-confidence vote)."""
    encoder, item = _poisoned(modality, tiny_models, face_image)
    (output,) = encoder.encode([item])
    if isinstance(output, ModalityPrediction):
        assert np.all(np.isfinite(output.probs)) and np.isfinite(output.confidence)
        assert output.confidence == pytest.approx(1.0 / output.mask.sum())


def test_a_model_that_outputs_nan_says_so(
    tiny_models: dict[str, Path], face_image: np.ndarray
) -> None:
    encoder, item = _poisoned(TEXT, tiny_models, face_image)
    (output,) = encoder.encode([item])
    assert isinstance(output, NoPrediction)


def test_an_encoder_returning_nan_does_not_poison_the_estimate(samples: Path, sessions) -> None:
    face = FakeEncoder(FACE)
    face.garbage = lambda items: [
        ModalityPrediction(FACE, item.t, np.full(7, np.nan), np.ones(7, bool), 0.7, "nan-face")
        for item in items
    ]
    camera = ScriptedSource(
        FACE, lambda: itertools.repeat(frame_of(np.zeros((8, 8, 3), np.uint8))), rate=30
    )
    session = sessions(
        {FACE: camera, VOICE: _looped_speech(samples)},
        {FACE: face, VOICE: FakeEncoder(VOICE, "sad")},
    )
    probe = Probe()
    session.add_listener(probe)
    session.start()
    wait_for(lambda: len([e for e in probe.estimates if VOICE in e.inputs]) >= 5, 10)
    fused = [e for e in probe.estimates if e.probs is not None]
    assert all(np.all(np.isfinite(e.probs)) for e in fused)
