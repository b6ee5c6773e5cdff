"""The consent dialog: shown before a camera or microphone opens for the first time (and
again when the consent text gets a new version, or after a revocation).

It shows, from the versioned consent text (``resources/consent/consent-vN.toml``), what
the device captures, that processing is local, what is kept (nothing, by default), and
how to revoke, for one modality at a time: each device is granted separately. "Allow"
grants it (saved by the consent store, with the text's version); "Allow for 10 minutes"
allows it for this window's run only, for ten minutes (not saved; audited when given
and when it expires, and then the modality is withdrawn as on a revocation); "Not now"
keeps the device closed. Closing the dialog counts as "Not now".
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from emoapp.core.messages import Modality
from emoapp.privacy.consent import DEVICE_NAME, ConsentText

ALLOW_FOR_S = 600.0
"""How long "Allow for 10 minutes" allows a device."""

ConsentAnswer = bool | float
"""True: granted (saved); False: not now; a number of seconds: allowed for that long,
for this run only."""

ConsentPrompt = Callable[[QWidget | None, ConsentText, Modality, str], ConsentAnswer]
"""Asks the person for one modality's consent. The window uses :func:`ask_consent`;
tests put a recorder in its place."""


def consent_html(text: ConsentText, modality: Modality, source_title: str = "") -> str:
    """The consent text for one modality, as the dialog shows it."""
    section = text.sections[modality]
    device = DEVICE_NAME.get(modality, modality.value)
    esc = html.escape
    which = f" ({esc(source_title)})" if source_title else ""
    rows = [
        ("What is captured", section.captures),
        ("Where it is processed", section.processing),
        ("What is kept", section.kept),
        ("How to revoke", section.revoke),
    ]
    items = "".join(f"<li><b>{esc(name)}:</b> {esc(value)}</li>" for name, value in rows)
    return (
        f"<h3>{esc(section.title)}</h3>"
        f"<p>emoapp wants to open the {esc(device)}{which}.</p>"
        f"<ul>{items}</ul>"
        f"<p>{esc(text.intro)}</p>"
        f"<p>{esc(text.local)}</p>"
        f"<p>{esc(text.kept)}</p>"
        f"<p><small>Consent text version {esc(text.version)} ({esc(text.date)}). "
        "Your answer is kept in emoapp's settings folder and in its audit log (what and "
        "when, never content).</small></p>"
    )


class ConsentDialog(QDialog):
    """Asks for one device: "Allow" or "Not now"."""

    def __init__(
        self,
        text: ConsentText,
        modality: Modality,
        source_title: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        device = DEVICE_NAME.get(modality, modality.value)
        self.modality = modality
        self.setWindowTitle(f"Allow emoapp to use the {device}?")
        self.setModal(True)
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)
        self.browser.setHtml(consent_html(text, modality, source_title))
        self.browser.setMinimumSize(520, 360)
        heading = QLabel(f"<b>{html.escape(text.title)}</b>")
        heading.setTextFormat(Qt.TextFormat.RichText)
        heading.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.allow_button: QPushButton = buttons.addButton(
            f"Allow {device}", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.allow_for_button: QPushButton = buttons.addButton(
            "Allow for 10 minutes", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.allow_for_button.setAutoDefault(False)
        self.allow_for_button.clicked.connect(self._allow_for)
        self.deny_button: QPushButton = buttons.addButton(
            "Not now", QDialogButtonBox.ButtonRole.RejectRole
        )
        self.answer: ConsentAnswer = False
        """The person's answer once the dialog closed."""
        self.deny_button.setDefault(True)  # Enter never grants by accident
        self.deny_button.setAutoDefault(True)
        self.allow_button.setAutoDefault(False)
        buttons.accepted.connect(self._allow)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.browser, 1)
        layout.addWidget(buttons)

    def _allow(self) -> None:
        self.answer = True
        self.accept()

    def _allow_for(self) -> None:
        self.answer = ALLOW_FOR_S
        self.accept()

    def text(self) -> str:
        """What the dialog says, as plain text (for tests and accessibility checks)."""
        return self.browser.toPlainText()


def ask_consent(
    parent: QWidget | None, text: ConsentText, modality: Modality, source_title: str
) -> ConsentAnswer:
    """Show the consent dialog for ``modality`` and wait for the answer."""
    dialog = ConsentDialog(text, modality, source_title, parent)
    try:
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        return dialog.answer
    finally:
        dialog.deleteLater()
