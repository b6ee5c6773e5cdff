"""Where ``emoapp analyze`` puts rows without ``--out``: stdout for a pipe or a file (and
for a lone ``--text``), a private temporary file on a terminal, whose path is printed
after the summary: the first run reads as a table, not a wall of JSON."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from emoapp.cli import main
from emoapp.commands.analyze import default_out
from emoapp.privacy.paths import terminal_timeline_path


def test_default_out_rule(tmp_path: Path):
    media = tmp_path / "clip.mp4"
    assert default_out("rows.jsonl", media, stdout_is_terminal=True) == "rows.jsonl"
    assert default_out("-", media, stdout_is_terminal=True) == "-"
    assert default_out(None, media, stdout_is_terminal=False) == "-"
    assert default_out(None, None, stdout_is_terminal=True) == "-"  # --text alone: one row
    chosen = Path(default_out(None, media, stdout_is_terminal=True))
    assert chosen.name == "clip.timeline.jsonl"
    assert chosen.parent.name.startswith("emoapp-")


def test_terminal_timelines_get_a_new_private_folder_each(tmp_path: Path):
    a, b = terminal_timeline_path("x.wav"), terminal_timeline_path("x.wav")
    try:
        assert a.parent != b.parent
        assert stat.S_IMODE(a.parent.stat().st_mode) == 0o700
        assert not a.exists()  # the folder is made; the file is the writer's
    finally:
        a.parent.rmdir()
        b.parent.rmdir()


def test_a_recording_on_a_terminal_writes_a_file_and_prints_no_rows(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code = main(["analyze", str(samples / "speech.wav"), "--profile", "baseline", "--asr", "off"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert out == ""  # no JSON rows on the terminal
    written = list(tmp_path.glob("emoapp-*/speech.timeline.jsonl"))
    assert len(written) == 1
    assert f"rows to {written[0]}" in err
    lines = written[0].read_text(encoding="utf-8").splitlines()
    assert "header" in json.loads(lines[0]) and len(lines) > 2


def test_resume_still_needs_a_file(samples: Path, capfd):
    assert main(["analyze", str(samples / "speech.wav"), "--resume"]) == 2
    assert "--resume needs --out FILE" in capfd.readouterr().err
