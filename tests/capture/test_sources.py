"""Live sources: file replays paced in real time, the camera (real OpenCV with no camera
here, and a scripted VideoCapture), the microphone (real sounddevice with no device here,
and a scripted sounddevice module), and the source options of the CLI and window."""

from __future__ import annotations

import argparse
import importlib.abc
import sys
import threading
import time
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from emoapp.capture.base import PermanentSourceError, Source
from emoapp.capture.camera import CameraSource, list_cameras
from emoapp.capture.microphone import MicrophoneSource, list_input_devices
from emoapp.capture.replay import AudioReplaySource, TextReplaySource, VideoReplaySource
from emoapp.commands.sources import add_source_options, build_sources
from emoapp.core import clock
from emoapp.core.errors import EmoappError, SourceError
from emoapp.core.messages import AudioChunk, Modality, TextEntry, VideoFrame


class Recorder:
    """Collects what a source delivers, and its end / error signals."""

    def __init__(self) -> None:
        self.items: list = []
        self.arrived: list[float] = []
        self.errors: list[SourceError] = []
        self.ended = threading.Event()
        self.failed = threading.Event()
        self.end_note: str | None = None

    def callback(self, item) -> None:
        self.items.append(item)
        self.arrived.append(clock.now())

    def on_error(self, error: SourceError) -> None:
        self.errors.append(error)
        self.failed.set()

    def on_end(self, note: str = "") -> None:
        self.end_note = note
        self.ended.set()

    def start(self, source: Source) -> None:
        source.start(self.callback, self.on_error, self.on_end)


# --- replays ------------------------------------------------------------------------


def test_video_replay_paces_frames_on_the_session_clock(samples: Path) -> None:
    source = VideoReplaySource(samples / "face_only.mp4", speed=5.0)
    assert isinstance(source, Source) and not source.is_device
    rec = Recorder()
    source.open()
    started = clock.now()
    rec.start(source)
    try:
        assert rec.ended.wait(10), "the replay did not signal its end"
    finally:
        source.close()
    elapsed = clock.now() - started
    frames = rec.items
    assert all(isinstance(f, VideoFrame) for f in frames)
    assert len(frames) == pytest.approx(2.53 * 15, abs=2)  # every frame of the file
    assert frames[0].image.shape == (360, 480, 3) and frames[0].image.dtype == np.uint8
    times = np.array([f.t for f in frames])
    # Re-stamped on the session clock, 1/15 s apart divided by the speed factor.
    assert np.all(np.diff(times) > 0)
    assert np.median(np.diff(times)) == pytest.approx(1 / 15 / 5, rel=0.05)
    assert times[0] >= started - 0.01
    # Paced, not dumped: it took about the file's duration over the speed.
    assert 2.53 / 5 * 0.8 < elapsed < 2.53 / 5 + 2.0
    # No frame was delivered before it was due.
    assert all(arrived >= f.t - 0.005 for f, arrived in zip(frames, rec.arrived, strict=True))
    assert [f.index for f in frames] == list(range(len(frames)))
    assert rec.errors == [] and rec.end_note == ""


def test_audio_replay_delivers_contiguous_blocks(samples: Path) -> None:
    source = AudioReplaySource(samples / "speech.wav", speed=8.0, block_s=0.05)
    rec = Recorder()
    source.open()
    rec.start(source)
    try:
        assert rec.ended.wait(10)
    finally:
        source.close()
    chunks = rec.items
    assert all(isinstance(c, AudioChunk) and c.sample_rate == 16_000 for c in chunks)
    total = sum(len(c.samples) for c in chunks)
    assert total == pytest.approx(7.32 * 16_000, abs=800)
    assert all(len(c.samples) == 800 for c in chunks[:-1])
    starts = np.array([c.t for c in chunks])
    # A steady sample clock: each block starts exactly one (sped-up) block after the last.
    assert np.allclose(np.diff(starts), 0.05 / 8, atol=1e-9)
    # A block arrives once its last sample is due, never before.
    for c, arrived in zip(chunks, rec.arrived, strict=True):
        assert arrived >= c.t + c.duration / 8 - 0.005


def test_replay_loops_until_closed(samples: Path) -> None:
    source = VideoReplaySource(samples / "face_only.mp4", speed=10.0, loop=True)
    rec = Recorder()
    source.open()
    rec.start(source)
    try:
        deadline = time.monotonic() + 10
        while len(rec.items) < 2 * 38 + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        source.close()
    assert len(rec.items) > 2 * 38, "the second pass did not start"
    assert not rec.ended.is_set()
    times = np.array([f.t for f in rec.items])
    assert np.all(np.diff(times) > 0), "looping must keep time moving forward"
    count = len(rec.items)
    time.sleep(0.2)
    assert len(rec.items) == count, "a closed source must deliver nothing more"


