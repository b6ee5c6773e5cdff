#!/usr/bin/env python3
"""Generate the small sample media used by emoapp's demos and tests.

Run from the repository root::

    .venv/bin/python resources/make_samples.py

Everything is written to ``resources/samples/`` (existing files are
overwritten, so the script is idempotent). The output is deterministic for a
given set of tool versions (espeak-ng, FFmpeg/PyAV, libx264).

What it makes
-------------
``speech.wav``
    English speech synthesised with espeak-ng (voice ``en-us``), resampled to
    16 kHz mono 16-bit PCM. Each sentence is synthesised separately, trimmed of
    espeak's own leading/trailing silence and concatenated with known gaps
    (0.7 s of silence at the start and between sentences 2 and 3), so the
    sentence boundaries are known exactly and a voice-activity detector has
    silence to skip.
``speech.srt`` / ``speech.vtt``
    Transcript of ``speech.wav``, one cue per sentence, with the measured
    start/end times.
``face_speech.mp4``
    480x360, 15 fps, H.264 (libx264, yuv420p) + AAC (mono, 16 kHz) video as
    long as ``speech.wav``, with ``speech.wav`` as its audio. The picture is
    NASA's astronaut portrait of Eileen Collins shipped with scikit-image
    (``skimage.data.astronaut()``), with a slow pan/zoom of a few pixels so
    consecutive frames differ. The face stays fully visible (~115 px wide) so
    OpenCV's Haar frontal-face cascade can detect it.
``face_only.mp4``
    The first 2.5 s of the same animation, video only (no audio stream).
``transcript.txt``
    A one-line plain-text sample for the text modality.
``call.flac`` / ``call.vtt``
    A made-up customer-service call: two espeak-ng voices, the agent on the left
    channel and the customer on the right, taking turns (one turn overlaps the one
    before by 0.4 s), 8 kHz stereo FLAC (telephone bandwidth, lossless, so each
    channel holds one voice only). ``call.vtt`` is its WebVTT transcript with
    ``<v Agent>`` / ``<v Customer>`` tags and the measured turn times. Make only
    these two with ``make_samples.py call``.

Licences
--------
* Astronaut image: NASA photograph (Eileen Collins), public domain; distributed
  with scikit-image as ``skimage.data.astronaut``.
* Speech: synthesised by espeak-ng from text written for this project; the
  generated audio and transcripts belong to this project (espeak-ng's GPL
  licence covers the program, not the audio it produces).

Requirements: numpy, soundfile, av (PyAV), scikit-image and the ``espeak-ng``
command-line program. If opencv (``cv2``) is installed, a self-check reports
the Haar-cascade face-detection rate on the generated videos.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from skimage import data as skdata

OUT_DIR = Path(__file__).resolve().parent / "samples"

SAMPLE_RATE = 16000
VOICE = "en-us"
WPM = 150  # espeak-ng speaking rate (words per minute)

# (sentence, silence in seconds inserted *before* the sentence)
SENTENCES: list[tuple[str, float]] = [
    ("I am so happy to see you today.", 0.7),
    ("This is wonderful news.", 0.3),
    ("But I am worried about tomorrow.", 0.7),
]
TRAILING_SILENCE = 0.5

TRANSCRIPT_TEXT = (
    "I can't believe they cancelled the concert, I was really looking "
    "forward to it and now I feel so disappointed."
)

CALL_RATE = 8000
CALL_VOICES = {"Agent": ("en-gb+f3", 160), "Customer": ("en-us+m3", 150)}
# (speaker, text, gap before the turn in seconds; negative: overlaps the turn before)
CALL_TURNS: list[tuple[str, str, float]] = [
    ("Agent", "Thank you for calling. How can I help you today?", 0.5),
    ("Customer", "My order never arrived, and I am really angry about it.", 0.4),
    ("Agent", "I am so sorry to hear that. Let me check your order.", 0.5),
    ("Customer", "This is the third time. It is terrible, awful service.", -0.4),
    ("Agent", "I understand. I have sent a new parcel with free express delivery.", 0.6),
    ("Customer", "Oh, that is great. Thank you so much, I am happy now.", 0.5),
    ("Agent", "Wonderful. Have a lovely day.", 0.4),
]

WIDTH, HEIGHT = 480, 360
FPS = 15
FACE_ONLY_SECONDS = 2.5

# Face box found by the Haar cascade in the full 512x512 image: x=177, y=66,
# w=h=95. The crop window below always contains it with a margin.
CROP_W0, CROP_H0 = 400, 300  # 4:3 crop at the start (zooms in to ~384x288)
ZOOM = 0.04  # fraction the crop shrinks by over the clip
CROP_X0, CROP_Y0 = 24.0, 8.0  # crop origin at the start
PAN_X, PAN_Y = 12.0, 6.0  # pixels the crop origin moves over the clip


# --------------------------------------------------------------------- audio
def _espeak(text: str, voice: str = VOICE, wpm: int = WPM) -> tuple[np.ndarray, int]:
    """Synthesise *text* with espeak-ng; return float32 mono samples, rate."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        sys.exit("espeak-ng not found; install it (apt-get install espeak-ng)")
    wav = subprocess.run(
        [exe, "-v", voice, "-s", str(wpm), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    # espeak-ng writes an unknown length in the streamed WAV header; read raw.
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return audio, rate


def _trim(audio: np.ndarray, rate: int, thresh: float = 0.01) -> np.ndarray:
    """Cut leading/trailing near-silence, keeping 20 ms of margin."""
    loud = np.flatnonzero(np.abs(audio) > thresh)
    if loud.size == 0:
        return audio
    margin = int(0.02 * rate)
    return audio[max(loud[0] - margin, 0) : loud[-1] + margin + 1]


def _resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited FFT resampling (deterministic, numpy only)."""
    if src == dst:
        return audio
    pad = src // 10  # zero padding to keep the FFT's wrap-around silent
    x = np.concatenate([np.zeros(pad), audio.astype(np.float64), np.zeros(pad)])
    n_out = round(len(x) * dst / src)
    spec = np.fft.rfft(x)
    keep = n_out // 2 + 1
    out_spec = np.zeros(keep, dtype=complex)
    m = min(keep, len(spec))
    out_spec[:m] = spec[:m]
    y = np.fft.irfft(out_spec, n_out) * (n_out / len(x))
    cut = round(pad * dst / src)
    return y[cut : len(y) - cut]


def make_speech() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Return 16 kHz int16 speech and [(start_s, end_s, sentence), ...]."""
    pieces: list[np.ndarray] = []
    cues: list[tuple[float, float, str]] = []
    pos = 0
    for text, gap in SENTENCES:
        silence = np.zeros(round(gap * SAMPLE_RATE))
        pieces.append(silence)
        pos += len(silence)
        audio, rate = _espeak(text)
        speech = _resample(_trim(audio, rate), rate, SAMPLE_RATE)
        cues.append((pos / SAMPLE_RATE, (pos + len(speech)) / SAMPLE_RATE, text))
        pieces.append(speech)
        pos += len(speech)
    pieces.append(np.zeros(round(TRAILING_SILENCE * SAMPLE_RATE)))
    sig = np.concatenate(pieces)
    sig = sig / max(np.max(np.abs(sig)), 1e-9) * 0.9  # peak-normalise to -1 dBFS
    return np.round(sig * 32767).astype(np.int16), cues


def _ts(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_subtitles(cues: list[tuple[float, float, str]]) -> None:
    srt, vtt = [], ["WEBVTT", ""]
    for i, (start, end, text) in enumerate(cues, 1):
        srt += [str(i), f"{_ts(start, ',')} --> {_ts(end, ',')}", text, ""]
        vtt += [f"{_ts(start, '.')} --> {_ts(end, '.')}", text, ""]
    (OUT_DIR / "speech.srt").write_text("\n".join(srt), encoding="utf-8")
    (OUT_DIR / "speech.vtt").write_text("\n".join(vtt), encoding="utf-8")


def make_call() -> list[tuple[float, float, str, str]]:
    """Write ``call.flac`` (agent left, customer right) and ``call.vtt``; return the
    turns as [(start_s, end_s, speaker, text), ...]."""
    speakers = list(CALL_VOICES)
    turns: list[tuple[int, float, np.ndarray, str, str]] = []
    pos = 0
    for speaker, text, gap in CALL_TURNS:
        voice, wpm = CALL_VOICES[speaker]
        audio, rate = _espeak(text, voice, wpm)
        speech = _resample(_trim(audio, rate), rate, CALL_RATE)
        start = max(0, pos + round(gap * CALL_RATE))
        turns.append((speakers.index(speaker), start, speech, speaker, text))
        pos = start + len(speech)
    total = pos + round(0.5 * CALL_RATE)
    channels = np.zeros((total, len(speakers)))
    for channel, start, speech, _, _ in turns:
        channels[int(start) : int(start) + len(speech), channel] += speech
    channels = channels / max(np.max(np.abs(channels)), 1e-9) * 0.9
    pcm = np.round(channels * 32767).astype(np.int16)
    sf.write(OUT_DIR / "call.flac", pcm, CALL_RATE, format="FLAC", subtype="PCM_16")
    cues = [
        (start / CALL_RATE, (start + len(speech)) / CALL_RATE, speaker, text)
        for _, start, speech, speaker, text in turns
    ]
    vtt = ["WEBVTT", ""]
    for start, end, speaker, text in cues:
        vtt += [f"{_ts(start, '.')} --> {_ts(end, '.')}", f"<v {speaker}>{text}", ""]
    (OUT_DIR / "call.vtt").write_text("\n".join(vtt), encoding="utf-8")
    print(f"call.flac: {total / CALL_RATE:.2f} s, {CALL_RATE} Hz stereo (Agent left)")
    for start, end, speaker, text in cues:
        print(f"  {start:6.3f} - {end:6.3f}  {speaker:8s} {text}")
    return cues


# --------------------------------------------------------------------- video
def _frames(n_frames: int, total_frames: int):
    """Yield RGB crops of the astronaut with a slow pan/zoom, as av frames."""
    image = np.ascontiguousarray(skdata.astronaut())  # 512x512x3 uint8
    for i in range(n_frames):
        t = i / max(total_frames - 1, 1)
        # smooth ease-in/out so the motion is slow at both ends
        s = 0.5 - 0.5 * np.cos(np.pi * t)
        scale = 1.0 - ZOOM * s
        cw = round(CROP_W0 * scale / 4) * 4
        ch = cw * 3 // 4
        x0 = round(CROP_X0 + PAN_X * s)
        y0 = round(CROP_Y0 + PAN_Y * s)
        crop = np.ascontiguousarray(image[y0 : y0 + ch, x0 : x0 + cw])
        frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
        # subpixel differences come from the varying crop size being scaled
        yield frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p", interpolation="BICUBIC")


def write_video(path: Path, seconds: float, audio: np.ndarray | None) -> None:
    """Encode the pan/zoom animation (and optional int16 audio) to *path*.

    Reproducibility note: with PyAV 18's bundled FFmpeg, libx264 output
    stopped being bit-for-bit reproducible once FFmpeg's AAC encoder had run
    earlier in the same process (the input frames were identical; the cause is
    not known). So all H.264 is encoded before any AAC: the video stream is
    finished before the audio stream here, and main() writes face_only.mp4
    before face_speech.mp4. The muxer still interleaves the packets in the
    file.
    """
    n_frames = round(seconds * FPS)
    with av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        v = container.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        v.codec_context.time_base = Fraction(1, FPS)
        v.codec_context.options = {
            "crf": "26",
            "preset": "slow",
            "tune": "stillimage",
            "threads": "1",  # single-threaded x264 for reproducible output
            "flags": "+bitexact",
        }
        a = None
        if audio is not None:
            a = container.add_stream("aac", rate=SAMPLE_RATE)
            a.codec_context.layout = "mono"
            a.codec_context.bit_rate = 32000
            a.codec_context.time_base = Fraction(1, SAMPLE_RATE)

        for i, frame in enumerate(_frames(n_frames, n_frames)):
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            container.mux(v.encode(frame))
        container.mux(v.encode(None))

        if a is not None and audio is not None:
            pcm = audio.astype(np.float32) / 32768.0
            fs = a.codec_context.frame_size or 1024
            for start in range(0, len(pcm), fs):
                chunk = pcm[start : start + fs]
                if len(chunk) < fs:
                    chunk = np.pad(chunk, (0, fs - len(chunk)))
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate = SAMPLE_RATE
                af.pts = start
                af.time_base = Fraction(1, SAMPLE_RATE)
                container.mux(a.encode(af))
            container.mux(a.encode(None))


# --------------------------------------------------------------- self-check
def check_video(path: Path, expect_audio: bool, expect_seconds: float) -> None:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        has_audio = bool(c.streams.audio)
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        dur = float(c.duration / av.time_base) if c.duration else float("nan")
        info = (
            f"{path.name}: {len(frames)} frames {vs.codec_context.name} "
            f"{vs.codec_context.width}x{vs.codec_context.height} "
            f"@{vs.average_rate} fps, container {dur:.2f} s"
        )
        if has_audio:
            ast = c.streams.audio[0]
            info += (
                f", audio {ast.codec_context.name} "
                f"{ast.codec_context.sample_rate} Hz "
                f"{ast.codec_context.layout.name}"
            )
    print(info)
    assert has_audio == expect_audio, f"{path.name}: audio stream mismatch"
    assert abs(len(frames) / FPS - expect_seconds) < 0.1, "unexpected frame count"
    if has_audio:
        with av.open(str(path)) as c:
            n = sum(f.samples for f in c.decode(audio=0))
        print(f"  decoded audio: {n / SAMPLE_RATE:.2f} s")
        assert abs(n / SAMPLE_RATE - expect_seconds) < 0.2, "audio duration off"
    assert any(np.any(frames[0] != f) for f in frames[1:]), "frames are static"

    try:
        import cv2
    except ImportError:
        print("  (opencv not installed: skipping face-detection check)")
        return
    cascade_dir = cv2.data.haarcascades  # type: ignore[attr-defined]
    cascade = cv2.CascadeClassifier(cascade_dir + "haarcascade_frontalface_default.xml")
    hits, sizes = 0, []
    for f in frames:
        gray = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
        faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
        if len(faces):
            hits += 1
            sizes.append(int(max(w for _, _, w, _ in faces)))
    rate = hits / len(frames)
    size = f", face width {min(sizes)}-{max(sizes)} px" if sizes else ""
    print(f"  Haar frontal-face detection: {hits}/{len(frames)} frames ({rate:.0%}){size}")
    assert rate >= 0.8, "face not detected in most frames"


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    make_call()
    if sys.argv[1:] == ["call"]:
        return

    pcm, cues = make_speech()
    seconds = len(pcm) / SAMPLE_RATE
    sf.write(OUT_DIR / "speech.wav", pcm, SAMPLE_RATE, subtype="PCM_16")
    write_subtitles(cues)
    (OUT_DIR / "transcript.txt").write_text(TRANSCRIPT_TEXT + "\n", encoding="utf-8")
    # face_only first: see the note in write_video about reproducibility.
    write_video(OUT_DIR / "face_only.mp4", FACE_ONLY_SECONDS, None)
    write_video(OUT_DIR / "face_speech.mp4", seconds, pcm)

    print(f"speech.wav: {seconds:.2f} s, {SAMPLE_RATE} Hz mono 16-bit")
    for start, end, text in cues:
        print(f"  {start:6.3f} - {end:6.3f}  {text}")
    check_video(OUT_DIR / "face_speech.mp4", True, seconds)
    check_video(OUT_DIR / "face_only.mp4", False, FACE_ONLY_SECONDS)

    print("sizes:")
    for p in sorted(OUT_DIR.iterdir()):
        if p.is_file():
            print(f"  {p.name:18s} {p.stat().st_size / 1024:7.1f} KiB")
            assert p.stat().st_size < 1_000_000, f"{p.name} is too large"


if __name__ == "__main__":
    main()
