"""Decoding recorded media: probing, frame and chunk streaming, resampling, broken files."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from emoapp.capture.media import (
    MediaInfo,
    TruncatedMediaError,
    iter_audio_chunks,
    iter_video_frames,
    probe,
    read_audio,
)
from emoapp.core.errors import MediaError


def _write_sound(path: Path, samples: np.ndarray, sample_rate: int, **kwargs) -> Path:
    import soundfile

    soundfile.write(str(path), samples, sample_rate, **kwargs)
    return path


def _tone(seconds: float, sample_rate: int, amplitude: float = 0.8, hz: float = 440.0):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _faststart_copy(source: Path, target: Path) -> Path:
    """Remux ``source`` with the index (moov) first, so that cutting it loses the tail only."""
    import av

    with (
        av.open(str(source)) as inp,
        av.open(str(target), "w", format="mp4", options={"movflags": "faststart"}) as out,
    ):
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return target


# --- probe -----------------------------------------------------------------------------


def test_probe_video_with_audio(samples: Path) -> None:
    info = probe(samples / "face_speech.mp4")
    assert isinstance(info, MediaInfo)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (480, 360)
    assert info.fps == pytest.approx(15.0)
    assert info.sample_rate == 16000 and info.channels == 1
    assert info.duration == pytest.approx(7.3, abs=0.2)


def test_probe_video_without_audio_and_audio_only(samples: Path) -> None:
    silent = probe(samples / "face_only.mp4")
    assert silent.has_video and not silent.has_audio
    assert silent.sample_rate is None and silent.channels is None
    wav = probe(samples / "speech.wav")
    assert wav.has_audio and not wav.has_video
    assert (wav.width, wav.height, wav.fps) == (0, 0, None)
    assert wav.duration == pytest.approx(7.32, abs=0.05)


# --- video -----------------------------------------------------------------------------


def test_video_frames_are_rgb_with_media_time(samples: Path) -> None:
    frames = list(iter_video_frames(samples / "face_speech.mp4"))
    assert len(frames) == 110  # every frame of the 15 fps stream
    first = frames[0]
    assert first.image.dtype == np.uint8 and first.image.shape == (360, 480, 3)
    assert [f.index for f in frames] == list(range(110))
    times = np.array([f.t for f in frames])
    assert times[0] == pytest.approx(0.0)
    np.testing.assert_allclose(np.diff(times), 1 / 15, atol=1e-3)


def test_video_frames_subsampled_to_fps(samples: Path) -> None:
    frames = list(iter_video_frames(samples / "face_speech.mp4", fps=2.0))
    times = [f.t for f in frames]
    assert 14 <= len(frames) <= 15
    # One frame per half-second slot of the grid: the first at or after each slot start.
    slots = [int(t * 2 + 1e-6) for t in times]
    assert slots == sorted(set(slots))
    assert all(t - slot / 2 < 1 / 15 + 1e-6 for t, slot in zip(times, slots, strict=True))
    for frame in frames:  # index stays the stream index, consistent with pts
        assert frame.index == round(frame.t * 15)


def test_video_frames_from_start(samples: Path) -> None:
    frames = list(iter_video_frames(samples / "face_speech.mp4", fps=2.0, start=3.0))
    assert frames[0].t == pytest.approx(3.0, abs=1e-3)
    assert frames[0].index == 45
    assert all(f.t >= 3.0 - 1e-6 for f in frames)


def test_video_of_audio_file_is_refused(samples: Path) -> None:
    with pytest.raises(MediaError, match="no video stream"):
        next(iter_video_frames(samples / "speech.wav"))


# --- audio -----------------------------------------------------------------------------


def test_audio_chunks_are_contiguous_mono_float(samples: Path) -> None:
    chunks = list(iter_audio_chunks(samples / "face_speech.mp4", sample_rate=16000, chunk_s=0.5))
    assert chunks[0].t == pytest.approx(0.0)
    for a, b in itertools.pairwise(chunks):
        assert b.t == pytest.approx(a.end, abs=1e-9)
    assert all(len(c.samples) == 8000 for c in chunks[:-1])
    assert 0 < len(chunks[-1].samples) <= 8000
    for chunk in chunks:
        assert chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1
        assert np.abs(chunk.samples).max() <= 1.0
    whole = read_audio(samples / "face_speech.mp4")
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), whole.samples)
    assert whole.duration == pytest.approx(7.36, abs=0.05)
    assert np.abs(whole.samples).max() > 0.05  # there is speech in it


def test_audio_of_video_without_audio_is_refused(samples: Path) -> None:
    with pytest.raises(MediaError, match="no audio track"):
        next(iter_audio_chunks(samples / "face_only.mp4"))


def test_stereo_44k_is_resampled_and_averaged(tmp_path: Path) -> None:
    left = _tone(2.0, 44100, amplitude=0.8)
    stereo = np.stack([left, left], axis=1)
    path = _write_sound(tmp_path / "stereo.wav", stereo, 44100)
    info = probe(path)
    assert (info.sample_rate, info.channels) == (44100, 2)
    audio = read_audio(path, sample_rate=16000)
    assert audio.sample_rate == 16000
    assert len(audio.samples) == pytest.approx(32000, abs=64)
    # The channel average keeps the level (FFmpeg's own mono matrix would give 0.8 * 1.41).
    assert np.abs(audio.samples[1000:-1000]).max() == pytest.approx(0.8, abs=0.02)

    opposite = np.stack([left, -left], axis=1)
    cancel = read_audio(_write_sound(tmp_path / "opposite.wav", opposite, 44100))
    assert np.abs(cancel.samples).max() < 1e-3


@pytest.mark.parametrize(
    ("suffix", "kwargs"),
    [(".flac", {}), (".ogg", {"format": "OGG", "subtype": "VORBIS"}), (".mp3", {})],
)
def test_compressed_audio_formats(tmp_path: Path, suffix: str, kwargs: dict) -> None:
    import soundfile

    if suffix == ".mp3" and "MP3" not in soundfile.available_formats():
        path = _mp3_with_cover_art(tmp_path / "tone.mp3", 1.5, 22050, cover=False)
    else:
        path = _write_sound(tmp_path / f"tone{suffix}", _tone(1.5, 22050), 22050, **kwargs)
    info = probe(path)
    assert info.has_audio and not info.has_video
    audio = read_audio(path, sample_rate=16000)
    assert audio.duration == pytest.approx(1.5, abs=0.1)
    assert np.abs(audio.samples).max() == pytest.approx(0.8, abs=0.1)


def test_long_audio_streams_with_bounded_memory(tmp_path: Path) -> None:
    # Three minutes of audio: decoded whole at 16 kHz this is 11.5 MB of float32.
    seconds = 180
    path = _write_sound(
        tmp_path / "long.flac", _tone(seconds, 8000, amplitude=0.3), 8000, subtype="PCM_16"
    )
    tracemalloc.start()
    try:
        count = 0
        last_end = 0.0
        for chunk in iter_audio_chunks(path, sample_rate=16000, chunk_s=0.5):
            count += 1
            last_end = chunk.end
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == seconds * 2
    assert last_end == pytest.approx(seconds, abs=0.01)
    assert peak < 2_000_000, f"peak traced memory {peak} bytes: the file was not streamed"


# --- broken input ----------------------------------------------------------------------


def _broken_files(tmp_path: Path, samples: Path) -> dict[str, Path]:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    data = (samples / "face_speech.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    return {
        "no such file": tmp_path / "missing.mp4",
        "file is empty": empty,
        "not a readable media file": text,
        "truncated or corrupt": truncated,
        "is a folder": tmp_path,
    }


@pytest.mark.parametrize("call", ["probe", "video", "audio"])
def test_broken_files_give_one_line_media_errors(tmp_path: Path, samples: Path, call: str):
    for problem, path in _broken_files(tmp_path, samples).items():
        with pytest.raises(MediaError) as caught:
            if call == "probe":
                probe(path)
            elif call == "video":
                next(iter_video_frames(path))
            else:
                next(iter_audio_chunks(path))
        message = str(caught.value)
        assert problem in message, message
        assert str(path) in message
        assert "\n" not in message


def test_truncated_stream_yields_what_it_can_then_says_how_far(tmp_path: Path, samples: Path):
    whole = _faststart_copy(samples / "face_speech.mp4", tmp_path / "faststart.mp4")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert probe(cut).duration == pytest.approx(7.36, abs=0.05)  # the index still says 7.4 s

    frames = []
    with pytest.raises(TruncatedMediaError) as caught:
        for frame in iter_video_frames(cut):
            frames.append(frame)
    assert len(frames) > 10
    error = caught.value
    assert frames[-1].t < error.decoded_until < 7.0
    assert error.expected == pytest.approx(7.36, abs=0.1)
    assert "truncated" in str(error) and "\n" not in str(error)

    chunks = []
    with pytest.raises(TruncatedMediaError) as caught_audio:
        for chunk in iter_audio_chunks(cut):
            chunks.append(chunk)
    assert chunks and caught_audio.value.decoded_until == pytest.approx(chunks[-1].end)
    assert caught_audio.value.decoded_until < 6.0


def test_intact_faststart_copy_is_not_truncated(tmp_path: Path, samples: Path) -> None:
    whole = _faststart_copy(samples / "face_speech.mp4", tmp_path / "faststart.mp4")
    assert len(list(iter_video_frames(whole, fps=5))) > 30
    assert read_audio(whole).duration == pytest.approx(7.36, abs=0.05)


def _mp3_with_cover_art(
    path: Path, seconds: float = 2.0, rate: int = 16000, cover: bool = True
) -> Path:
    """An MP3 of a tone, with a cover picture (a PNG stream marked ``attached_pic``, as
    taggers store album art) unless ``cover`` is False; written with PyAV (its wheels
    carry the LAME encoder): no ffmpeg command needed."""
    import av

    with av.open(str(path), "w") as out:
        audio = out.add_stream("libmp3lame", rate=rate, layout="mono")
        if cover:
            picture = out.add_stream("png")
            picture.width, picture.height, picture.pix_fmt = 64, 64, "rgb24"
            picture.disposition = av.stream.Disposition.attached_pic
            red = np.zeros((64, 64, 3), np.uint8)
            red[..., 0] = 255
            image = av.VideoFrame.from_ndarray(red, format="rgb24")
            for packet in [*picture.encode(image), *picture.encode(None)]:
                out.mux(packet)
        frame = av.AudioFrame.from_ndarray(
            _tone(seconds, rate)[None, :], format="fltp", layout="mono"
        )
        frame.sample_rate = rate
        for packet in [*audio.encode(frame), *audio.encode(None)]:
            out.mux(packet)
    return path


def test_cover_art_is_not_video(tmp_path: Path) -> None:
    import av

    path = _mp3_with_cover_art(tmp_path / "song.mp3")
    with av.open(str(path)) as container:  # the file does hold a picture stream
        assert [s.type for s in container.streams] == ["audio", "video"]
    info = probe(path)
    assert info.has_audio and not info.has_video
    assert read_audio(path).duration == pytest.approx(2.0, abs=0.1)
    with pytest.raises(MediaError, match="no video stream"):
        next(iter_video_frames(path))
