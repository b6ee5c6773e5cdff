"""File → Export timeline…: where to, which format, and whether to include anything
besides scores.

The dialog only gathers the choice (:class:`ExportRequest`); the window then writes the
rows it keeps in memory with :func:`emoapp.privacy.export.export_timeline` (atomic,
scores only unless asked, audited). Both "include typed text" and "include media
references" start unticked every time: a past choice is never remembered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from emoapp.privacy.export import ExportFormat

FORMATS: tuple[tuple[str, ExportFormat, str], ...] = (
    ("JSON lines (.jsonl)", "jsonl", ".jsonl"),
    ("CSV (.csv)", "csv", ".csv"),
)


@dataclass(frozen=True)
class ExportRequest:
    """What the person asked to export."""

    path: Path
    format: ExportFormat
    include_text: bool = False
    include_media: bool = False


class ExportDialog(QDialog):
    """Choose a file and format; tick extra content only on purpose."""

    def __init__(
        self,
        rows: int,
        span_s: float,
        folder: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export timeline")
        self.setModal(True)
        self._folder = folder or Path.home()
        minutes = span_s / 60.0
        self.summary = QLabel(
            f"{rows} timeline row(s) kept in memory this session"
            + (f", covering {minutes:.1f} min" if rows > 1 else "")
            + ". The file holds scores: the fused estimate and each modality's labels, "
            "probabilities, weights, model ids and face boxes."
        )
        self.summary.setWordWrap(True)
        self.format_box = QComboBox()
        for title, fmt, _suffix in FORMATS:
            self.format_box.addItem(title, fmt)
        self.path_edit = QLineEdit(str(self._folder / "emoapp-timeline.jsonl"))
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        self.text_box = QCheckBox("Include typed text")
        self.text_box.setToolTip(
            "Add the sentences you typed to the rows where the text counted. Off by default."
        )
        self.media_box = QCheckBox("Include media references")
        self.media_box.setToolTip(
            "Add which file (or device name) each modality's input came from. emoapp never "
            "writes frames or sound. Off by default."
        )
        self.text_box.setChecked(False)
        self.media_box.setChecked(False)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.text_box.toggled.connect(self._update_warning)
        self.media_box.toggled.connect(self._update_warning)
        self.format_box.currentIndexChanged.connect(self._format_changed)

        form = QFormLayout()
        form.addRow("Format:", self.format_box)
        form.addRow("File:", path_row)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setText("Export")
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(rows > 0)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(form)
        layout.addWidget(self.text_box)
        layout.addWidget(self.media_box)
        layout.addWidget(self.warning)
        layout.addWidget(self.buttons)

    def request(self) -> ExportRequest:
        """What the dialog says now."""
        fmt: ExportFormat = self.format_box.currentData()
        return ExportRequest(
            path=Path(self.path_edit.text().strip()).expanduser(),
            format=fmt,
            include_text=self.text_box.isChecked(),
            include_media=self.media_box.isChecked(),
        )

    def _format_changed(self) -> None:
        suffix = FORMATS[self.format_box.currentIndex()][2]
        text = self.path_edit.text().strip()
        if text:
            self.path_edit.setText(str(Path(text).with_suffix(suffix)))

    def _update_warning(self) -> None:
        extra = [
            what
            for what, box in (
                ("the text you typed", self.text_box),
                ("where each input came from", self.media_box),
            )
            if box.isChecked()
        ]
        self.warning.setText(f"The file will also hold {' and '.join(extra)}." if extra else "")

    def _browse(self) -> None:
        title, _fmt, suffix = FORMATS[self.format_box.currentIndex()]
        path, _ = QFileDialog.getSaveFileName(
            self, "Export timeline to", self.path_edit.text(), f"{title};;All files (*)"
        )
        if path:
            chosen = Path(path)
            self.path_edit.setText(str(chosen if chosen.suffix else chosen.with_suffix(suffix)))
