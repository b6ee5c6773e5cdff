"""The window's heard text: what the speech recogniser heard from the (replayed)
microphone shows in the text panel, marked as heard with the recogniser's name, is
fused as text, and a switch turns transcription off (dropping the audio it held)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from emoapp.core.messages import Modality
from emoapp.encoders.heard import EMBEDDED_ASR

WAIT_MS = 60_000


def test_the_window_shows_heard_text_and_the_switch_turns_it_off(qtbot, window_args, open_window):
    window = open_window(window_args(camera=False))
    panel = window.text_panel
    assert panel.asr_box.isChecked() and window.controller.transcription
    qtbot.waitUntil(
        lambda: panel.heard.text().startswith(f"Heard ({EMBEDDED_ASR})"), timeout=WAIT_MS
    )
    # The heard words reached the text model without anything typed.
    qtbot.waitUntil(lambda: panel.result.text().startswith("Text: "), timeout=WAIT_MS)
    assert panel.entry.text() == ""
    transcriber = window.controller.session.transcriber
    assert transcriber is not None and transcriber.running

    qtbot.mouseClick(panel.asr_box, Qt.MouseButton.LeftButton)
    assert not panel.asr_box.isChecked() and not window.controller.transcription
    assert not transcriber.enabled and transcriber.buffered == 0
    assert "transcription off" in panel.heard.text()
    assert window.controller.wanted() >= {Modality.VOICE, Modality.TEXT}
