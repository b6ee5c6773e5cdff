"""Decoding recorded media (video and audio files) into timestamped frames and chunks.

PyAV (FFmpeg) does the decoding, so anything FFmpeg reads works: mp4/mkv/webm/avi video
with or without an audio track, and wav/flac/mp3/ogg/m4a audio. Everything is streamed:
frames and chunks are produced as they are decoded, so an hour-long file is never held in
memory.

Timestamps are media time: seconds from the start of the file (the container's start time
is subtracted, so MPEG-TS files with a non-zero first timestamp also start at 0).

Broken input:

* a missing, empty, unreadable or non-media file raises :class:`~emoapp.core.errors.MediaError`
  with one line naming the file and the problem (from :func:`probe` and from the iterators,
  which open the file themselves);
* a file that stops early (cut off in transfer, a recording that was killed) yields every
  frame or chunk that could be decoded, then raises :class:`TruncatedMediaError`, a
  ``MediaError`` carrying ``decoded_until`` (seconds) and ``expected`` (the declared
  duration). A consumer that writes as it goes has therefore already written everything
  before the cut when the error arrives. A file is judged truncated when reading fails
  mid-way or when the decoded stream ends well short (by more than 1 s and 5 %) of the
  duration the file declares. Undecodable single packets in the middle are skipped with a
  logged warning (FFmpeg itself conceals such errors in players).

Mono downmix averages the channels (after resampling each one with
``av.AudioResampler``): FFmpeg's own stereo-to-mono matrix sums the channels at -3 dB,
which changes levels and can exceed 1.0 for loud, correlated channels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoapp.core.errors import MediaError, MissingDependencyError
from emoapp.core.messages import AudioChunk, VideoFrame

if TYPE_CHECKING:
    import av.container

log = logging.getLogger(__name__)

_TRUNCATION_MIN_S = 1.0
"""A stream is truncated when it ends more than this many seconds early ..."""
_TRUNCATION_FRACTION = 0.05
"""... and more than this fraction of its declared duration early (container durations
of some formats, e.g. VBR mp3 without a header, are estimates)."""
_MAX_CONSECUTIVE_DECODE_ERRORS = 50
"""After this many undecodable packets in a row the rest of the file is treated as lost."""


class TruncatedMediaError(MediaError):
    """A media file ended (or became unreadable) before its declared end.

    Raised after everything before the cut has been yielded. ``decoded_until`` is the media
    time, in seconds, up to which the stream was decoded; ``expected`` is the declared
    duration when the file states one.
    """

    def __init__(
        self, path: Path, kind: str, decoded_until: float, expected: float | None, why: str = ""
    ) -> None:
        self.path = path
        self.kind = kind
        self.decoded_until = decoded_until
        self.expected = expected
        of = f" of {expected:.1f} s" if expected is not None else ""
        detail = f" ({why})" if why else ""
        super().__init__(
            f"{path}: file is truncated or corrupt: {kind} decoding stopped at "
            f"{decoded_until:.1f} s{of}{detail}"
        )


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds. ``width``/``height`` are 0 and ``fps`` None without video;
    ``sample_rate``/``channels`` are None without audio. ``duration`` is in seconds, None
    when the file does not say."""

    path: Path
    duration: float | None
    has_video: bool
    has_audio: bool
    width: int
    height: int
    fps: float | None
    sample_rate: int | None
    channels: int | None


# --- opening -------------------------------------------------------------------------


def _import_av() -> Any:
    try:
        import av
    except ImportError as error:  # pragma: no cover - av is a core dependency
        raise MissingDependencyError("av", "decoding media files") from error
    return av


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not a media file")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise MediaError(f"{path}: cannot read: {error.strerror or error}") from error
    if size == 0:
        raise MediaError(f"{path}: file is empty")


