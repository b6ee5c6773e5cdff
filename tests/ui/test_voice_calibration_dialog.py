"""The "calibrate to me" dialog: shows the passage and what is stored; stores and deletes
through the callables it is given; shows why a recording was refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from emoapp.core.errors import EmoappError
from emoapp.privacy.voice_calibration import CALIBRATION_PASSAGE
from emoapp.ui.voice_calibration_dialog import VoiceCalibrationDialog


def seconds_left(text: str) -> float:
    """The countdown's seconds in the status ("… 14 s left"); infinite when it shows none."""
    found = re.search(r"(\d+) s left", text)
    return float(found.group(1)) if found else float("inf")


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


def test_work_in_the_background_keeps_the_buttons_off_until_it_ends(qtbot, tmp_path: Path):
    started: list[str] = []
    stored: dict[str, Any] = {}

    def record(path: Path) -> None:
        started.append(path.name)  # the owner works on it elsewhere and reports back

    dialog = VoiceCalibrationDialog(
        record, lambda: False, lambda: dict(stored) or None, record_mic=lambda: None
    )
    qtbot.addWidget(dialog)
    dialog.set_mic(False, "choose a microphone")
    assert not dialog.record_button.isEnabled()
    assert dialog.record_button.toolTip() == "choose a microphone"
    dialog.set_mic(True)
    assert dialog.record_button.isEnabled()

    assert dialog.store_from(tmp_path / "me.wav")
    assert started == ["me.wav"] and dialog.busy
    assert not dialog.use_recording.isEnabled() and not dialog.record_button.isEnabled()
    dialog.finished_storing("", "no speech found in the calibration recording")
    assert not dialog.busy and dialog.status.text().startswith("Not stored: no speech")

    dialog.record_button.click()
    assert dialog.busy and "read the passage aloud now… 15 s left" in dialog.status.text()
    # The countdown moves on (any number below 15: on a loaded machine the 250 ms ticks
    # can come late enough to skip "14 s left").
    qtbot.waitUntil(lambda: seconds_left(dialog.status.text()) < 15, timeout=10_000)
    stored.update(path="cal.json", seconds=15.0, model_id="m", created="now")
    dialog.finished_storing("Stored 15 s.")
    assert dialog.status.text().startswith("Stored 15 s. Stored: 15.0 s of speech for m")
    assert dialog.delete_button.isEnabled()

    dialog.set_allowed(False, "needs microphone consent")
    assert not dialog.use_recording.isEnabled() and not dialog.record_button.isEnabled()
    assert dialog.use_recording.toolTip() == "needs microphone consent"

    with qtbot.waitSignal(dialog.cancel_requested, timeout=1000):
        dialog.set_allowed(True)
        dialog.record_button.click()
        dialog.reject()  # closed while recording: the owner is asked to cancel
