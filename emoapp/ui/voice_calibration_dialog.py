""" "Calibrate to me": a small dialog that shows the neutral passage to read, what is
stored, and lets the person store a calibration (recorded from the microphone now, or
from a recording of them reading the passage) or delete it.

All logic is in :mod:`emoapp.privacy.voice_calibration` (consent, storage, audit) and in
the window's :class:`~emoapp.ui.voice_calibration.VoiceCalibrationController`; the
dialog only calls the callables it is given, so it holds no model, no device and no file
handling of its own:

- ``record(path) -> str | None``: make and store a calibration from an audio file of the
  person reading the passage (raises EmoappError with a one-line reason). A message: done;
  None: the work goes on in the background and the owner calls :meth:`finished`;
- ``delete() -> bool``: delete the stored calibration;
- ``record_mic() -> str | None`` (optional): the same, recording from the microphone now.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QElapsedTimer, QTimer, Signal
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

    cancel_requested = Signal()  # closed while a recording or computation was running

    def __init__(
        self,
        record: Callable[[Path], str | None],
        delete: Callable[[], bool],
        stored: Callable[[], dict[str, Any] | None] = describe_calibration,
        parent: QWidget | None = None,
        record_mic: Callable[[], str | None] | None = None,
        mic_seconds: float = CALIBRATION_SECONDS,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Calibrate to me (voice)")
        self._record, self._delete, self._stored = record, delete, stored
        self._record_mic = record_mic
        self._mic_seconds = mic_seconds
        self.busy = False
        self._clock = QElapsedTimer()
        self._countdown = QTimer(self)
        self._countdown.setInterval(250)
        self._countdown.timeout.connect(self._tick)
        self._allowed, self._why_not = True, ""
        self._mic_ok, self._mic_why = record_mic is not None, ""
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
        self.passage.setStyleSheet("QLabel#passage { font-size: 13pt; padding: 6px; }")
        layout.addWidget(self.passage)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        self.record_button = QPushButton(f"Record {mic_seconds:.0f} s from the microphone")
        self.record_button.clicked.connect(self.record_from_mic)
        self.record_button.setVisible(record_mic is not None)
        self.use_recording = QPushButton("Use a recording of me reading it…")
        self.use_recording.clicked.connect(self._choose_file)
        self.delete_button = QPushButton("Delete my calibration")
        self.delete_button.clicked.connect(self.delete_stored)
        row.addWidget(self.record_button)
        row.addWidget(self.use_recording)
        row.addWidget(self.delete_button)
        layout.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.refresh()

    # -- state ---------------------------------------------------------------------------

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
        self.delete_button.setEnabled(info is not None and not self.busy)
        self._update_buttons()

    def set_allowed(self, allowed: bool, why: str = "") -> None:
        """Storing needs microphone consent: without it the record buttons are off and
        say why."""
        self._allowed, self._why_not = allowed, why
        self._update_buttons()

    def set_mic(self, usable: bool, why: str = "") -> None:
        """Whether recording from the microphone is possible now (and why not)."""
        self._mic_ok, self._mic_why = usable and self._record_mic is not None, why
        self._update_buttons()

    def _update_buttons(self) -> None:
        can = self._allowed and not self.busy
        self.use_recording.setEnabled(can)
        self.use_recording.setToolTip("" if self._allowed else self._why_not)
        self.record_button.setEnabled(can and self._mic_ok)
        self.record_button.setToolTip(
            self._why_not if not self._allowed else ("" if self._mic_ok else self._mic_why)
        )

    def _set_busy(self, text: str | None) -> None:
        self.busy = text is not None
        if text is not None:
            self.status.setText(text)
        self.delete_button.setEnabled(not self.busy and self._stored() is not None)
        self._update_buttons()

    # -- actions -------------------------------------------------------------------------

    def _choose_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Recording of you reading the passage", "", "Audio (*.wav *.flac *.mp3 *.ogg)"
        )
        if name:
            self.store_from(Path(name))

    def store_from(self, path: Path) -> bool:
        """Store a calibration from ``path``; the reason is shown when it cannot be.
        True when stored or started in the background."""
        return self._start(lambda: self._record(path), f"Working out your voice from {path.name}…")

    def record_from_mic(self) -> bool:
        """Record from the microphone now (the passage stays on screen to read)."""
        if self._record_mic is None:
            return False
        started = self._start(self._record_mic, self._recording_text(self._mic_seconds))
        if started and self.busy:
            self._clock.start()
            self._countdown.start()
        return started

    @staticmethod
    def _recording_text(left: float) -> str:
        return f"Recording: read the passage aloud now… {max(0.0, left):.0f} s left"

    def _tick(self) -> None:
        left = self._mic_seconds - self._clock.elapsed() / 1000.0
        if not self.busy:
            self._countdown.stop()
        elif left > 0:
            self.status.setText(self._recording_text(left))
        else:
            self._countdown.stop()
            self.status.setText("Working out your voice's statistics…")

    def _start(self, work: Callable[[], str | None], busy_text: str) -> bool:
        try:
            message = work()
        except EmoappError as exc:
            self.status.setText(f"Not stored: {exc}")
            return False
        if message is None:
            self._set_busy(busy_text)
        else:
            self.finished_storing(message)
        return True

    def finished_storing(self, message: str, error: str | None = None) -> None:
        """The background work ended: ``message`` when stored, ``error`` when not."""
        self._countdown.stop()
        self._set_busy(None)
        if error is not None:
            self.refresh()
            self.status.setText(f"Not stored: {error}")
            return
        self.refresh()
        self.status.setText(f"{message} {self.status.text()}")

    def delete_stored(self) -> None:
        self._delete()
        self.refresh()

    def reject(self) -> None:
        if self.busy:
            self.cancel_requested.emit()
        super().reject()
