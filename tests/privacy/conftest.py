"""Fixtures for the privacy tests: a network guard, and a user's folders made fresh and
watched. (The whole-run tests of `emoapp live` and the window run in a fresh process
under emoapp.testing.guardedrun with isolated folders of their own, so these fixtures
need not move to tests/conftest.py.)"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from emoapp.testing.filewatch import IsolatedDirs, isolated_user_dirs
from emoapp.testing.netguard import NetworkGuard


@pytest.fixture
def no_network() -> Iterator[NetworkGuard]:
    """Fail the test on any network connection or name lookup, in any thread."""
    with NetworkGuard() as guard:
        yield guard


@pytest.fixture
def user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> IsolatedDirs:
    """Fresh HOME, XDG config/cache/data/state, temp and working folders, with this
    process pointed at them (environment, temp folder, working folder)."""
    dirs = isolated_user_dirs(tmp_path / "user")
    for name in IsolatedDirs.UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in dirs.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tempfile, "tempdir", str(dirs.tmp))
    monkeypatch.chdir(dirs.work)
    return dirs
