"""The user guide builds with ``mkdocs build --strict``: a page missing from the nav, a
broken link or a missing anchor fails the suite, and so CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("mkdocs")
pytest.importorskip("material")


def test_the_guide_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file()


def test_the_readme_links_only_to_files_that_exist() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    missing = []
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        if not (REPO / target).exists():
            missing.append(target)
    assert missing == []


def test_the_readme_stays_a_front_door() -> None:
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 300
