"""The bad-input corpus, driven through the real CLI (``emoapp analyze``).

Every input is generated on the spot (tests/hardening/corpus.py). Each either works
(exit 0 and a valid timeline) or fails cleanly (exit 2 and exactly one
``emoapp: error: ...`` line naming the problem); a truncated recording does both (the
rows up to the cut, then the one-line error). None may print a traceback, hang, or crash.

The table runs in-process (``emoapp.cli.main``) with the tiny transformers models; the
cases that reach the no-download baseline encoders' own code (odd audio, odd frames,
odd text) run again with ``--profile baseline``; a few run as ``python -m emoapp`` in a
subprocess with a timeout, to show that the real process exits and stays quiet.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from emoapp.cli import main
from tests.hardening import corpus
from tests.hardening.checks import (
    assert_no_traceback,
    assert_one_line_error,
    assert_valid_rows,
    read_rows,
)

REPO = Path(__file__).resolve().parents[2]

Outcome = Literal["rows", "error", "partial"]
"""rows: exit 0 and a valid timeline; error: exit 2, one error line, no timeline;
partial: the rows before the problem, then exit 2 and one error line."""


class Corpus:
    """Makes corpus files on demand into one folder, each at most once per session."""

    def __init__(self, folder: Path, samples: Path) -> None:
        self.folder = folder
        self.samples = samples

    def file(self, name: str, make: Callable[[Path], object]) -> str:
        path = self.folder / name
        if not path.exists():
            make(path)
        return str(path)

    # Shared sources: a 3 s cut of the face+speech sample, and the sample speech.
    @property
    def clip(self) -> Path:
        return Path(
            self.file(
                "clip.mp4", lambda p: corpus.cut_video(p, self.samples / "face_speech.mp4", 3)
            )
        )

    @property
    def speech(self) -> Path:
        return self.samples / "speech.wav"

    def text_file(self, name: str, content: bytes) -> str:
        return self.file(name, lambda p: p.write_bytes(content))


@dataclass(frozen=True)
class Case:
    id: str
    args: Callable[[Corpus], list[str]]
    """The arguments after ``emoapp analyze`` (``--out`` is added)."""
    expect: Outcome
    says: str = ""
    """A regex the error line must match (error and partial), or stderr must (rows)."""
    baseline: bool = False
    """Run again with the no-download baseline encoders."""


def _srt(name: str, cues: Callable[[], list[tuple[str, str, str]]], encoding: str = "utf-8"):
    return lambda c: [
        str(c.clip),
        "--transcript",
        c.file(name, lambda p: corpus.write_srt(p, cues(), encoding)),
    ]


CASES: list[Case] = [
    # --- files that are missing, empty, cut off, or not media ------------------------------
    Case("missing-file", lambda c: [str(c.folder / "nope.mp4")], "error", "no such file"),
    Case("a-folder", lambda c: [str(c.folder)], "error", "folder"),
    Case(
        "empty-mp4", lambda c: [c.file("empty.mp4", lambda p: p.write_bytes(b""))], "error", "empty"
    ),
    Case(
        "empty-wav", lambda c: [c.file("empty.wav", lambda p: p.write_bytes(b""))], "error", "empty"
    ),
    Case(
        "wav-header-no-samples",
        lambda c: [c.file("header.wav", corpus.header_only_wav)],
        "error",
        "no audio|cannot decode|not a readable",
    ),
    Case(
        "mp4-first-kilobyte",
        lambda c: [c.file("head.mp4", lambda p: corpus.truncated(p, c.clip, 0.01))],
        "error",
        "truncated or corrupt",
    ),
    Case(
        "mp4-cut-in-half-index-at-end",
        lambda c: [c.file("half.mp4", lambda p: corpus.truncated(p, c.clip, 0.5))],
        "error",
        "truncated or corrupt",
    ),
    Case(
        "mp4-cut-in-half-faststart",
        lambda c: [
            c.file(
                "half-fast.mp4",
                lambda p: corpus.truncated(
                    p,
                    corpus.faststart_copy(c.folder / "fast.mp4", c.samples / "face_speech.mp4"),
                    0.5,
                ),
            )
        ],
        "partial",
        "truncated",
    ),
    Case(
        "mp4-3s-cut-to-first-keyframe",
        lambda c: [
            c.file(
                "keyframe-only.mp4",
                lambda p: corpus.truncated(
                    p, corpus.faststart_copy(c.folder / "fast-clip.mp4", c.clip), 0.5
                ),
            )
        ],
        "error",
        "could be decoded",
    ),
    Case(
        "wav-cut-in-half",
        lambda c: [c.file("half.wav", lambda p: corpus.truncated(p, c.speech, 0.5))],
        "partial",
        "truncated",
    ),
    Case(
        "random-bytes-as-mp4",
        lambda c: [c.file("noise.mp4", corpus.random_bytes)],
        "error",
        "not a readable media file",
    ),
    Case(
        "text-file-as-mp4",
        lambda c: [c.file("notes.mp4", lambda p: p.write_text("just some notes\n" * 50))],
        "error",
        "not a readable media file",
    ),
    # --- files named for something they are not ------------------------------------------------
    Case(
        "wav-named-mp4",
        lambda c: [c.file("speech-wav.mp4", lambda p: corpus.copy_as(p, c.speech))],
        "rows",
    ),
    Case(
        "mp4-named-wav",
        lambda c: [c.file("clip-mp4.wav", lambda p: corpus.copy_as(p, c.clip))],
        "rows",
    ),
    Case(
        "jpg-named-mp4",
        lambda c: [c.file("photo.mp4", lambda p: corpus.jpeg(p, c.samples / "face_only.mp4"))],
        "rows",
    ),
    # --- odd video ---------------------------------------------------------------------------
    Case(
        "mp4-without-any-stream",
        lambda c: [c.file("streamless.mp4", corpus.stream_less_video)],
        "error",
        "neither a video nor an audio stream",
    ),
    Case(
        "video-stream-without-frames-plus-audio",
        lambda c: [c.file("no-frames.mkv", corpus.video_without_frames)],
        "rows",
        "no video frame",
    ),
    Case(
        "one-pixel-frames",
        lambda c: [c.file("pixel.mkv", corpus.one_pixel_video)],
        "rows",
        baseline=True,
    ),
    Case(
        "4k-frames",
        lambda c: [c.file("uhd.mp4", lambda p: corpus.uhd_video(p, c.samples / "face_only.mp4"))],
        "rows",
        baseline=True,
    ),
    # --- odd audio ---------------------------------------------------------------------------
    *(
        Case(
            f"speech-{rate // 1000}khz-{channels}ch",
            lambda c, rate=rate, channels=channels: [
                c.file(
                    f"speech-{rate}-{channels}.wav",
                    lambda p: corpus.speech_at(p, c.speech, rate, channels),
                )
            ],
            "rows",
            baseline=rate == 96_000,
        )
        for rate, channels in ((8_000, 1), (44_100, 2), (96_000, 6))
    ),
    Case("silence", lambda c: [c.file("silence.wav", corpus.silent_wav)], "rows", baseline=True),
    Case(
        "full-scale-square",
        lambda c: [c.file("square.wav", corpus.clipped_wav)],
        "rows",
        baseline=True,
    ),
    Case(
        "float-wav-30pct-nan",
        lambda c: [c.file("nan.wav", lambda p: corpus.float_wav_with(p, float("nan"), 0.3))],
        "rows",
        baseline=True,
    ),
    Case(
        "float-wav-all-nan",
        lambda c: [c.file("all-nan.wav", lambda p: corpus.float_wav_with(p, float("nan"), 1.0))],
        "rows",
        baseline=True,
    ),
    Case(
        "float-wav-30pct-inf",
        lambda c: [c.file("inf.wav", lambda p: corpus.float_wav_with(p, float("inf"), 0.3))],
        "rows",
        baseline=True,
    ),
    Case(
        "float-wav-all-minus-inf",
        lambda c: [c.file("ninf.wav", lambda p: corpus.float_wav_with(p, float("-inf"), 1.0))],
        "rows",
    ),
    Case(
        "ten-millisecond-blip",
        lambda c: [c.file("blip.wav", corpus.blip_wav)],
        "rows",
        baseline=True,
    ),
    # --- odd text ----------------------------------------------------------------------------
    Case("text-empty", lambda c: ["--text", ""], "error", "nothing to analyse"),
    Case("text-whitespace", lambda c: ["--text", " \t\n\u3000 "], "error", "nothing to analyse"),
    Case("text-1mb", lambda c: ["--text", corpus.long_text()], "rows", baseline=True),
    Case("text-binary", lambda c: ["--text", corpus.binary_text()], "rows", baseline=True),
    Case("text-with-nul", lambda c: ["--text", "happy\x00\x00 day\x00"], "rows", baseline=True),
    Case(
        "text-lone-surrogates",
        # What Python makes of argv bytes that are not UTF-8 (surrogateescape).
        lambda c: ["--text", b"caf\xe9 \xff\xfe ok".decode("utf-8", "surrogateescape")],
        "rows",
        baseline=True,
    ),
    Case("text-arabic", lambda c: ["--text", corpus.ARABIC], "rows", baseline=True),
    Case("text-hebrew", lambda c: ["--text", corpus.HEBREW], "rows"),
    Case("text-bidi-controls", lambda c: ["--text", corpus.MIXED_BIDI], "rows"),
    Case("text-emoji-only", lambda c: ["--text", corpus.EMOJI], "rows", baseline=True),
    # --- transcripts -------------------------------------------------------------------------
    Case(
        "transcript-cp1252",
        _srt("cp1252.srt", lambda: corpus.GOOD_CUES, "cp1252"),
        "rows",
        "read as cp1252",
    ),
    Case("transcript-utf16-bom", _srt("utf16.srt", lambda: corpus.GOOD_CUES, "utf-16"), "rows"),
    Case(
        "transcript-utf16-no-bom",
        _srt("utf16le.srt", lambda: corpus.GOOD_CUES, "utf-16-le"),
        "error",
        "not a text file",
    ),
    Case(
        "transcript-random-binary",
        lambda c: [str(c.clip), "--transcript", c.file("noise.srt", corpus.random_bytes)],
        "error",
        "not a text file|no subtitle cue",
    ),
    Case(
        "transcript-empty",
        lambda c: [str(c.clip), "--transcript", c.text_file("empty.srt", b"")],
        "error",
        "empty",
    ),
    Case(
        "transcript-no-cues",
        lambda c: [str(c.clip), "--transcript", c.text_file("prose.srt", b"no cues here\n")],
        "error",
        "no subtitle cue",
    ),
    Case("transcript-overlapping", _srt("overlap.srt", corpus.cues_overlapping), "rows", "overlap"),
    Case(
        "transcript-negative-times", _srt("negative.srt", corpus.cues_negative), "rows", "negative"
    ),
    Case(
        "transcript-unordered",
        _srt("unordered.srt", corpus.cues_unordered),
        "rows",
        "not in time order",
    ),
    Case(
        "transcript-cue-at-99999-hours",
        _srt("future.srt", corpus.cues_far_future),
        "rows",
        "after the end of",
    ),
    Case(
        "transcript-alone-cue-at-99999-hours",
        lambda c: [
            "--transcript",
            c.file("future-alone.srt", lambda p: corpus.write_srt(p, corpus.cues_far_future())),
        ],
        "rows",
        "skipped",
    ),
    Case(
        "transcript-1mb-plain-text",
        lambda c: ["--transcript", c.text_file("long.txt", corpus.long_text().encode())],
        "rows",
    ),
    # --- options that would never finish -----------------------------------------------------
    Case("step-a-nanosecond", lambda c: [str(c.clip), "--step", "1e-9"], "error", "step"),
    Case("hop-a-microsecond", lambda c: [str(c.clip), "--hop", "1e-6"], "error", "hop"),
    Case("window-a-billion-seconds", lambda c: [str(c.clip), "--window", "1e9"], "error", "window"),
    # More frames per second than the video has: every frame, once.
    Case(
        "face-fps-a-million",
        lambda c: [c.file("pixel.mkv", corpus.one_pixel_video), "--face-fps", "1e6"],
        "rows",
    ),
]

_BASELINE_IDS = [case.id for case in CASES if case.baseline]


def _by_id(case_id: str) -> Case:
    return next(case for case in CASES if case.id == case_id)


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("corpus"), samples)


def _model_args(tiny_models: dict[str, Path]) -> list[str]:
    return [
        "--face-model",
        str(tiny_models["face"]),
        "--voice-model",
        str(tiny_models["voice"]),
        "--text-model",
        str(tiny_models["text"]),
    ]


def _check(case: Case, rc: int, stderr: str, out: Path) -> None:
    assert_no_traceback(stderr)
    if case.expect == "rows":
        assert rc == 0, f"exit {rc}:\n{stderr[-2000:]}"
        assert_valid_rows(read_rows(out))
        if case.says:
            assert any(re.search(case.says, line, re.IGNORECASE) for line in stderr.splitlines()), (
                f"stderr does not say {case.says!r}:\n{stderr[-2000:]}"
            )
    elif case.expect == "error":
        assert rc == 2, f"exit {rc}:\n{stderr[-2000:]}"
        assert_one_line_error(stderr, case.says)
        assert not out.exists(), "a failed run left a timeline behind"
    else:
        assert rc == 2, f"exit {rc}:\n{stderr[-2000:]}"
        assert_one_line_error(stderr, case.says)
        assert_valid_rows(read_rows(out))


def _run_in_process(
    args: list[str], out: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    capsys.readouterr()
    try:
        rc = main(["analyze", "--vad", "energy", "--face-fps", "1", *args, "--out", str(out)])
    except SystemExit as exit:  # argparse refusing an option: usage and one error line
        rc = int(exit.code or 0)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_with_tiny_models(
    case: Case,
    bad_corpus: Corpus,
    tiny_models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "timeline.jsonl"
    rc, stderr = _run_in_process([*case.args(bad_corpus), *_model_args(tiny_models)], out, capsys)
    _check(case, rc, stderr, out)


@pytest.mark.parametrize("case_id", _BASELINE_IDS)
def test_bad_input_with_baseline_encoders(
    case_id: str, bad_corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = _by_id(case_id)
    out = tmp_path / "timeline.jsonl"
    rc, stderr = _run_in_process([*case.args(bad_corpus), "--profile", "baseline"], out, capsys)
    _check(case, rc, stderr, out)


_SUBPROCESS_IDS = [
    "mp4-cut-in-half-faststart",
    "random-bytes-as-mp4",
    "video-stream-without-frames-plus-audio",
]


@pytest.mark.slow
def test_bad_inputs_in_a_real_process(
    bad_corpus: Corpus, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """``python -m emoapp analyze`` on a few corpus files, and with text given as bytes that
    are not UTF-8: each process ends (within the timeout) with exit 0 or 2, one clean
    error line at most, and no traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    runs: list[tuple[Case, Path, subprocess.Popen[bytes]]] = []
    for case_id in _SUBPROCESS_IDS:
        case = _by_id(case_id)
        out = tmp_path / f"{case.id}.jsonl"
        command = [
            sys.executable,
            "-m",
            "emoapp",
            "analyze",
            *case.args(bad_corpus),
            *_model_args(tiny_models),
            "--vad",
            "energy",
            "--face-fps",
            "1",
            "--out",
            str(out),
        ]
        runs.append(
            (
                case,
                out,
                subprocess.Popen(
                    command, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
                ),
            )
        )
    # Bytes that are not UTF-8 on the command line (a Latin-1 terminal, say).
    raw = Case("argv-latin1-bytes", lambda c: [], "rows")
    raw_out = tmp_path / "raw.jsonl"
    command_bytes = [
        os.fsencode(sys.executable),
        b"-m",
        b"emoapp",
        b"analyze",
        b"--text",
        b"caf\xe9 \xff ok",
        *(os.fsencode(a) for a in _model_args(tiny_models)),
        b"--out",
        os.fsencode(raw_out),
    ]
    runs.append(
        (
            raw,
            raw_out,
            subprocess.Popen(
                command_bytes, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
            ),
        )
    )
    try:
        for case, out, process in runs:
            _, err = process.communicate(timeout=120)
            stderr = err.decode("utf-8", "replace")
            _check(case, process.returncode, stderr, out)
    finally:
        for _, _, process in runs:
            if process.poll() is None:
                process.kill()
                process.wait()
