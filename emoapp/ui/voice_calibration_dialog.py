""" "Calibrate to me": a small dialog that shows the neutral passage to read, what is
stored, and lets the person store a calibration from a recording or delete it.

All logic is in :mod:`emoapp.privacy.voice_calibration` (consent, storage, audit); the
dialog only calls it through two callables the window gives it, so it holds no model and
no file handling of its own:

- ``record(path) -> str``: make and store a calibration from an audio file of the person
  reading the passage (raises EmoappError with a one-line reason);
- ``delete() -> bool``: delete the stored calibration.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from emoapp.core.errors import EmoappError
from emoapp.privacy.voice_calibration import (
    CALIBRATION_PASSAGE,
    CALIBRATION_SECONDS,
    describe_calibration,
)


class VoiceCalibrationDialog(QDialog):
    """Show the passage, the stored calibration, and store or delete one."""

    def __init__(
        self,
        record: Callable[[Path], str],
        delete: Callable[[], bool],
        stored: Callable[[], dict[str, Any] | None] = describe_calibration,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Calibrate to me (voice)")
        self._record, self._delete, self._stored = record, delete, stored
        layout = QVBoxLayout(self)
        intro = QLabel(
            f"Read this aloud in your everyday voice (about {CALIBRATION_SECONDS:.0f} s). "
            "Only averaged voice features are kept (no sound, no words), with your "
            "microphone consent, until you delete them or withdraw consent."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.passage = QLabel(CALIBRATION_PASSAGE)
        self.passage.setWordWrap(True)
        self.passage.setObjectName("passage")
        layout.addWidget(self.passage)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        self.use_recording = QPushButton("Use a recording of me reading it…")
        self.use_recording.clicked.connect(self._choose_file)
        self.delete_button = QPushButton("Delete my calibration")
        self.delete_button.clicked.connect(self.delete_stored)
        row.addWidget(self.use_recording)
        row.addWidget(self.delete_button)
        layout.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.refresh()

    def refresh(self) -> None:
        info = self._stored()
        if info is None:
            self.status.setText("Nothing stored.")
        elif "error" in info:
            self.status.setText(f"Stored calibration {info['path']}: {info['error']}")
        else:
            self.status.setText(
                f"Stored: {info.get('seconds')} s of speech for {info.get('model_id')}, "
                f"made {info.get('created') or 'earlier'} ({info['path']})."
            )
        self.delete_button.setEnabled(info is not None)

    def _choose_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Recording of you reading the passage", "", "Audio (*.wav *.flac *.mp3 *.ogg)"
        )
        if name:
            self.store_from(Path(name))

    def store_from(self, path: Path) -> bool:
        """Store a calibration from ``path``; the reason is shown when it cannot be."""
        try:
            message = self._record(path)
        except EmoappError as exc:
            self.status.setText(f"Not stored: {exc}")
            return False
        self.refresh()
        self.status.setText(f"{message} {self.status.text()}")
        return True

    def delete_stored(self) -> None:
        self._delete()
        self.refresh()
