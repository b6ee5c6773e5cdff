"""Generators for the bad-input corpus: broken, odd and extreme media, text and transcripts.

Everything is made on the spot into a folder the caller gives (a test's ``tmp_path``);
nothing binary is committed. Each generator returns the path it wrote. Video comes from
PyAV (FFmpeg encoders), audio from soundfile (so a float WAV can hold NaN and inf), and
the long file is written in blocks so that making it needs no more memory than reading it.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SPEECH_RATE = 16_000


# --- audio ---------------------------------------------------------------------------------


def tone(seconds: float, sample_rate: int, hz: float = 220.0, amplitude: float = 0.5):
    """A sine with a slow loudness swing (so energy gates see speech-like bursts)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 1.5 * t)
    return (amplitude * envelope * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_sound(path: Path, samples: np.ndarray, sample_rate: int, subtype: str | None = None):
    import soundfile

    soundfile.write(str(path), samples, sample_rate, subtype=subtype)
    return path


def speech_at(
    path: Path, speech: Path, sample_rate: int, channels: int, seconds: float = 3.0
) -> Path:
    """The first ``seconds`` of the sample speech resampled to ``sample_rate`` and copied to
    ``channels`` channels (each a little quieter than the one before, so they differ)."""
    import librosa
    import soundfile

    samples, rate = soundfile.read(str(speech), dtype="float32")
    samples = samples[: round(seconds * rate)]
    if rate != sample_rate:
        samples = librosa.resample(samples, orig_sr=rate, target_sr=sample_rate)
    stacked = np.stack([samples * (1.0 - 0.1 * c) for c in range(channels)], axis=1)
    return write_sound(path, stacked if channels > 1 else samples, sample_rate)


def silent_wav(path: Path, seconds: float = 3.0) -> Path:
    return write_sound(path, np.zeros(round(seconds * SPEECH_RATE), np.float32), SPEECH_RATE)


def clipped_wav(path: Path, seconds: float = 3.0) -> Path:
    """A full-scale square wave (every sample at +1 or -1): the worst clipping there is."""
    t = np.arange(round(seconds * SPEECH_RATE)) / SPEECH_RATE
    square = np.where(np.sin(2 * np.pi * 180.0 * t) >= 0, 1.0, -1.0).astype(np.float32)
    return write_sound(path, square, SPEECH_RATE, subtype="PCM_16")


def float_wav_with(path: Path, value: float, share: float, seconds: float = 3.0) -> Path:
    """A float WAV of tone in which ``share`` of the samples (in runs) are ``value``
    (NaN, inf or -inf); share 1.0 makes every sample ``value``."""
    samples = tone(seconds, SPEECH_RATE)
    if share >= 1.0:
        samples[:] = value
    else:
        run = 400
        for start in range(0, samples.size, run * 10):
            samples[start : start + round(run * 10 * share)] = value
    return write_sound(path, samples, SPEECH_RATE, subtype="FLOAT")


def header_only_wav(path: Path) -> Path:
    """A valid WAV header with no samples at all."""
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(SPEECH_RATE)
    return path


def blip_wav(path: Path, milliseconds: float = 10.0) -> Path:
    """An audio file far shorter than one voice window."""
    return write_sound(path, tone(milliseconds / 1000.0, SPEECH_RATE), SPEECH_RATE)


def long_pcm_wav(path: Path, seconds: float, sample_rate: int = 8_000, block_s: float = 10.0):
    """A mono 16-bit WAV of ``seconds`` of audio, written block by block (memory: one
    block). The content alternates tone and silence every few seconds, so that a
    voice-activity gate has both to judge."""
    block = round(block_s * sample_rate)
    total = round(seconds * sample_rate)
    t = np.arange(block) / sample_rate
    burst = (0.4 * np.sin(2 * np.pi * 200.0 * t) * (np.sin(2 * np.pi * 0.2 * t) > 0)).astype(
        np.float32
    )
    pcm = (burst * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(sample_rate)
        written = 0
        while written < total:
            n = min(block, total - written)
            file.writeframes(pcm[: 2 * n])
            written += n
    return path


# --- video ---------------------------------------------------------------------------------


def first_frame(video: Path) -> np.ndarray:
    """The first decoded frame of ``video`` as RGB."""
    import av

    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{video} has no frame")


def write_video(
    path: Path,
    frames: Iterator[np.ndarray] | list[np.ndarray],
    fps: int = 10,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    size: tuple[int, int] | None = None,
    container_format: str | None = None,
) -> Path:
    """Encode RGB frames into a video file (no frames: a container with an empty video
    stream)."""
    import av

    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.pix_fmt = pix_fmt
        if size is not None:
            stream.width, stream.height = size
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for index, image in enumerate(frames):
            if size is None and index == 0:
                stream.height, stream.width = image.shape[:2]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def one_pixel_video(path: Path, frames: int = 5) -> Path:
    """1 x 1 frames (in Matroska with FFV1, which takes any size; H.264 needs even sizes)."""
    pixels = [np.full((1, 1, 3), 40 * i % 255, np.uint8) for i in range(frames)]
    return write_video(path, pixels, codec="ffv1", pix_fmt="yuv444p")


def uhd_video(path: Path, face_video: Path, frames: int = 2) -> Path:
    """3840 x 2160 frames: the sample's face, scaled up (nearest neighbour) and centred."""
    import cv2

    face = first_frame(face_video)
    scaled = cv2.resize(face, (2880, 2160), interpolation=cv2.INTER_NEAREST)
    canvas = np.zeros((2160, 3840, 3), np.uint8)
    canvas[:, 480 : 480 + 2880] = scaled
    return write_video(path, [canvas] * frames, fps=2)


def looped_video(path: Path, source: Path, seconds: float) -> Path:
    """``source`` (video + audio) repeated until at least ``seconds`` long, by remuxing its
    packets with shifted timestamps: no re-encoding, so it is quick whatever the length.

    Each repeat is shifted by the longest stream's span (first dts to last dts + duration,
    codec priming included), so every stream's timestamps keep increasing."""
    import av

    spans: dict[int, tuple[int, int]] = {}
    with av.open(str(source)) as inp:
        for packet in inp.demux():
            if packet.dts is None:
                continue
            first, _ = spans.get(packet.stream.index, (packet.dts, 0))
            spans[packet.stream.index] = (first, packet.dts + (packet.duration or 0))
        time_bases = {s.index: s.time_base for s in inp.streams}
    period = max(float((end - first) * time_bases[i]) for i, (first, end) in spans.items())
    loops = max(1, math.ceil(seconds / period))
    with av.open(str(path), "w", format="mp4") as out:
        mapping: dict[int, object] = {}
        for loop in range(loops):
            with av.open(str(source)) as inp:
                if not mapping:
                    mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams}
                for packet in inp.demux():
                    if packet.dts is None:
                        continue
                    shift = round(loop * period / time_bases[packet.stream.index])
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts = packet.dts + shift
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
    return path


def cut_video(path: Path, source: Path, seconds: float) -> Path:
    """The first ``seconds`` of ``source`` (every stream), remuxed without re-encoding."""
    import av

    with av.open(str(source)) as inp, av.open(str(path), "w", format="mp4") as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None or packet.dts * packet.time_base >= seconds:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return path


def faststart_copy(path: Path, source: Path) -> Path:
    """``source`` remuxed with its index (moov) first, so that cutting it loses the tail
    only (a recording whose index is at the end cannot be opened once cut)."""
    import av

    with (
        av.open(str(source)) as inp,
        av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as out,
    ):
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return path


def video_without_frames(path: Path, seconds: float = 3.0) -> Path:
    """A Matroska file declaring an H.264 video stream that holds no frame, next to a
    good audio track. (MP4 drops empty tracks, so Matroska it is.)"""
    import av

    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = out.add_stream("aac", rate=SPEECH_RATE)
        audio.layout = "mono"
        samples = tone(seconds, SPEECH_RATE)
        for start in range(0, samples.size, 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[None, start : start + 1024].copy(), format="fltp", layout="mono"
            )
            frame.sample_rate = SPEECH_RATE
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def stream_less_video(path: Path) -> Path:
    """What PyAV writes for a video that never got a frame: an MP4 with no stream at all."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()
    return path


# --- files that are not what they claim ------------------------------------------------------


def copy_as(path: Path, source: Path) -> Path:
    """``source``'s bytes under another name (a wav named .mp4, and so on)."""
    path.write_bytes(source.read_bytes())
    return path


def truncated(path: Path, source: Path, keep: float) -> Path:
    """The first ``keep`` share of ``source``'s bytes."""
    data = source.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def jpeg(path: Path, face_video: Path) -> Path:
    """A JPEG photo (of the sample's face)."""
    import cv2

    image = first_frame(face_video)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def random_bytes(path: Path, size: int = 64 * 1024, seed: int = 7) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes())
    return path


