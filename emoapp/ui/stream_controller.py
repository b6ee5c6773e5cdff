"""File → Stream estimates…: the window's local WebSocket stream, and its indicator.

:class:`StreamController` owns an :class:`~emoapp.stream.server.EstimateStream` while
one runs. It listens to the window's :class:`~emoapp.privacy.memory.TimelineMemory`, so
it sends exactly the rows an export writes (scores only, never the typed text). The
dialog asks for the address (127.0.0.1 by default; another host is warned about) and an
optional token, and once listening shows the URL and the token. The
:class:`StreamIndicator` sits next to the capture indicators in the status bar and is lit
while the stream runs, with the number of connected clients. "Revoke all and stop" and
closing the window stop the stream: :meth:`StreamController.stop` only asks the server
to stop (it returns at once, whatever the clients do; the server thread ends on its own
within a couple of seconds, telling each client why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from emoapp.core.errors import EmoappError
from emoapp.privacy.audit import AuditLog
from emoapp.privacy.memory import TimelineMemory
from emoapp.stream.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MIN_TOKEN_CHARS,
    EstimateStream,
    StreamAddress,
    is_loopback,
)
from emoapp.ui.widgets import StateDot

log = logging.getLogger(__name__)

NOTICE = "resources/disclosure/notice-v1.md"
_ON_COLOR = "#d7191c"
_OFF_COLOR = "#8c8c8c"


@dataclass(frozen=True)
class StreamRequest:
    """What the person asked for in the dialog."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    """None: a random token for this stream."""


class StreamDialog(QDialog):
    """Asks where to listen and, optionally, the token clients must send."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Stream estimates")
        self.host = QLineEdit(DEFAULT_HOST)
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.port.setToolTip("0 picks a free port")
        self.token = QLineEdit()
        self.token.setPlaceholderText(
            f"random for this stream (or at least {MIN_TOKEN_CHARS} characters)"
        )
        self.token.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(f"color: {_ON_COLOR};")
        about = QLabel(
            "Programs on this computer that know the token receive every estimate as a "
            "JSON message (scores only: never frames, sound or text). Tell the people being "
            f"analysed: a notice to show them is in {NOTICE}."
        )
        about.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Token", self.token)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Start streaming")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(about)
        layout.addLayout(form)
        layout.addWidget(self.warning)
        layout.addWidget(buttons)
        self.host.textChanged.connect(self._warn)
        self._warn()

    def _warn(self) -> None:
        host = self.host.text().strip()
        self.warning.setText(
            ""
            if not host or is_loopback(host)
            else f"{host} is not a loopback address: other computers that can reach it "
            "may connect (with the token)."
        )

    def request(self) -> StreamRequest:
        token = self.token.text().strip()
        return StreamRequest(
            self.host.text().strip() or DEFAULT_HOST, self.port.value(), token or None
        )


def ask_stream(parent: QWidget | None) -> StreamRequest | None:
    dialog = StreamDialog(parent)
    return dialog.request() if dialog.exec() == QDialog.DialogCode.Accepted else None


def show_started(parent: QWidget | None, stream: EstimateStream) -> None:
    box = QMessageBox(parent)
    box.setWindowTitle("Streaming estimates")
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setText(
        f"Listening at {stream.url}\n\nToken: {stream.token}\n\n"
        "Clients add ?token=… to the URL or send 'Authorization: Bearer …'. "
        "The message format: resources/schema/timeline-row.schema.json."
    )
    box.open()


class StreamIndicator(QWidget):
    """ "● Stream: off" / "● Streaming to 2 clients (ws://127.0.0.1:8765)"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dot = StateDot()
        self.text = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.dot)
        layout.addWidget(self.text)
        self.active = False
        self.set_state(None, 0)

    def set_state(self, url: str | None, clients: int) -> None:
        self.active = url is not None
        if url is None:
            self.dot.set_color(_OFF_COLOR)
            self.text.setText("Stream: off")
            self.text.setStyleSheet("")
            self.setToolTip("No estimates leave the window")
        else:
            self.dot.set_color(_ON_COLOR)
            who = f"{clients} client{'' if clients == 1 else 's'}"
            self.text.setText(f"Streaming to {who} ({url})")
            self.text.setStyleSheet(f"color: {_ON_COLOR}; font-weight: bold;")
            self.setToolTip("Estimates (scores only) are sent to local WebSocket clients")


class StreamController(QObject):
    """Starts and stops the window's stream (see the module docstring)."""

    message = Signal(str)
    running_changed = Signal(bool)

    def __init__(
        self, parent: QWidget, memory: TimelineMemory, audit: AuditLog | None = None
    ) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.memory = memory
        self.audit = audit
        self.stream: EstimateStream | None = None
        self.indicator = StreamIndicator()
        self.ask: Callable[[QWidget | None], StreamRequest | None] = ask_stream
        """Asks where to stream (the dialog); tests put an answer in its place."""
        self.show_started: Callable[[QWidget | None, EstimateStream], Any] = show_started
        self.action = QAction("&Stream estimates…", self)
        self.action.triggered.connect(self.toggle)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._refresh)

    @property
    def running(self) -> bool:
        return self.stream is not None

    @Slot()
    def toggle(self) -> None:
        if self.running:
            self.stop()
            return
        request = self.ask(self.parent_widget)
        if request is not None:
            self.start(request)

    def start(self, request: StreamRequest) -> bool:
        if self.stream is not None:
            return True
        try:
            stream = EstimateStream(
                StreamAddress(request.host, request.port), token=request.token, audit=self.audit
            )
            stream.start()
        except EmoappError as error:
            self.message.emit(f"stream not started: {error}")
            return False
        self.stream = stream
        self.memory.row_listeners.append(stream.write)
        self.action.setText("Stop &streaming estimates")
        self._timer.start()
        self._refresh()
        self.running_changed.emit(True)
        self.message.emit(f"streaming estimates at {stream.url}")
        self.show_started(self.parent_widget, stream)
        return True

    @Slot()
    def stop(self) -> None:
        stream, self.stream = self.stream, None
        if stream is None:
            return
        if stream.write in self.memory.row_listeners:
            self.memory.row_listeners.remove(stream.write)
        self._timer.stop()
        stats = stream.stop()  # returns at once: the Qt thread never waits on a client
        self.action.setText("&Stream estimates…")
        self.indicator.set_state(None, 0)
        self.running_changed.emit(False)
        self.message.emit(
            f"stream stopped: {stats.accepted} client(s), {stats.messages} messages sent, "
            f"{stats.dropped} dropped for slow clients"
        )

    @Slot()
    def _refresh(self) -> None:
        if self.stream is not None:
            self.indicator.set_state(self.stream.url, self.stream.stats().connected)