def test_replay_of_a_missing_or_unsuitable_file_fails_for_good(
    samples: Path, tmp_path: Path
) -> None:
    with pytest.raises(PermanentSourceError, match="no such file"):
        VideoReplaySource(tmp_path / "absent.mp4").open()
    with pytest.raises(PermanentSourceError, match="no audio track"):
        AudioReplaySource(samples / "face_only.mp4").open()
    with pytest.raises(PermanentSourceError, match="no video stream"):
        VideoReplaySource(samples / "speech.wav").open()
    with pytest.raises(ValueError):
        AudioReplaySource(samples / "speech.wav", speed=0)


def test_start_before_open_is_refused(samples: Path) -> None:
    with pytest.raises(SourceError, match="before open"):
        VideoReplaySource(samples / "face_only.mp4").start(lambda item: None)


def test_text_replay_types_lines_at_intervals(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("I am happy.\n\n  Now I am sad.  \nThe end.\n", encoding="utf-8")
    source = TextReplaySource(path, interval_s=0.1, first_s=0.05)
    rec = Recorder()
    source.open()
    rec.start(source)
    try:
        assert rec.ended.wait(5)
    finally:
        source.close()
    assert [e.text for e in rec.items] == ["I am happy.", "Now I am sad.", "The end."]
    assert all(isinstance(e, TextEntry) for e in rec.items)
    assert np.allclose(np.diff([e.t for e in rec.items]), 0.1, atol=1e-9)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(PermanentSourceError, match="no text lines"):
        TextReplaySource(empty).open()


# --- camera -------------------------------------------------------------------------


@pytest.fixture
def grant(tmp_path: Path):
    """Consent for the camera and the microphone for this run (as --allow-camera and
    --allow-mic give): a device source opens only with one."""
    from emoapp.privacy.consent import ConsentGate, ConsentStore

    return ConsentGate(ConsentStore(tmp_path / "config"), ["camera", "microphone"])


def test_camera_that_is_absent_is_a_clear_error(grant) -> None:
    # This machine has no camera: the real OpenCV path must say so in one line.
    source = CameraSource(0, consent=grant)
    assert source.is_device
    with pytest.raises(SourceError, match="no camera at index 0") as caught:
        source.open()
    assert not isinstance(caught.value, PermanentSourceError)  # a camera may come back
    source.close()  # harmless on a source that never opened


class ScriptedCapture:
    """Stands in for cv2.VideoCapture: ``frames`` good reads, then failing reads."""

    instances: ClassVar[list[ScriptedCapture]] = []
    frames = 5
    opened = True

    def __init__(self, index: int) -> None:
        self.index = index
        self.reads = 0
        self.released = False
        self.props: dict[int, float] = {}
        ScriptedCapture.instances.append(self)

    def isOpened(self) -> bool:
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self):
        self.reads += 1
        time.sleep(0.005)
        if self.reads > self.frames:
            return False, None
        bgr = np.zeros((4, 6, 3), np.uint8)
        bgr[..., 0] = 255  # pure blue in BGR
        return True, bgr

    def release(self) -> None:
        self.released = True

    def getBackendName(self) -> str:
        return "SCRIPTED"


@pytest.fixture
def scripted_cv2(monkeypatch: pytest.MonkeyPatch):
    import cv2

    ScriptedCapture.instances = []
    monkeypatch.setattr(ScriptedCapture, "frames", 5)
    monkeypatch.setattr(cv2, "VideoCapture", ScriptedCapture)
    return cv2


def test_camera_delivers_rgb_frames_then_reports_it_is_gone(scripted_cv2, grant) -> None:
    source = CameraSource(2, width=640, height=480, fps=30, consent=grant)
    source.lost_after_s = 0.2
    rec = Recorder()
    source.open()
    cap = ScriptedCapture.instances[-1]
    assert cap.index == 2
    assert cap.props[scripted_cv2.CAP_PROP_FRAME_WIDTH] == 640
    assert source.actual is not None and source.actual.width == 640
    rec.start(source)
    try:
        assert rec.failed.wait(5), "a camera that stops delivering must be reported"
    finally:
        source.close()
    assert len(rec.items) == 5
    frame = rec.items[0]
    assert frame.image.shape == (4, 6, 3)
    assert frame.image[0, 0].tolist() == [0, 0, 255]  # converted to RGB
    assert "stopped delivering frames" in str(rec.errors[0])
    assert cap.released