def _open(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading, turning every failure into a one-line MediaError."""
    av = _import_av()
    _check_file(path)
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as error:
        if _looks_like_mp4(path):
            what = "an MP4/MOV file that cannot be read: truncated or corrupt"
        else:
            what = "not a readable media file (truncated, corrupt, or not audio/video)"
        raise MediaError(f"{path}: {what}: {_describe_av_error(error)}") from error
    except OSError as error:
        raise MediaError(f"{path}: cannot read: {error.strerror or error}") from error


def _looks_like_mp4(path: Path) -> bool:
    """True when the file starts like an ISO media file (an ``ftyp`` box)."""
    try:
        with path.open("rb") as file:
            head = file.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp"


def _describe_av_error(error: BaseException) -> str:
    # PyAV messages end with ": '<path>'"; the caller already names the file.
    message = _one_line(error)
    strerror = getattr(error, "strerror", None)
    return str(strerror) if strerror else message


def _is_attached_picture(stream: Any) -> bool:
    """Cover art in an mp3/m4a shows up as a one-frame video stream; it is not video."""
    av = _import_av()
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):  # older PyAV without Disposition flags
        return False


def _video_stream(container: Any) -> Any | None:
    for stream in container.streams.video:
        if not _is_attached_picture(stream):
            return stream
    return None


def _audio_stream(container: Any) -> Any | None:
    streams = container.streams.audio
    return streams[0] if streams else None


def _container_start(container: Any) -> float:
    av = _import_av()
    start = container.start_time
    return float(start) / av.time_base if start is not None and start > 0 else 0.0


def _stream_duration(container: Any, stream: Any) -> float | None:
    av = _import_av()
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    return None


def _wav_declared_duration(path: Path) -> float | None:
    """The duration a RIFF/WAVE header declares (its ``data`` chunk size), or None.

    FFmpeg derives a WAV's duration from the file size, so a WAV cut off in transfer
    would pass as a shorter recording; the header still says how long it was meant to be.
    Sizes of 0 and 0xFFFFFFFF (streamed WAVs, written before their length was known) and
    anything that is not a plain RIFF/WAVE file give None.
    """
    import struct

    try:
        with path.open("rb") as file:
            head = file.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            byte_rate = 0
            while True:
                chunk = file.read(8)
                if len(chunk) < 8:
                    return None
                name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt = file.read(size + (size & 1))
                    if len(fmt) < 12:
                        return None
                    byte_rate = struct.unpack("<I", fmt[8:12])[0]
                elif name == b"data":
                    if not byte_rate or size in (0, 0xFFFFFFFF):
                        return None
                    return size / byte_rate
                else:
                    file.seek(size + (size & 1), 1)
    except OSError:
        return None


def _is_short(decoded_until: float, expected: float | None) -> bool:
    if expected is None:
        return False
    missing = expected - decoded_until
    return missing > _TRUNCATION_MIN_S and missing > _TRUNCATION_FRACTION * expected


def probe(path: str | Path) -> MediaInfo:
    """Describe a media file without decoding it.

    Raises MediaError (one line) for a missing, empty, unreadable or non-media file, and
    for a file with neither an audio nor a video stream.
    """
    path = Path(path)
    with _open(path) as container:
        video = _video_stream(container)
        audio = _audio_stream(container)
        if video is None and audio is None:
            raise MediaError(f"{path}: has neither a video nor an audio stream")
        durations = [d for d in (_stream_duration(container, s) for s in (video, audio) if s) if d]
        av = _import_av()
        if container.duration is not None and container.duration > 0:
            duration: float | None = float(container.duration) / av.time_base
        else:
            duration = max(durations) if durations else None
        fps: float | None = None
        width = height = 0
        if video is not None:
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fps = float(rate) if rate else None
            width, height = int(video.codec_context.width), int(video.codec_context.height)
        sample_rate = channels = None
        if audio is not None:
            sample_rate = int(audio.codec_context.sample_rate) or None
            channels = int(audio.codec_context.channels) or None
        return MediaInfo(
            path=path,
            duration=duration,
            has_video=video is not None,
            has_audio=audio is not None,
            width=width,
            height=height,
            fps=fps,
            sample_rate=sample_rate,
            channels=channels,
        )


# --- decoding --------------------------------------------------------------------------


def _decode(container: Any, stream: Any, path: Path, kind: str) -> Iterator[Any]:
    """Decoded frames of ``stream``; raises _ReadStopped when reading fails mid-way.

    A packet that does not decode is skipped (logged); after many in a row the rest of the
    file counts as unreadable.
    """
    av = _import_av()
    consecutive_errors = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as error:
            raise _ReadStopped(_describe_av_error(error)) from error
        try:
            frames = packet.decode()
        except av.FFmpegError as error:
            consecutive_errors += 1
            if consecutive_errors >= _MAX_CONSECUTIVE_DECODE_ERRORS:
                raise _ReadStopped(_describe_av_error(error)) from error
            log.warning("%s: skipped an undecodable %s packet: %s", path, kind, error)
            continue
        consecutive_errors = 0
        yield from frames


class _ReadStopped(Exception):
    """Internal: reading the file failed before its end (carries FFmpeg's reason)."""


def iter_video_frames(
    path: str | Path, fps: float | None = None, start: float = 0.0
) -> Iterator[VideoFrame]:
    """Decode the video stream of ``path`` into RGB frames, one at a time.

    ``t`` is the frame's media time (its pts) in seconds, ``index`` its index in the stream
    (counted from the first frame; estimated from pts and the frame rate after a seek).
    With ``fps``, frames are subsampled on a regular grid ``start + k / fps``: the first
    frame at or after each grid point is kept, so at most ``fps`` frames per second come
    out. With ``start`` > 0 the file is seeked and earlier frames are skipped.

    Raises MediaError when the file has no video stream or cannot be opened, and
    TruncatedMediaError after the last decodable frame of a truncated file.
    """
    path = Path(path)
    if fps is not None and fps <= 0:
        raise ValueError("fps must be positive")
    container = _open(path)
    try:
        stream = _video_stream(container)
        if stream is None:
            raise MediaError(f"{path}: has no video stream")
        stream.thread_type = "AUTO"
        time_base: Fraction = stream.time_base
        offset = _container_start(container)
        rate = stream.average_rate or stream.guessed_rate
        frame_s = 1.0 / float(rate) if rate else 0.0
        expected = _stream_duration(container, stream)
        seeked = start > 0
        if seeked:
            av = _import_av()
            try:
                container.seek(int((start + offset) / time_base), stream=stream, backward=True)
            except av.FFmpegError as error:
                raise MediaError(
                    f"{path}: cannot seek to {start:.2f} s: {_describe_av_error(error)}"
                ) from error
        next_due = start
        count = 0
        decoded_until: float | None = None
        try:
            for frame in _decode(container, stream, path, "video"):
                if frame.pts is None:
                    t = count * frame_s
                else:
                    t = float(frame.pts * time_base) - offset
                index = round(t / frame_s) if (seeked and frame_s) else count
                count += 1
                decoded_until = t + frame_s
                if t < start - 1e-6:
                    continue
                if fps is not None:
                    if t < next_due - 1e-6:
                        continue
                    next_due = start + (math.floor((t - start) * fps + 1e-6) + 1) / fps
                image = frame.to_ndarray(format="rgb24")
                yield VideoFrame(t=t, image=image, index=index, source=str(path))
        except _ReadStopped as stopped:
            why = str(stopped)
            if decoded_until is None:
                raise MediaError(f"{path}: cannot decode video: {why}") from stopped
            raise TruncatedMediaError(path, "video", decoded_until, expected, why) from stopped
        if decoded_until is None:
            if start > 0 and expected is not None and start >= expected:
                return
            raise MediaError(f"{path}: no video frame could be decoded")
        if _is_short(decoded_until, expected):
            raise TruncatedMediaError(path, "video", decoded_until, expected)
    finally:
        container.close()


def _downmix(frame_array: np.ndarray) -> np.ndarray:
    """Planar (channels, n) float array -> mono (n,) float32 in [-1, 1]."""
    samples = frame_array.mean(axis=0) if frame_array.shape[0] > 1 else frame_array[0]
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def iter_audio_chunks(
    path: str | Path, sample_rate: int = 16000, chunk_s: float = 0.5, channel: int | None = None
) -> Iterator[AudioChunk]:
    """Decode the audio track of ``path`` into mono float32 chunks of ``chunk_s`` seconds.

    Any input rate and channel count is resampled to ``sample_rate`` and downmixed to mono
    (channel average); with ``channel`` (0-based), that channel alone is kept instead (a
    call recorded one speaker per channel; a file with fewer channels raises MediaError).
    ``t`` is the media time of each chunk's first sample; consecutive chunks are contiguous
    (``next.t == previous.end`` up to float rounding) and all are exactly ``chunk_s`` long
    except the last, which holds the rest. Memory stays bounded by a chunk plus one decoded
    frame, whatever the file's length. Samples before media time 0
    (codec priming with negative timestamps) are dropped.

    Raises MediaError when the file has no audio stream or cannot be opened, and
    TruncatedMediaError after the last decodable chunk of a truncated file.
    """
    path = Path(path)
    if sample_rate <= 0 or chunk_s <= 0:
        raise ValueError("sample_rate and chunk_s must be positive")
    av = _import_av()
    chunk_n = max(1, round(chunk_s * sample_rate))
    container = _open(path)
    try:
        stream = _audio_stream(container)
        if stream is None:
            raise MediaError(f"{path}: has no audio track")
        offset = _container_start(container)
        expected = _stream_duration(container, stream)
        if container.format.name == "wav":
            expected = _wav_declared_duration(path) or expected
        resampler: Any = None
        layout_name: str | None = None
        t0: float | None = None  # media time of the first kept sample
        emitted = 0  # samples emitted so far (chunk times are t0 + emitted / sample_rate)
        pending: list[np.ndarray] = []
        pending_n = 0
        skip = 0  # samples still to drop (before media time 0)

        def take(arrays: list[np.ndarray]) -> Iterator[AudioChunk]:
            nonlocal emitted, pending_n, skip
            for array in arrays:
                if channel is None:
                    mono = _downmix(array)
                elif channel < array.shape[0]:
                    mono = np.clip(array[channel], -1.0, 1.0).astype(np.float32, copy=False)
                else:
                    raise MediaError(
                        f"{path}: has {array.shape[0]} audio channel(s); no channel {channel + 1}"
                    )
                if skip:
                    dropped = min(skip, len(mono))
                    mono = mono[dropped:]
                    skip -= dropped
                if not len(mono):
                    continue
                pending.append(mono)
                pending_n += len(mono)
                while pending_n >= chunk_n:
                    joined = np.concatenate(pending)
                    assert t0 is not None
                    yield AudioChunk(
                        t=t0 + emitted / sample_rate,
                        samples=joined[:chunk_n].copy(),
                        sample_rate=sample_rate,
                        source=str(path),
                    )
                    emitted += chunk_n
                    rest = joined[chunk_n:]
                    pending[:] = [rest] if len(rest) else []
                    pending_n = len(rest)

        def resample(frame: Any) -> list[np.ndarray]:
            nonlocal resampler, layout_name
            out: list[np.ndarray] = []
            if frame is not None and frame.layout.name != layout_name:
                if resampler is not None:  # the layout changed mid-stream: flush, restart
                    out += [f.to_ndarray() for f in resampler.resample(None)]
                layout_name = frame.layout.name
                resampler = av.AudioResampler(format="fltp", layout=layout_name, rate=sample_rate)
            if resampler is None:
                return out
            out += [f.to_ndarray() for f in resampler.resample(frame)]
            return out

        why = ""
        try:
            for frame in _decode(container, stream, path, "audio"):
                if t0 is None:
                    first = float(frame.time) - offset if frame.time is not None else 0.0
                    if first < 0:
                        skip = round(-first * sample_rate)
                        first = 0.0
                    t0 = first
                yield from take(resample(frame))
        except _ReadStopped as stopped:
            why = str(stopped)
            if t0 is None:
                raise MediaError(f"{path}: cannot decode audio: {why}") from stopped
        if t0 is None:
            raise MediaError(f"{path}: no audio could be decoded")
        yield from take(resample(None))
        if pending_n:
            yield AudioChunk(
                t=t0 + emitted / sample_rate,
                samples=np.concatenate(pending),
                sample_rate=sample_rate,
                source=str(path),
            )
            emitted += pending_n
        decoded_until = t0 + emitted / sample_rate
        if why or _is_short(decoded_until, expected):
            raise TruncatedMediaError(path, "audio", decoded_until, expected, why)
    finally:
        container.close()


def read_audio(path: str | Path, sample_rate: int = 16000) -> AudioChunk:
    """The whole audio track of ``path`` as one mono chunk (for short files and tests).

    Raises MediaError like :func:`iter_audio_chunks`, including TruncatedMediaError for a
    truncated file (reading a whole file means wanting all of it).
    """
    chunks = list(iter_audio_chunks(path, sample_rate=sample_rate, chunk_s=60.0))
    samples = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)
    return AudioChunk(
        t=chunks[0].t if chunks else 0.0,
        samples=samples,
        sample_rate=sample_rate,
        source=str(path),
    )
