"""The core must import without Qt, torch or transformers (DESIGN.md habit 1), and
`emoapp --help` must not pull torch in (habit 7)."""

import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("torch", "transformers", "PySide6", "cv2", "librosa")


def _imported_after(code: str) -> set[str]:
    probe = (
        f"{code}\nimport sys\nprint('MODS:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    line = [x for x in out.splitlines() if x.startswith("MODS:")][-1]
    return {m for m in line.removeprefix("MODS:").split(",") if m}


def test_core_imports_without_heavy_packages():
    code = "\n".join(
        f"import emoapp.core.{m}"
        for m in ("messages", "taxonomy", "labelmap", "fusion", "clock", "errors")
    )
    assert _imported_after(code) == set()


def test_help_does_not_import_torch_or_qt():
    code = (
        "import contextlib, io\nfrom emoapp.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])"
    )
    assert _imported_after(code) == set()


def test_no_qt_import_outside_ui():
    offenders = []
    for path in (REPO / "emoapp").rglob("*.py"):
        if "ui" in path.relative_to(REPO / "emoapp").parts:
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(
                ("import PySide6", "from PySide6", "import pyqtgraph", "from pyqtgraph")
            ):
                offenders.append(f"{path.relative_to(REPO)}: {stripped}")
    assert offenders == []