# --- text and transcripts ------------------------------------------------------------------

ARABIC = "أنا سعيد جدا اليوم، شكرا لك!"
HEBREW = "אני כל כך שמח לראות אותך היום"
MIXED_BIDI = "I said \u202eyppah ma I\u202c and laughed \u200f!"
EMOJI = "😀😂🥲😡😱🤢😮👍🏽👨‍👩‍👧‍👦"


def long_text(size: int = 1_000_000) -> str:
    """About ``size`` characters of sentences."""
    sentence = "I am so happy to see you today, but tomorrow worries me a little. "
    return (sentence * (size // len(sentence) + 1))[:size]


def binary_text(size: int = 4096, seed: int = 3) -> str:
    """Random bytes decoded as UTF-8 with errors='replace' (U+FFFD, control characters and
    NULs included)."""
    data = np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes()
    return data.decode("utf-8", errors="replace")


def srt_text(cues: list[tuple[str, str, str]]) -> str:
    """SRT from (start, end, text) triples, numbered in the order given."""
    blocks = [f"{n}\n{start} --> {end}\n{text}\n" for n, (start, end, text) in enumerate(cues, 1)]
    return "\n".join(blocks)


GOOD_CUES = [
    ("00:00:00,500", "00:00:02,500", "I am so happy to see you today."),
    ("00:00:03,000", "00:00:05,000", "Café au lait — isn’t it lovely?"),
    ("00:00:05,500", "00:00:07,000", "That is wonderful news."),
]


def write_srt(path: Path, cues: list[tuple[str, str, str]], encoding: str = "utf-8") -> Path:
    path.write_bytes(srt_text(cues).encode(encoding))
    return path


def cues_overlapping() -> list[tuple[str, str, str]]:
    return [
        ("00:00:00,500", "00:00:04,000", "I am so happy."),
        ("00:00:01,000", "00:00:03,000", "No, I am furious!"),
        ("00:00:02,000", "00:00:06,000", "Please calm down."),
    ]


def cues_negative() -> list[tuple[str, str, str]]:
    return [
        ("-00:00:02,000", "00:00:01,000", "Before the start."),
        ("00:00:02,000", "-00:00:01,000", "Ends before zero."),
        ("00:00:03,000", "00:00:04,000", "Fine."),
    ]


def cues_unordered() -> list[tuple[str, str, str]]:
    return [
        ("00:00:05,000", "00:00:06,000", "Third."),
        ("00:00:00,500", "00:00:01,500", "First."),
        ("00:00:03,000", "00:00:02,000", "Second, ending before it starts."),
    ]


def cues_far_future() -> list[tuple[str, str, str]]:
    """A cue at 99999 hours: far past any recording (and a pathological timeline length)."""
    return [
        ("00:00:01,000", "00:00:02,000", "Hello there."),
        ("99999:00:00,000", "99999:00:01,000", "Far in the future."),
    ]