def test_camera_index_that_does_not_open(scripted_cv2, monkeypatch, grant) -> None:
    monkeypatch.setattr(ScriptedCapture, "opened", False)
    with pytest.raises(SourceError, match="no camera at index 3"):
        CameraSource(3, consent=grant).open()
    assert ScriptedCapture.instances[-1].released


def test_list_cameras_probes_indices_quietly(scripted_cv2, monkeypatch, grant) -> None:
    def only_index_1(index: int) -> ScriptedCapture:
        cap = ScriptedCapture(index)
        cap.opened = index == 1
        return cap

    monkeypatch.setattr(scripted_cv2, "VideoCapture", only_index_1)
    cameras = list_cameras(consent=grant)
    assert [c.index for c in cameras] == [1]
    assert cameras[0].backend == "SCRIPTED"
    assert len(ScriptedCapture.instances) == 10
    assert all(cap.released for cap in ScriptedCapture.instances)


# --- microphone ---------------------------------------------------------------------


def _scripted_sounddevice(
    blocks: int = 6, device_clock: list[float] | None = None
) -> types.ModuleType:
    """A stand-in for the sounddevice module (no PortAudio, no device): its input stream
    calls back from a thread of its own, then finishes as if the device went away.

    With ``device_clock`` (``[seconds]``) the stream keeps a sound card's time there: each
    block's callback comes exactly one block after the last (the card's sample clock),
    however late the callback thread was scheduled."""
    sd = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    class InputStream:
        def __init__(self, *, device, channels, samplerate, dtype, blocksize, callback,
                     finished_callback):  # fmt: skip
            assert channels == 1 and dtype == "float32"
            if device == "absent":
                raise PortAudioError("Error querying device -1")
            self.samplerate = samplerate
            self.blocksize = blocksize
            self.callback = callback
            self.finished = finished_callback
            self.thread: threading.Thread | None = None
            self.stopped = threading.Event()
            sd.streams.append(self)

        def _run(self) -> None:
            for _ in range(blocks):
                if self.stopped.wait(self.blocksize / self.samplerate):
                    break
                data = np.full((self.blocksize, 1), 0.25, np.float32)
                if device_clock is not None:  # this block's last sample was just captured
                    device_clock[0] += self.blocksize / self.samplerate
                self.callback(data, self.blocksize, None, None)
            self.finished()

        def start(self) -> None:
            self.thread = threading.Thread(target=self._run, name="Dummy-portaudio")
            self.thread.start()

        def stop(self) -> None:
            self.stopped.set()
            if self.thread is not None:
                self.thread.join()

        def close(self) -> None:
            self.closed = True

    sd.PortAudioError = PortAudioError
    sd.InputStream = InputStream
    sd.streams = []
    sd.query_devices = lambda: [
        {"name": "HDMI out", "max_input_channels": 0, "default_samplerate": 48000.0,
         "hostapi": 0},
        {"name": "USB Audio", "max_input_channels": 2, "default_samplerate": 44100.0,
         "hostapi": 0},
    ]  # fmt: skip
    sd.query_hostapis = lambda: [{"name": "ALSA"}]
    sd.default = types.SimpleNamespace(device=(1, 0))
    return sd


def test_microphone_stamps_blocks_on_a_steady_clock_and_reports_loss(monkeypatch, grant) -> None:
    # The session clock as the sound card sees it: callbacks due one block apart. (On the
    # wall clock a loaded machine can run a thread's wake-ups late by more than the 50 ms
    # at which the stamps re-anchor, which a sound card's clock does not.)
    device_time = [100.0]
    sd = _scripted_sounddevice(blocks=6, device_clock=device_time)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    monkeypatch.setattr(
        "emoapp.capture.microphone.clock", types.SimpleNamespace(now=lambda: device_time[0])
    )
    source = MicrophoneSource("USB Audio", block_s=0.05, consent=grant)
    assert source.is_device
    rec = Recorder()
    source.open()
    rec.start(source)
    try:
        assert rec.failed.wait(5), "a stream that finishes by itself is a lost device"
    finally:
        source.close()
    chunks = rec.items
    assert len(chunks) == 6
    assert all(len(c.samples) == 800 and c.samples.dtype == np.float32 for c in chunks)
    assert np.allclose(np.diff([c.t for c in chunks]), 0.05, atol=1e-9)
    assert chunks[0].t == pytest.approx(100.0)  # when its first sample was captured
    assert "stopped" in str(rec.errors[0])
    assert sd.streams[0].closed


