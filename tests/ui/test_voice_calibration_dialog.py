"""The "calibrate to me" dialog: shows the passage and what is stored; stores and deletes
through the callables it is given; shows why a recording was refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoapp.core.errors import EmoappError
from emoapp.privacy.voice_calibration import CALIBRATION_PASSAGE
from emoapp.ui.voice_calibration_dialog import VoiceCalibrationDialog


def test_dialog_shows_stores_and_deletes(qtbot, tmp_path: Path):
    stored: dict[str, Any] = {}

    def record(path: Path) -> str:
        if path.name == "silence.wav":
            raise EmoappError("no speech found in the calibration recording")
        stored.update(path=str(tmp_path / "cal.json"), seconds=15.0, model_id="m", created="now")
        return "Stored."

    def delete() -> bool:
        had = bool(stored)
        stored.clear()
        return had

    dialog = VoiceCalibrationDialog(record, delete, lambda: dict(stored) or None)
    qtbot.addWidget(dialog)
    assert dialog.passage.text() == CALIBRATION_PASSAGE
    assert dialog.status.text() == "Nothing stored."
    assert not dialog.delete_button.isEnabled()

    assert not dialog.store_from(tmp_path / "silence.wav")
    assert "Not stored: no speech" in dialog.status.text()
    assert not stored

    assert dialog.store_from(tmp_path / "me.wav")
    assert "15.0 s of speech for m" in dialog.status.text()
    assert dialog.delete_button.isEnabled()

    dialog.delete_button.click()
    assert not stored and dialog.status.text() == "Nothing stored."
    assert not dialog.delete_button.isEnabled()
