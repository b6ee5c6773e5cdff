"""The PySide6 reference-count guard: a window emitting signals and calling Qt for hours
must not abort the interpreter (PySide6 6.12.0 on Python 3.11 leaks references to None
and True on every such call)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_many_emissions_do_not_abort_the_interpreter():
    code = (
        "import emoapp.ui\n"
        "from PySide6.QtCore import QObject, Signal\n"
        "class Emitter(QObject):\n"
        "    ping = Signal()\n"
        "e = Emitter()\n"
        "for _ in range(200_000):\n"
        "    e.ping.emit()\n"
        "    e.setObjectName('emitter')\n"
        "import gc; gc.collect()\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip() == "ok"
