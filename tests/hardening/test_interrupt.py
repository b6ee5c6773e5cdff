"""Interrupted work: ``emoapp analyze`` stopped by Ctrl-C (SIGINT) or SIGTERM part-way.

A real ``python -m emoapp analyze`` process on a 30 s recording (the sample looped) is
signalled as soon as its first rows are on disk. It must exit with 130 (SIGINT) or 143
(SIGTERM), print no traceback, and leave a timeline in which every line is a whole row.
Then the run is either restarted (the file is replaced by a complete timeline) or
continued with ``--resume`` (rows are appended after the last one); either way the result
matches an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emoapp.cli import main
from tests.hardening import corpus
from tests.hardening.checks import (
    assert_no_traceback,
    assert_one_line_error,
    assert_valid_rows,
    read_csv_rows,
    read_rows,
)

REPO = Path(__file__).resolve().parents[2]
LONG_S = 30.0
# Cheap settings: the point is the interruption, not the models.
FAST = ["--face-fps", "0.5", "--hop", "1", "--vad", "energy", "--step", "0.5"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Path:
    folder = tmp_path_factory.mktemp("long")
    return corpus.looped_video(folder / "long.mp4", samples / "face_speech.mp4", LONG_S)


def _models(tiny_models: dict[str, Path]) -> list[str]:
    return [f"--{m}-model={tiny_models[m]}" for m in ("face", "voice", "text")]


def _complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "emoapp", "analyze", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _interrupt_after_rows(
    process: subprocess.Popen[bytes], out: Path, rows: int, signum: int
) -> tuple[int, str]:
    """Send ``signum`` once ``out`` holds ``rows`` whole rows (after its header record);
    the exit status and stderr."""
    deadline = time.monotonic() + 180
    try:
        while _complete_lines(out) < rows + 1:  # + the header record
            assert process.poll() is None, "the analysis ended before it could be interrupted"
            assert time.monotonic() < deadline, "no rows within 180 s"
            time.sleep(0.02)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def reference_file(
    long_video: Path, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The timeline file of an uninterrupted run (header record, then rows)."""
    out = tmp_path_factory.mktemp("reference") / "reference.jsonl"
    assert (
        main(["analyze", str(long_video), *FAST, *_models(tiny_models), "-q", "--out", str(out)])
        == 0
    )
    return out


@pytest.fixture(scope="module")
def reference(reference_file: Path) -> list[dict]:
    """The rows of an uninterrupted run, to compare interrupted ones with."""
    rows = read_rows(reference_file)
    assert_valid_rows(rows)
    assert rows[-1]["t"] >= LONG_S - 1.0
    return rows


def _header_line(reference_file: Path) -> str:
    """The header record the run wrote (what a resumed run checks)."""
    first = reference_file.read_text(encoding="utf-8").splitlines()[0]
    assert "t" not in json.loads(first) and "header" in json.loads(first)
    return first + "\n"


def _assert_same_rows(got: list[dict], want: list[dict]) -> None:
    """Same times, labels and probabilities (to float noise: batches differ on a resume)."""
    assert [r["t"] for r in got] == [r["t"] for r in want]
    for mine, theirs in zip(got, want, strict=True):
        assert (mine["fused"] is None) == (theirs["fused"] is None), f"t={mine['t']}"
        if mine["fused"] is not None:
            for label, p in theirs["fused"]["probs"].items():
                assert math.isclose(mine["fused"]["probs"][label], p, abs_tol=1e-4), (
                    f"t={mine['t']} {label}"
                )
        for name, entry in theirs["modalities"].items():
            assert (mine["modalities"][name] is None) == (entry is None), f"t={mine['t']} {name}"


