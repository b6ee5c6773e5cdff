"""A timeline file says which run wrote it, and ``emoapp analyze --resume`` refuses to
continue it with another clip, other models or other options, naming the difference.

Runs use the sample speech recording and the baseline profile (no model download, a
second or so per run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emoapp.cli import main
from emoapp.recorded.runheader import (
    FORMAT,
    check_resume,
    differences,
    fingerprint,
    is_header,
    read_header,
    sidecar_path,
)
from emoapp.recorded.timeline import read_timeline

BASE = ["--profile", "baseline", "--vad", "energy", "-q"]


@pytest.fixture
def clip(samples: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "speech.wav"
    shutil.copy2(samples / "speech.wav", copy)
    return copy


def first_line(path: Path) -> str:
    return path.read_text(encoding="utf-8").splitlines()[0]


def _analyze(*argv: str) -> int:
    return main(["analyze", *argv])


def _cut(out: Path, keep_rows: int) -> None:
    """What an interrupted run leaves: the header record and the first rows."""
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[: 1 + keep_rows]), encoding="utf-8")


def test_the_header_record_comes_first_and_readers_skip_it(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    assert _analyze(str(clip), *BASE, "--out", str(out)) == 0
    first, *rest = [json.loads(line) for line in out.read_text().splitlines()]
    assert is_header(first) and not any(is_header(r) for r in rest)
    header = first["header"]
    assert header["format"] == FORMAT and header["written_by"] == "emoapp analyze"
    assert header["media"] == fingerprint(clip)
    assert clip.name not in first_line(out)  # no file name or path, no content
    assert header["models"]["voice"]["model"].startswith("baseline/")
    assert header["models"]["face"] is None  # a wav has no video: no face model ran
    assert header["options"]["step_s"] == 0.5 and header["options"]["vad"] == "energy"
    assert header["options"]["fusion"]["rule"] == "weighted"
    rows = read_timeline(out)
    assert rows == rest and all("t" in r for r in rows)


def test_a_matching_resume_continues(clip: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "t.jsonl"
    assert _analyze(str(clip), *BASE, "--out", str(out)) == 0
    whole = out.read_text()
    _cut(out, 3)
    assert _analyze(str(clip), *BASE, "--out", str(out), "--resume") == 0
    assert out.read_text() == whole  # the same header, the same rows, none twice


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("other-clip", "media.size"),
        ("edited-clip", "media.sha256_tail"),
        ("step", "options.step_s: 0.5 in the file, 0.25 now"),
        ("fusion", "options.fusion.rule"),
        ("model", "models.voice.model"),
        ("vad", 'options.vad: "energy" in the file, "off" now'),
    ],
)
def test_a_resume_that_does_not_match_is_refused_naming_the_difference(
    change: str, named: str, clip: Path, samples: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "t.jsonl"
    assert _analyze(str(clip), *BASE, "--out", str(out)) == 0
    _cut(out, 3)
    before = out.read_bytes()
    media, extra = str(clip), list(BASE)
    if change == "other-clip":
        media = str(samples / "face_speech.mp4")
    elif change == "edited-clip":
        with clip.open("r+b") as fh:  # same size, last bytes changed
            fh.seek(-4, 2)
            fh.write(b"\0\1\2\3")
    elif change == "step":
        extra += ["--step", "0.25"]
    elif change == "fusion":
        extra += ["--fusion-rule", "product"]
    elif change == "model":
        extra = ["--voice-model", "none", "--profile", "baseline", "-q", "--vad", "energy"]
        extra += ["--text", "hello"]
    elif change == "vad":
        extra = [e if e != "energy" else "off" for e in extra]
    capsys.readouterr()
    assert _analyze(media, *extra, "--out", str(out), "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"emoapp: error: --resume: {out} was written by another run")
    assert named in err
    assert "without --resume" in err
    assert out.read_bytes() == before  # nothing appended, nothing cut


def test_a_file_without_a_header_is_not_resumed(clip: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "old.jsonl"
    assert _analyze(str(clip), *BASE, "--out", str(out)) == 0
    rows = out.read_text().splitlines(keepends=True)[1:4]  # as an older emoapp wrote it
    out.write_text("".join(rows))
    capsys.readouterr()
    assert _analyze(str(clip), *BASE, "--out", str(out), "--resume") == 2
    assert "has no header record" in capsys.readouterr().err
    assert out.read_text() == "".join(rows)


def test_csv_keeps_its_header_record_in_a_sidecar(clip: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "t.csv"
    assert _analyze(str(clip), *BASE, "--out", str(out)) == 0
    sidecar = sidecar_path(out)
    assert sidecar == tmp_path / "t.csv.header.json"
    header = read_header(out)
    assert header is not None and header["header"]["media"] == fingerprint(clip)
    assert out.read_text().startswith("t,")  # the CSV itself is rows only
    whole = out.read_text()
    lines = whole.splitlines(keepends=True)
    out.write_text("".join(lines[:4]))
    assert _analyze(str(clip), *BASE, "--out", str(out), "--resume") == 0
    assert out.read_text() == whole
    out.write_text("".join(lines[:4]))
    capsys.readouterr()
    assert _analyze(str(clip), *BASE, "--step", "1", "--out", str(out), "--resume") == 2
    assert "options.step_s" in capsys.readouterr().err
    sidecar.unlink()
    assert _analyze(str(clip), *BASE, "--out", str(out), "--resume") == 2
    assert "has no header record" in capsys.readouterr().err


def test_rows_on_stdout_carry_no_header(clip: Path, capsys) -> None:
    assert _analyze(str(clip), *BASE) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all("t" in json.loads(line) for line in lines)


def test_differences_name_every_changed_key() -> None:
    stored = {"header": {"media": {"size": 1}, "options": {"step_s": 0.5}, "written_by": "a"}}
    same = {"header": {"media": {"size": 1}, "options": {"step_s": 0.5}, "written_by": "b"}}
    assert differences(stored, same) == []
    changed = {"header": {"media": {"size": 2}, "options": {"step_s": 1}}}
    assert differences(stored, changed) == [
        "media.size: 1 in the file, 2 now",
        "options.step_s: 0.5 in the file, 1 now",
    ]


def test_check_resume_of_a_file_that_is_missing_its_header(tmp_path: Path) -> None:
    from emoapp.core.errors import EmoappError

    out = tmp_path / "t.jsonl"
    out.write_text('{"t": 0.0}\n')
    with pytest.raises(EmoappError, match="no header record"):
        check_resume(out, {"header": {}})