def test_microphone_close_is_not_a_failure(monkeypatch, grant) -> None:
    sd = _scripted_sounddevice(blocks=10_000)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    source = MicrophoneSource(consent=grant)
    rec = Recorder()
    source.open()
    rec.start(source)
    time.sleep(0.05)
    source.close()
    assert rec.errors == []
    count = len(rec.items)
    time.sleep(0.05)
    assert len(rec.items) == count


def test_microphone_device_that_does_not_open(monkeypatch, grant) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", _scripted_sounddevice())
    with pytest.raises(SourceError, match=r"microphone \('absent'\) cannot be opened"):
        MicrophoneSource("absent", consent=grant).open()


def test_list_input_devices_keeps_inputs_only(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", _scripted_sounddevice())
    devices = list_input_devices()
    assert [(d.index, d.name, d.channels, d.is_default) for d in devices] == [
        (1, "USB Audio", 2, True)
    ]
    assert devices[0].host_api == "ALSA"


def test_microphone_without_sounddevice_says_what_to_install(monkeypatch, grant) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(PermanentSourceError, match="pip install sounddevice"):
        MicrophoneSource(consent=grant).open()


class _NoPortAudio(importlib.abc.MetaPathFinder):
    """Makes `import sounddevice` fail the way it does without libportaudio."""

    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_microphone_without_portaudio_is_a_source_error(monkeypatch, grant) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(SourceError, match="PortAudio library"):
        MicrophoneSource(consent=grant).open()


def test_real_microphone_here_fails_cleanly(grant) -> None:
    # No microphone on this machine (and perhaps no PortAudio): one clear SourceError.
    source = MicrophoneSource(consent=grant)
    try:
        with pytest.raises(SourceError, match=r"microphone|PortAudio"):
            source.open()
    finally:
        source.close()


# --- source options -----------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_source_options(parser)
    return parser.parse_args(argv)


def test_build_sources_tells_devices_from_files(samples: Path, tmp_path: Path) -> None:
    text = tmp_path / "typed.txt"
    text.write_text("hello\n", encoding="utf-8")
    sources = build_sources(
        _args(
            "--camera", str(samples / "face_speech.mp4"), "--mic", str(samples / "speech.wav"),
            "--text-file", str(text), "--replay-speed", "2", "--loop",
        )
    )  # fmt: skip
    assert isinstance(sources[Modality.FACE], VideoReplaySource)
    assert isinstance(sources[Modality.VOICE], AudioReplaySource)
    assert isinstance(sources[Modality.TEXT], TextReplaySource)
    assert sources[Modality.FACE].speed == 2.0 and sources[Modality.FACE].loop
    assert not any(s.is_device for s in sources.values())

    devices = build_sources(_args("--camera", "1", "--camera-size", "640x480", "--mic", "2"))
    camera, mic = devices[Modality.FACE], devices[Modality.VOICE]
    assert isinstance(camera, CameraSource) and camera.index == 1 and camera.width == 640
    assert isinstance(mic, MicrophoneSource) and mic.device == 2
    assert build_sources(_args("--mic", "default"))[Modality.VOICE].device is None
    assert build_sources(_args("--mic", "USB Audio"))[Modality.VOICE].device == "USB Audio"
    assert build_sources(_args()) == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--camera", "missing.mp4"), "--camera missing.mp4: no such file"),
        (("--mic", "missing.wav"), "--mic missing.wav: no such file"),
        (("--camera", "0", "--camera-size", "big"), "WIDTHxHEIGHT"),
        (("--camera", "0", "--camera-fps", "0"), "--camera-fps"),
        (("--replay-speed", "0"), "--replay-speed"),
    ],
)
def test_build_sources_rejects_bad_options(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(EmoappError, match=message):
        build_sources(_args(*argv))


def test_sources_and_runtime_import_nothing_heavy() -> None:
    # cv2, sounddevice, PyAV and torch load when a source opens or a model runs, never
    # at import: `emoapp --help` imports these modules through the commands.
    import subprocess

    code = (
        "import sys, emoapp.capture.camera, emoapp.capture.microphone, "
        "emoapp.capture.replay, emoapp.live.session, emoapp.live.headless, "
        "emoapp.commands.live, emoapp.commands.sources; "
        "print([m for m in ('cv2', 'sounddevice', 'av', 'torch', 'transformers', 'PySide6') "
        "if m in sys.modules])"
    )
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