def test_sigterm_leaves_whole_rows_and_resume_continues(
    long_video: Path,
    tiny_models: dict[str, Path],
    reference: list[dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "timeline.jsonl"
    args = [str(long_video), *FAST, *_models(tiny_models), "--out", str(out)]
    rc, stderr = _interrupt_after_rows(_start(args), out, 3, signal.SIGTERM)

    assert rc == 143, stderr
    assert_no_traceback(stderr)
    assert "emoapp: terminated" in stderr
    assert "--resume" in stderr
    written = read_rows(out)  # every line a whole, parseable row
    assert_valid_rows(written)
    assert 3 <= len(written) < len(reference)
    _assert_same_rows(written, reference[: len(written)])

    # A writer killed mid-row leaves half a line: --resume cuts it off before appending.
    with out.open("a", encoding="utf-8") as file:
        file.write('{"t": 99.5, "fused": {"lab')
    capsys.readouterr()
    assert main(["analyze", *args, "--resume"]) == 0
    stderr = capsys.readouterr().err
    assert f"resuming {out} after t={written[-1]['t']:g} s" in stderr
    resumed = read_rows(out)
    assert_valid_rows(resumed)
    _assert_same_rows(resumed, reference)


@pytest.mark.parametrize("kept", [26, 41], ids=["after-12.5s", "after-20s"])
def test_resume_from_any_row_matches_an_uninterrupted_run(
    kept: int, long_video: Path, tiny_models: dict[str, Path], reference: list[dict],
    reference_file: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """Rows a resumed run adds are those of an uninterrupted run, whichever row the first
    run stopped after, including rows that depend on outputs from before the cut (a face
    frame every 2 s, a voice window every second)."""
    out = tmp_path / "t.jsonl"
    out.write_text(
        _header_line(reference_file) + "".join(json.dumps(row) + "\n" for row in reference[:kept])
    )
    args = [str(long_video), *FAST, *_models(tiny_models), "-q", "--out", str(out), "--resume"]
    assert main(["analyze", *args]) == 0
    _assert_same_rows(read_rows(out), reference)


def test_sigint_on_csv_then_a_restart_replaces_the_file(
    long_video: Path,
    tiny_models: dict[str, Path],
    reference: list[dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "timeline.csv"
    args = [str(long_video), *FAST, *_models(tiny_models), "--out", str(out)]
    rc, stderr = _interrupt_after_rows(_start(args), out, 4, signal.SIGINT)

    assert rc == 130, stderr
    assert_no_traceback(stderr)
    assert "emoapp: interrupted" in stderr
    partial = read_csv_rows(out)  # header, then whole rows only
    assert 3 <= len(partial) < len(reference)
    assert [float(r["t"]) for r in partial] == [r["t"] for r in reference[: len(partial)]]

    capsys.readouterr()
    assert main(["analyze", *args, "-q"]) == 0
    restarted = read_csv_rows(out)
    assert [float(r["t"]) for r in restarted] == [r["t"] for r in reference]


def test_resume_of_a_finished_timeline_adds_nothing(
    long_video: Path,
    tiny_models: dict[str, Path],
    reference: list[dict],
    reference_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "done.jsonl"
    out.write_text(_header_line(reference_file) + "".join(json.dumps(r) + "\n" for r in reference))
    before = out.read_bytes()
    assert (
        main(
            [
                "analyze",
                str(long_video),
                *FAST,
                *_models(tiny_models),
                "--out",
                str(out),
                "--resume",
            ]
        )
        == 0
    )
    assert out.read_bytes() == before
    assert "appended 0 rows" in capsys.readouterr().err


def test_resume_refuses_what_it_cannot_continue(
    samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    media = str(samples / "speech.wav")
    not_a_timeline = tmp_path / "notes.jsonl"
    not_a_timeline.write_text("these are my notes\n")
    cases = [
        (["--out", "-"], "needs --out FILE"),
        (["--out", str(not_a_timeline)], "not a JSON-lines timeline"),
    ]
    wrong_header = tmp_path / "other.csv"
    wrong_header.write_text("a,b,c\n1,2,3\n")
    cases.append((["--out", str(wrong_header)], "not a timeline CSV"))
    for extra, says in cases:
        capsys.readouterr()
        assert main(["analyze", media, "--profile", "baseline", "--resume", *extra]) == 2
        assert_one_line_error(capsys.readouterr().err, says)
    assert not_a_timeline.read_text() == "these are my notes\n"
