"""The privacy package is light: the CLI and the window can import it without waiting
for torch, transformers, OpenCV or Qt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "cv2", "PySide6", "librosa", "av", "sounddevice")


def test_privacy_modules_import_nothing_heavy():
    code = (
        "import sys\n"
        "import emoapp.privacy.consent, emoapp.privacy.audit, emoapp.privacy.export\n"
        "import emoapp.privacy.paths, emoapp.testing.netguard, emoapp.testing.filewatch\n"
        "import emoapp.testing.guardedrun\n"
        "from emoapp.privacy.consent import load_consent_text\n"
        "from emoapp.privacy.paths import stored_locations\n"
        "load_consent_text(); stored_locations()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
