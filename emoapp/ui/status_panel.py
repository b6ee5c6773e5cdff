"""The status panel: for each modality, whether its source is on, which device and
model it uses, where the model runs, how fast the encoder keeps up, what it drops, and
any error, in words, on that modality's own row."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from emoapp.core.messages import Modality
from emoapp.ui.style import (
    ERROR_COLOR,
    MODALITY_COLORS,
    MODALITY_TITLES,
    STATE_COLORS,
    WARNING_COLOR,
)
from emoapp.ui.widgets import StateDot

_COLUMNS = (
    "",
    "Modality",
    "State",
    "Source",
    "Model",
    "Runs on",
    "Encoder time",
    "Rate",
    "Dropped",
    "Age p95",
    "Message",
)


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


class _StatusRow:
    def __init__(self, grid: QGridLayout, row: int, modality: Modality) -> None:
        self.modality = modality
        self.dot = StateDot()
        self.name = QLabel(MODALITY_TITLES[modality])
        font = QFont(self.name.font())
        font.setBold(True)
        self.name.setFont(font)
        self.name.setStyleSheet(f"color: {MODALITY_COLORS[modality]};")
        self.state = QLabel("off")
        self.source = QLabel("—")
        self.model = QLabel("—")
        self.model.setTextFormat(Qt.TextFormat.RichText)
        self.device = QLabel("—")
        self.timing = QLabel("—")
        self.rate = QLabel("—")
        self.dropped = QLabel("—")
        self.age = QLabel("—")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        cells = (
            self.dot,
            self.name,
            self.state,
            self.source,
            self.model,
            self.device,
            self.timing,
            self.rate,
            self.dropped,
            self.age,
            self.message,
        )
        for col, widget in enumerate(cells):
            grid.addWidget(widget, row, col)
        self.state_name = "off"
        self.message_text = ""
        self.timing.setToolTip("encoder time per call, median / 95th percentile")
        self.rate.setToolTip("encoder calls per second / inputs per second")
        self.age.setToolTip(
            "95th percentile of the age of this modality's input in the "
            "fused estimate (capture to fused output)"
        )

    def show_status(self, status: Any) -> None:
        self.state_name = status.state
        color = STATE_COLORS.get(status.state, STATE_COLORS["off"])
        self.dot.set_color(color)
        self.state.setText(status.state)
        self.state.setStyleSheet(f"color: {color};")
        self.source.setText(status.source or "—")
        self.source.setToolTip(status.source or "")
        if status.model_id:
            model = html.escape(status.model_id)
            if status.baseline:
                model += (
                    f' <span style="background:{WARNING_COLOR}; color:white;">'
                    "&nbsp;baseline&nbsp;</span>"
                )
            self.model.setText(model)
            self.model.setToolTip(
                "A baseline model: simple rules, no trained network; expect low accuracy."
                if status.baseline
                else status.model_id
            )
        else:
            self.model.setText("—")
        self.device.setText(status.device or "—")
        self.device.setToolTip(getattr(status, "device_detail", "") or "")
        self.show_message(status.state, status.message)

    def show_message(self, state: str, message: str) -> None:
        self.message_text = message
        self.message.setText(message)
        if state in ("failed", "degraded"):
            color = ERROR_COLOR if state == "failed" else WARNING_COLOR
            self.message.setStyleSheet(f"color: {color}; font-weight: bold;")
        else:
            self.message.setStyleSheet("")

    def show_metrics(self, snap: Any) -> None:
        self.timing.setText(f"{_ms(snap.encoder_time_p50_s)} / {_ms(snap.encoder_time_p95_s)}")
        busy = snap.encoder_busy_s
        if busy is not None and busy > 2.0:
            self.timing.setText(f"busy {busy:.0f} s")
        self.rate.setText(f"{snap.encoder_rate_hz:.1f} / {snap.input_rate_hz:.1f} Hz")
        if snap.inputs:
            self.dropped.setText(f"{snap.dropped} {snap.unit} ({snap.drop_fraction:.0%})")
        else:
            self.dropped.setText(f"0 {snap.unit}")
        self.age.setText(_ms(snap.age_p95_s))


class StatusPanel(QWidget):
    """One row per modality; fed by the session's statuses and metrics snapshots."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(2)
        for col, title in enumerate(_COLUMNS):
            header = QLabel(title)
            header.setEnabled(False)
            grid.addWidget(header, 0, col)
        grid.setColumnStretch(len(_COLUMNS) - 1, 1)
        self._rows = {m: _StatusRow(grid, i + 1, m) for i, m in enumerate(Modality)}

    @Slot(object)
    def show_status(self, status: Any) -> None:
        self._rows[status.modality].show_status(status)

    @Slot(object)
    def show_metrics(self, metrics: dict[Modality, Any]) -> None:
        for modality, snap in metrics.items():
            if modality in self._rows:
                self._rows[modality].show_metrics(snap)

    def state_of(self, modality: Modality) -> str:
        return self._rows[modality].state_name

    def message_of(self, modality: Modality) -> str:
        return self._rows[modality].message_text

    def row(self, modality: Modality) -> _StatusRow:
        return self._rows[modality]
