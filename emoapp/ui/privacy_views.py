"""Two read-only views of the Privacy menu:

- "What is stored…": where each consent choice stands, every place emoapp may write
  (:func:`emoapp.privacy.paths.stored_locations`, with this window's real settings
  file), what the window holds in memory, and the newest lines of the audit log;
- "About the models…": a model card for each loaded model (registry facts: training
  data, licence, limits and caveats, reported accuracy; and the label mapping applied),
  after the plain statement that emoapp estimates displayed expression, not feeling.

The texts are built by plain functions (:func:`stored_report`,
:func:`emoapp.privacy.modelcards.format_model_cards`); the dialogs only show them.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QPlainTextEdit,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from emoapp.core.messages import Modality
from emoapp.privacy.audit import AuditError
from emoapp.privacy.consent import DEVICE_NAME, ConsentGate, ConsentStatus
from emoapp.privacy.modelcards import ModelCard, format_model_cards
from emoapp.privacy.paths import format_stored_locations, stored_locations

AUDIT_LINES = 15


def consent_lines(gate: ConsentGate) -> list[str]:
    """Where each device's consent stands, one line each."""
    lines = []
    store = gate.store
    for modality in store.text.granted_modalities:
        device = DEVICE_NAME.get(modality, modality.value)
        status = store.status(modality)
        record = store.record(modality)
        when = f" on {record.time}" if record is not None else ""
        if status is ConsentStatus.GRANTED:
            line = f"- {device}: granted{when} (consent text version {store.text.version})"
        elif status is ConsentStatus.REVOKED:
            line = f"- {device}: revoked{when}"
        elif status is ConsentStatus.OUTDATED:
            line = f"- {device}: {status.value} (asked again before it opens)"
        else:
            line = f"- {device}: not granted (asked before it opens)"
        if modality in gate.allowed_for_run:
            line += "; allowed for this run by a command-line flag"
        lines.append(line)
    if store.problem:
        lines.append(f"- note: {store.problem}")
    return lines


def stored_report(
    gate: ConsentGate,
    settings_file: str | None,
    rows_in_memory: int,
    audit_lines: int = AUDIT_LINES,
) -> str:
    """The "What is stored" text."""
    store = gate.store
    try:
        audit = store.audit.format(last=audit_lines)
    except AuditError as error:
        audit = str(error)
    parts = [
        "Nothing you are recorded saying, showing or typing is written to disk. Frames, "
        "sound and text stay in memory only as long as the models need them.",
        "",
        "Consent",
        *consent_lines(gate),
        "",
        "Where emoapp may write",
        format_stored_locations(stored_locations(settings_file)),
        "",
        "In memory only (gone when the window closes)",
        f"- {rows_in_memory} timeline row(s) of scores, for File → Export timeline…; "
        "Privacy → Revoke all and stop forgets them",
        "- the typed text behind those rows, only so that an export can include it when "
        "you tick that box",
        "",
        f"Audit log: the newest {audit_lines} entries ({store.audit.path})",
        audit,
    ]
    return "\n".join(parts) + "\n"


class _TextDialog(QDialog):
    def __init__(self, title: str, body: QWidget, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(760, 560)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(body, 1)
        layout.addWidget(buttons)


class StoredDialog(_TextDialog):
    """Privacy → What is stored…"""

    def __init__(self, report: str, parent: QWidget | None = None) -> None:
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.setPlainText(report)
        super().__init__("What emoapp stores", self.view, parent)

    def text(self) -> str:
        return self.view.toPlainText()


class ModelCardsDialog(_TextDialog):
    """Privacy → About the models…"""

    def __init__(self, cards: Iterable[ModelCard], parent: QWidget | None = None) -> None:
        ordered = sorted(cards, key=lambda c: list(Modality).index(c.modality))
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        self.view.setMarkdown(format_model_cards(ordered))
        super().__init__("About the models", self.view, parent)

    def text(self) -> str:
        return self.view.toPlainText()
