"""The voice panel (input level, speech/silence from the voice-activity gate, the latest
voice prediction) and the text panel (an entry box analysed on submit or, optionally,
while typing, and the latest text prediction)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from emoapp.core.explanation import TextExplanation, VoiceExplanation
from emoapp.core.messages import (
    EncoderOutput,
    Modality,
    ModalityPrediction,
    NoPrediction,
    TextEntry,
)
from emoapp.core.taxonomy import LABEL_INDEX
from emoapp.ui.bridge import AudioLevel
from emoapp.ui.explain_views import MEANING, MomentBand, WordHighlights
from emoapp.ui.widgets import LevelMeter, ProbabilityBars, StateDot


def _prediction_text(title: str, output: ModalityPrediction) -> str:
    top = float(output.probs[LABEL_INDEX[output.label]])
    text = f"{title}: {output.label} {top:.0%}"
    return text + " · baseline" if output.baseline else text


def _show_result(panel: Any, title: str, output: EncoderOutput) -> None:
    """Draw a modality's latest output on a panel with ``result``, ``reason`` and
    ``bars``. On a NoPrediction the last result stays, greyed, so it can be compared with
    the fused panel (which may still use it while it is recent)."""
    if isinstance(output, NoPrediction):
        panel.result.setEnabled(False)
        panel.reason.setText(f"now: {output.reason}")
        panel.bars.set_stale(True)
        return
    assert isinstance(output, ModalityPrediction)
    panel.result.setEnabled(True)
    panel.result.setText(_prediction_text(title, output))
    panel.reason.setText("")
    panel.bars.set_distribution(output.probs, output.mask)


class VoicePanel(QGroupBox):
    """Microphone level, speech/silence, and the latest voice prediction."""

    explain_toggled = Signal(bool)
    calibration_delete_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Microphone · voice", parent)
        self.meter = LevelMeter()
        self.level_text = QLabel("— dBFS")
        self.speech_dot = StateDot()
        self.speech_text = QLabel("no input")
        self.result = QLabel("Voice: —")
        font = QFont(self.font())
        font.setBold(True)
        self.result.setFont(font)
        self.reason = QLabel("")
        self.reason.setEnabled(False)
        self.bars = ProbabilityBars(compact=True)
        self.explain_box = QCheckBox("Which moments")
        self.explain_box.setToolTip(MEANING)
        self.explain_box.toggled.connect(self._explain_toggled)
        self.moments = MomentBand()
        self.moments.setVisible(False)
        self.calibration = QLabel("")
        self.calibration.setEnabled(False)
        self.calibration_delete = QPushButton("Delete calibration")
        self.calibration_delete.setToolTip(
            "Delete the stored voice calibration (averaged voice features of you reading "
            "the passage); the model then adapts from your speech as you talk"
        )
        self.calibration_delete.clicked.connect(self.calibration_delete_requested)
        self.calibration_delete.setVisible(False)

        level_row = QHBoxLayout()
        level_row.addWidget(QLabel("Level:"))
        level_row.addWidget(self.meter, 1)
        level_row.addWidget(self.level_text)
        level_row.addSpacing(8)
        level_row.addWidget(self.speech_dot)
        level_row.addWidget(self.speech_text)
        result_row = QHBoxLayout()
        result_row.addWidget(self.result)
        result_row.addWidget(self.reason, 1)
        result_row.addWidget(self.explain_box)
        layout = QVBoxLayout(self)
        layout.addLayout(level_row)
        layout.addWidget(self.moments)
        layout.addLayout(result_row)
        layout.addWidget(self.bars)
        calibration_row = QHBoxLayout()
        calibration_row.addWidget(self.calibration, 1)
        calibration_row.addWidget(self.calibration_delete)
        layout.addLayout(calibration_row)

    @Slot(object)
    def show_calibration(self, state: object) -> None:
        """What the voice model adapts with (a VoiceCalibrationState from the controller):
        "calibrated to you" with the seconds and a Delete button, or nothing."""
        seconds = getattr(state, "seconds", None)
        if seconds is not None:
            self.calibration.setText(f"Calibrated to you ({seconds:.0f} s of your reading)")
            self.calibration.setToolTip(
                "The voice model adapts to your voice with your stored calibration "
                "(Modalities → Calibrate to me), plus your speech as you talk"
            )
        elif getattr(state, "adaptive", False):
            self.calibration.setText("Adapting to the speaker as they talk (no calibration)")
            self.calibration.setToolTip(
                "Modalities → Calibrate to me (voice)… makes it adapt from the start"
            )
        else:
            self.calibration.setText("")
            self.calibration.setToolTip("")
        self.calibration_delete.setVisible(seconds is not None)

    def _explain_toggled(self, on: bool) -> None:
        self.moments.setVisible(on)
        if not on:
            self.moments.set_explanation(None)
        self.explain_toggled.emit(on)

    @Slot(object)
    def show_explanation(self, explanation: object) -> None:
        if isinstance(explanation, VoiceExplanation) and self.explain_box.isChecked():
            self.moments.set_explanation(explanation)

    @Slot(object, float)
    def forget(self, origin: Modality, _t: float = 0.0) -> None:
        """The microphone was withdrawn: its explanation goes."""
        if origin is Modality.VOICE:
            self.moments.set_explanation(None)

    @Slot(object)
    def show_level(self, level: AudioLevel) -> None:
        self.meter.set_level(level.rms_dbfs)
        self.level_text.setText(f"{level.rms_dbfs:5.0f} dBFS")
        if level.speech is None:
            self.speech_dot.set_color("#8c8c8c")
            self.speech_text.setText("speech: unknown")
        elif level.speech:
            self.speech_dot.set_color("#1a9641")
            self.speech_text.setText("speech")
        else:
            self.speech_dot.set_color("#8c8c8c")
            self.speech_text.setText("silence")

    @Slot(object)
    def show_output(self, output: EncoderOutput) -> None:
        if output.modality is Modality.VOICE:
            _show_result(self, "Voice", output)

    def clear(self) -> None:
        self.meter.set_level(None)
        self.level_text.setText("— dBFS")
        self.speech_dot.set_color("#8c8c8c")
        self.speech_text.setText("no input")
        self.moments.set_explanation(None)
        self.result.setText("Voice: —")
        self.result.setEnabled(True)
        self.reason.setText("")
        self.bars.set_distribution(None)


class TextPanel(QGroupBox):
    """Typed text in, the latest text prediction out."""

    text_submitted = Signal(str)
    explain_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None, debounce_ms: int = 700) -> None:
        super().__init__("Text", parent)
        self.entry = QLineEdit()
        self.entry.setPlaceholderText("Type a sentence and press Enter (Ctrl+E)")
        self.entry.setClearButtonEnabled(True)
        self.entry.returnPressed.connect(self.submit)
        self.submit_button = QPushButton("Analyse")
        self.submit_button.clicked.connect(self.submit)
        self.live_box = QCheckBox("Analyse while typing")
        self.live_box.setToolTip(f"Analyse the text {debounce_ms} ms after you stop typing")
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self._submit_while_typing)
        self.entry.textEdited.connect(self._edited)
        self.result = QLabel("Text: —")
        font = QFont(self.font())
        font.setBold(True)
        self.result.setFont(font)
        self.reason = QLabel("")
        self.reason.setEnabled(False)
        self.bars = ProbabilityBars(compact=True)
        self.explain_box = QCheckBox("Which words")
        self.explain_box.setToolTip(MEANING)
        self.explain_box.toggled.connect(self._explain_toggled)
        self.words = WordHighlights()
        self.words.setVisible(False)
        self.heard = QLabel("Heard: —")
        self.heard.setWordWrap(True)
        self.heard.setToolTip(
            "What the speech recogniser heard from the microphone (on this computer; held "
            "in memory only). Heard text is analysed like typed text."
        )
        self.asr_box = QCheckBox("Transcribe speech")
        self.asr_box.setChecked(True)
        self.asr_box.setToolTip(
            "Transcribe what the microphone hears into the text channel, on this computer"
        )

        entry_row = QHBoxLayout()
        entry_row.addWidget(self.entry, 1)
        entry_row.addWidget(self.submit_button)
        result_row = QHBoxLayout()
        result_row.addWidget(self.result)
        result_row.addWidget(self.reason, 1)
        result_row.addWidget(self.live_box)
        result_row.addWidget(self.explain_box)
        layout = QVBoxLayout(self)
        layout.addLayout(entry_row)
        layout.addLayout(result_row)
        layout.addWidget(self.words)
        heard_row = QHBoxLayout()
        heard_row.addWidget(self.heard, 1)
        heard_row.addWidget(self.asr_box)
        layout.addLayout(heard_row)
        layout.addWidget(self.bars)

    def _explain_toggled(self, on: bool) -> None:
        self.words.setVisible(on)
        if not on:
            self.words.set_explanation(None)
        self.explain_toggled.emit(on)

    @Slot(object)
    def show_explanation(self, explanation: object) -> None:
        if isinstance(explanation, TextExplanation) and self.explain_box.isChecked():
            self.words.set_explanation(explanation)

    @Slot()
    def submit(self) -> None:
        text = self.entry.text().strip()
        self._debounce.stop()
        if not text:
            return
        self.text_submitted.emit(text)
        self.entry.clear()

    def _edited(self) -> None:
        if self.live_box.isChecked():
            self._debounce.start()

    def _submit_while_typing(self) -> None:
        text = self.entry.text().strip()
        if text:
            self.text_submitted.emit(text)

    @Slot(object)
    def show_output(self, output: EncoderOutput) -> None:
        if output.modality is Modality.TEXT:
            _show_result(self, "Text", output)

    @Slot(object)
    def show_heard(self, entry: TextEntry) -> None:
        """Show heard (transcribed) text, marked as heard, with the recogniser's name."""
        name = entry.source.removeprefix("heard:")
        self.heard.setText(f"Heard ({name}): \u201c{entry.text}\u201d")

    @Slot(object, float)
    def forget_heard(self, origin: Modality, _t: float = 0.0) -> None:
        """The microphone was withdrawn: the heard text shown goes with it, and the
        highlighted words (they may be heard words: when in doubt, they go)."""
        if origin is Modality.VOICE:
            self.heard.setText("Heard: —")
            self.words.clear_explanation()

    @Slot(bool)
    def set_transcribing(self, on: bool) -> None:
        if not on:
            self.heard.setText("Heard: — (transcription off)")

    def clear(self) -> None:
        self.words.set_explanation(None)
        self.heard.setText("Heard: —")
        self.result.setText("Text: —")
        self.result.setEnabled(True)
        self.reason.setText("")
        self.bars.set_distribution(None)
