"""Whole runs keep nothing and send nothing: `emoapp analyze`, `emoapp live --no-gui` and
the window, each over replayed files, make no network connection and write no file
besides the one they were told to (--out, or the window's settings file), in this
process and in a fresh one whose home, config, cache and temp folders are watched."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emoapp.cli import main
from emoapp.recorded.timeline import read_timeline
from emoapp.testing.filewatch import FileWatcher, IsolatedDirs, WriteRecorder
from emoapp.testing.guardedrun import GUARD_EXIT_STATUS
from emoapp.testing.netguard import NetworkGuard

REPO = Path(__file__).resolve().parents[2]
# Python's own bytecode cache is the interpreter's, not emoapp's.
BYTECODE = ("*/__pycache__", "*/__pycache__/*", "*.pyc")


def test_analyze_text_keeps_and_sends_nothing(user_dirs: IsolatedDirs, capsys):
    out = user_dirs.work / "rows.jsonl"
    with (
        FileWatcher(user_dirs.roots, allowed=[out]) as watch,
        WriteRecorder() as writes,
        NetworkGuard() as guard,
    ):
        status = main(["analyze", "--text", "hi", "--profile", "baseline", "--out", str(out), "-q"])
    assert status == 0
    assert guard.attempts == []
    assert watch.changes.created == [out]  # the one file asked for, nothing else
    assert not watch.unexpected and not watch.changes.modified
    assert writes.outside(allowed=[out], ignore=("/dev/*", *BYTECODE)) == []
    rows = read_timeline(out)
    assert len(rows) == 1 and rows[0]["modalities"]["text"]["model"] == "baseline/text-lexicon"
    assert "hi" not in json.dumps(rows[0]["modalities"])  # the text itself is not written
    assert capsys.readouterr().out == ""


def test_analyze_to_stdout_writes_no_file(user_dirs: IsolatedDirs, capsys):
    with FileWatcher(user_dirs.roots, check=True), NetworkGuard():
        assert main(["analyze", "--text", "I am so happy", "--profile", "baseline", "-q"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["fused"]["label"] == "happy"


def guarded_run(dirs: IsolatedDirs, args: list[str], writes: Path) -> subprocess.CompletedProcess:
    env = dirs.environ()
    env.pop("HF_HUB_OFFLINE", None)  # emoapp itself must not need the offline switch
    env.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "emoapp.testing.guardedrun", "--writes", str(writes), "--", *args],
        cwd=dirs.work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_a_whole_analysis_in_a_fresh_process_keeps_and_sends_nothing(
    tmp_path: Path, tiny_models: dict[str, Path], samples: Path
):
    """Video (face + voice) and a transcript, through all three encoders, with the hub's
    offline switch off: no connection, and --out is the only file written."""
    from emoapp.testing.filewatch import isolated_user_dirs

    dirs = isolated_user_dirs(tmp_path / "user")
    out = dirs.work / "timeline.csv"
    writes = tmp_path / "writes.json"  # outside the watched folders
    args = [
        "analyze",
        str(samples / "face_speech.mp4"),
        "--transcript",
        str(samples / "speech.srt"),
        "--face-model",
        str(tiny_models["face"]),
        "--voice-model",
        str(tiny_models["voice"]),
        "--text-model",
        str(tiny_models["text"]),
        "--out",
        str(out),
        "-q",
    ]
    # A CSV timeline keeps its header record (media fingerprint, models, options) beside
    # itself, written atomically through a temporary name.
    sidecar = out.with_name(out.name + ".header.json")
    sidecar_tmp = sidecar.with_name(sidecar.name + ".tmp")
    with FileWatcher(dirs.roots, allowed=[out, sidecar, sidecar_tmp]) as watch:
        result = guarded_run(dirs, args, writes)
    assert result.returncode == 0, result.stderr[-2000:]
    # Importing transformers' model code imports torch._dynamo, which creates an empty
    # folder torchinductor_<user> in the temp folder (torch's side effect, not emoapp's;
    # see the report of issue 5). It must stay empty; nothing else may appear.
    torch_dirs = [p for p in watch.changes.created if p.parent == dirs.tmp]
    assert all(p.name.startswith("torchinductor_") and p.is_dir() for p in torch_dirs)
    assert all(not any(p.iterdir()) for p in torch_dirs)
    assert sorted(p for p in watch.changes.created if p not in torch_dirs) == sorted([out, sidecar])
    assert not watch.changes.modified and not watch.changes.deleted
    events = json.loads(writes.read_text())
    written = {
        Path(e["path"])
        for e in events
        # tempfile's one-time probe that the temp folder is writable (it writes "blat"
        # to a random name and removes it at once) is the standard library's.
        if not e["where"].endswith("_get_default_tempdir")
    } - set(torch_dirs)
    assert written in ({out, sidecar, sidecar_tmp}, {out, sidecar}), written
    lines = out.read_text().splitlines()
    assert len(lines) > 5 and lines[0].startswith("t,fused_label")
    text = out.read_text() + sidecar.read_text()
    assert "face_speech" not in sidecar.read_text()  # no file name, no content
    for words in ("see you today", "wonderful news", "worried about tomorrow"):
        assert words not in text  # the transcript is analysed, never written


@pytest.mark.slow
def test_a_whole_analysis_with_speech_recognition_keeps_and_sends_nothing(
    tmp_path: Path, samples: Path
):
    """No transcript: the recording's speech is transcribed by the embedded recogniser
    in a fresh, watched process. No connection, --out is the only file written, and
    none of the words heard is in it."""
    from emoapp.encoders.asr import build_recognizer, resolve_recognizer
    from emoapp.encoders.heard import EMBEDDED_ASR
    from emoapp.encoders.vad import make_gate
    from emoapp.recorded.transcribe import transcribe_recording
    from emoapp.testing.filewatch import isolated_user_dirs

    dirs = isolated_user_dirs(tmp_path / "user")
    out = dirs.work / "timeline.jsonl"
    writes = tmp_path / "writes.json"
    args = ["analyze", str(samples / "speech.wav"), "--profile", "embedded",
            "--out", str(out)]  # fmt: skip
    with FileWatcher(dirs.roots, allowed=[out]) as watch:
        result = guarded_run(dirs, args, writes)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"with {EMBEDDED_ASR}" in result.stderr  # transcription was on
    torch_dirs = [p for p in watch.changes.created if p.parent == dirs.tmp]
    assert all(p.name.startswith("torchinductor_") and not any(p.iterdir()) for p in torch_dirs)
    assert [p for p in watch.changes.created if p not in torch_dirs] == [out]
    assert not watch.changes.modified and not watch.changes.deleted
    assert written_paths(writes) - set(torch_dirs) == {out}
    rows = read_timeline(out)
    assert any(row["modalities"]["text"] for row in rows)
    recognizer = build_recognizer(resolve_recognizer(EMBEDDED_ASR))  # type: ignore[arg-type]
    heard = transcribe_recording(samples / "speech.wav", recognizer, make_gate("silero"))
    # Phrases long enough not to turn up in a row by chance (a label, a model id).
    phrases = [e.text for e in heard.entries if len(e.text) >= 12]
    assert phrases
    text = out.read_text()
    for phrase in phrases:
        assert phrase not in text  # heard, analysed, never written


@pytest.mark.slow
def test_a_model_download_is_the_network_use_the_guard_catches(tmp_path: Path):
    """The control: asking for a download does try the hub, and the guard sees it."""
    from emoapp.testing.filewatch import isolated_user_dirs

    dirs = isolated_user_dirs(tmp_path / "user")
    result = guarded_run(
        dirs,
        ["analyze", "--text", "hi", "--text-model", "org/not-here", "--download", "-q"],
        tmp_path / "writes.json",
    )
    assert result.returncode == GUARD_EXIT_STATUS, result.stderr[-2000:]
    assert "network attempt" in result.stderr


def written_paths(events_file: Path, ignore: tuple[str, ...] = BYTECODE) -> set[Path]:
    """Paths a guarded run wrote or created, less the interpreter's and libraries'
    compiled-code caches (numba keeps librosa's next to its sources) and tempfile's
    one-time probe of the temp folder."""
    import fnmatch

    return {
        Path(e["path"])
        for e in json.loads(events_file.read_text())
        if e["action"] in ("open", "mkdir", "rename")
        and not e["where"].endswith("_get_default_tempdir")
        and not any(fnmatch.fnmatch(e["path"], pattern) for pattern in ignore)
    }


TRANSCRIPT_WORDS = ("cancelled the concert", "disappointed")


@pytest.mark.slow
def test_a_whole_live_run_in_a_fresh_process_keeps_and_sends_nothing(tmp_path: Path, samples: Path):
    """Replayed camera, microphone and typed text through `emoapp live --no-gui`: no
    connection, --out is the only file written, and the text itself is not in it."""
    from emoapp.testing.filewatch import isolated_user_dirs

    dirs = isolated_user_dirs(tmp_path / "user")
    out = dirs.work / "live.jsonl"
    writes = tmp_path / "writes.json"
    args = [
        "live", "--no-gui",
        "--camera", str(samples / "face_speech.mp4"), "--mic", str(samples / "speech.wav"),
        "--text-file", str(samples / "transcript.txt"), "--text-interval", "1",
        "--profile", "baseline", "--replay-speed", "3", "--out", str(out),
        "--status-every", "0",
    ]  # fmt: skip
    audit = dirs.config / "emoapp" / "audit.jsonl"  # the process's own config folder
    with FileWatcher(dirs.roots, allowed=[out, audit]) as watch:
        result = guarded_run(dirs, args, writes)
    assert result.returncode == 0, result.stderr[-2000:]
    assert watch.changes.created == [audit.parent, audit, out], watch.changes.describe()
    assert not watch.changes.modified and not watch.changes.deleted
    assert written_paths(writes) == {audit.parent, audit, out}
    (line,) = audit.read_text().splitlines()  # the export, and nothing of its content
    rows = read_timeline(out)
    assert json.loads(line) == {
        "time": json.loads(line)["time"], "event": "export", "kind": "live timeline",
        "path": str(out), "format": "jsonl", "scores": True, "text": False, "media": False,
        "rows": len(rows),
    }  # fmt: skip
    for modality in ("face", "voice", "text"):
        assert any(row["modalities"][modality] for row in rows), f"{modality} never counted"
    text = out.read_text()
    assert not any(words in text for words in TRANSCRIPT_WORDS)
    assert "consent" not in result.stderr  # replayed files need no consent


@pytest.mark.slow
def test_a_whole_window_run_in_a_fresh_process_keeps_and_sends_nothing(
    tmp_path: Path, samples: Path
):
    """The window (offscreen) over replayed camera, microphone and text with the baseline
    models, closed by --quit-after: no connection, and its settings file is the only file
    written (Qt's own writes included: the watched folders are the process's home,
    config, cache, data, state and temp folders)."""
    from emoapp.testing.filewatch import isolated_user_dirs

    dirs = isolated_user_dirs(tmp_path / "user")
    settings = dirs.work / "settings.ini"
    writes = tmp_path / "writes.json"
    args = [
        "--camera", str(samples / "face_speech.mp4"), "--mic", str(samples / "speech.wav"),
        "--text-file", str(samples / "transcript.txt"), "--text-interval", "1",
        "--profile", "baseline", "--loop", "--replay-speed", "2",
        "--settings-file", str(settings), "--quit-after", "6",
    ]  # fmt: skip
    with FileWatcher(dirs.roots, allowed=[settings]) as watch:
        result = guarded_run(dirs, args, writes)
    assert result.returncode == 0, result.stderr[-2000:]
    assert watch.changes.created == [settings], watch.changes.describe()
    assert not watch.changes.modified and not watch.changes.deleted
    assert written_paths(writes) <= {settings}  # Qt writes it natively, unseen here
    summary = re.search(
        r"(\d+) timeline rows in memory, (\d+) with an estimate "
        r"\(face in (\d+), voice in (\d+), text in (\d+)\)",
        result.stderr,
    )
    assert summary, result.stderr[-2000:]
    rows, fused, face, voice, text = map(int, summary.groups())
    assert rows > 5 and fused > 0 and face > 0 and voice > 0 and text > 0
    kept = settings.read_text()
    assert not any(words in kept for words in TRANSCRIPT_WORDS)
