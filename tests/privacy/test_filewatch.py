"""The file watcher and the write recorder: they see what a run creates, changes or
deletes, and tell the allowed places (consent, audit, explicit outputs) from the rest."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest

from emoapp.testing.filewatch import (
    FileWatcher,
    IsolatedDirs,
    WriteRecorder,
    compare,
    isolated_user_dirs,
    snapshot,
)


def test_snapshots_see_created_modified_and_deleted(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("a")
    (tmp_path / "change.txt").write_text("a")
    (tmp_path / "gone.txt").write_text("a")
    (tmp_path / "__pycache__").mkdir()
    before = snapshot([tmp_path], ignore=["__pycache__"])
    (tmp_path / "change.txt").write_text("bb")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "new.bin").write_bytes(b"x")
    (tmp_path / "__pycache__" / "m.pyc").write_bytes(b"x")
    changes = compare(before, snapshot([tmp_path], ignore=["__pycache__"]))
    assert changes.created == [tmp_path / "sub", tmp_path / "sub" / "new.bin"]
    assert changes.modified == [tmp_path / "change.txt"]
    assert changes.deleted == [tmp_path / "gone.txt"]
    assert "created: " in changes.describe() and bool(changes)
    assert not compare(before, before)


def test_the_watcher_allows_consent_audit_and_explicit_outputs(user_dirs: IsolatedDirs):
    out = user_dirs.work / "timeline.jsonl"
    with FileWatcher(user_dirs.roots, allowed=[out]) as watch:
        config = user_dirs.config / "emoapp"
        config.mkdir()
        (config / "consent.json").write_text("{}")
        (config / "audit.jsonl").write_text("")
        out.write_text("rows")
        (user_dirs.cache / "stray.bin").write_bytes(b"frame")
        (user_dirs.tmp / "chunk.wav").write_bytes(b"audio")
    assert len(watch.changes.created) == 6
    assert watch.unexpected.created == [user_dirs.cache / "stray.bin", user_dirs.tmp / "chunk.wav"]
    with pytest.raises(AssertionError, match=r"stray\.bin"):
        watch.assert_clean()


def test_check_mode_raises_on_leaving(user_dirs: IsolatedDirs):
    with (
        pytest.raises(AssertionError, match="files changed outside"),
        FileWatcher(user_dirs.roots, check=True),
    ):
        (user_dirs.home / ".emoapp-cache").write_text("x")
    with FileWatcher(user_dirs.roots, check=True):
        pass


def test_isolated_dirs_point_the_process_at_fresh_folders(user_dirs: IsolatedDirs):
    from emoapp.privacy.paths import config_dir

    assert Path.home() == user_dirs.home
    assert config_dir() == user_dirs.config / "emoapp"
    assert Path(tempfile.gettempdir()) == user_dirs.tmp
    assert Path.cwd() == user_dirs.work
    env = user_dirs.environ({"PATH": "/bin", "HF_HOME": "/elsewhere", "EMOAPP_CONFIG_DIR": "/x"})
    assert env["PATH"] == "/bin" and "HF_HOME" not in env and "EMOAPP_CONFIG_DIR" not in env
    assert env["XDG_CACHE_HOME"] == str(user_dirs.cache)


def test_isolated_user_dirs_makes_every_folder(tmp_path: Path):
    dirs = isolated_user_dirs(tmp_path / "u")
    assert all(folder.is_dir() for folder in dirs.roots)
    assert len(set(dirs.roots)) == 7


def test_the_write_recorder_sees_writes_anywhere_in_the_process(tmp_path: Path, user_dirs):
    outside = tmp_path / "outside"
    out = tmp_path / "export.jsonl"
    with WriteRecorder() as writes:
        (tmp_path / "read.txt").write_text("r")  # opened for writing: recorded
        (tmp_path / "read.txt").read_text()  # reading is not
        outside.mkdir()
        fd = os.open(outside / "raw.bin", os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.replace(outside / "raw.bin", outside / "moved.bin")
        (outside / "moved.bin").unlink()
        worker = threading.Thread(
            target=lambda: (outside / "thread.txt").write_text("t"), name="encoder"
        )
        worker.start()
        worker.join()
        out.write_text("x")
        config = user_dirs.config / "emoapp"
        config.mkdir()
        (config / "audit.jsonl").write_text("")
    (tmp_path / "after.txt").write_text("not recorded")
    recorded = writes.paths()
    assert recorded == [
        tmp_path / "read.txt",
        outside,
        outside / "raw.bin",
        outside / "moved.bin",
        outside / "thread.txt",
        out,
        user_dirs.config / "emoapp",
        user_dirs.config / "emoapp" / "audit.jsonl",
    ]
    assert [e.action for e in writes.events if e.path == outside / "moved.bin"] == [
        "rename",
        "remove",
    ]
    assert next(e for e in writes.events if e.path.name == "thread.txt").thread == "encoder"
    assert writes.outside(allowed=[out]) == [
        tmp_path / "read.txt",
        outside,
        outside / "raw.bin",
        outside / "moved.bin",
        outside / "thread.txt",
    ]
