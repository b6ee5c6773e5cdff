"""Always-visible capture indicators: one per capture device (camera, microphone),
shown in the window's status bar, which cannot be hidden.

An indicator is lit whenever its device is open, whatever else the window shows. A
replayed file is shown too, but plainly, as a replay rather than a capture. The privacy
layer (consent, revocation) drives the same indicators through
:meth:`CaptureIndicatorBar.set_capture`.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from emoapp.core.messages import Modality
from emoapp.ui.style import DEVICE_TITLES
from emoapp.ui.widgets import StateDot

CAPTURE_DEVICES = (Modality.FACE, Modality.VOICE)
_CAPTURING_COLOR = "#d7191c"
_REPLAY_COLOR = "#0072b2"
_OFF_COLOR = "#8c8c8c"


class CaptureIndicator(QWidget):
    """ "● Camera: capturing (camera 0)" / "● Camera: off"."""

    def __init__(self, modality: Modality, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.modality = modality
        self.dot = StateDot()
        self.text = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.dot)
        layout.addWidget(self.text)
        self._capturing = False
        self._replaying = False
        self.set_capture(False)

    def set_capture(self, active: bool, is_device: bool = True, source_name: str = "") -> None:
        title = DEVICE_TITLES[self.modality]
        self._capturing = active and is_device
        self._replaying = active and not is_device
        if self._capturing:
            self.dot.set_color(_CAPTURING_COLOR)
            self.text.setText(
                f"{title}: capturing ({source_name})" if source_name else f"{title}: capturing"
            )
            self.text.setStyleSheet(f"color: {_CAPTURING_COLOR}; font-weight: bold;")
        elif self._replaying:
            self.dot.set_color(_REPLAY_COLOR)
            self.text.setText(f"{title}: replaying {source_name}")
            self.text.setStyleSheet("")
        else:
            self.dot.set_color(_OFF_COLOR)
            self.text.setText(f"{title}: off")
            self.text.setStyleSheet("")
        self.setToolTip(
            f"The {title.lower()} is open and capturing"
            if self._capturing
            else f"The {title.lower()} is closed"
        )

    @property
    def capturing(self) -> bool:
        """True while a real device (not a replayed file) is open."""
        return self._capturing

    @property
    def active(self) -> bool:
        return self._capturing or self._replaying


class CaptureIndicatorBar(QWidget):
    """The indicators of every capture device, side by side."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.indicators = {m: CaptureIndicator(m) for m in CAPTURE_DEVICES}
        for indicator in self.indicators.values():
            layout.addWidget(indicator)

    def set_capture(
        self, modality: Modality, active: bool, is_device: bool = True, source_name: str = ""
    ) -> None:
        if modality in self.indicators:
            self.indicators[modality].set_capture(active, is_device, source_name)

    def indicator(self, modality: Modality) -> CaptureIndicator:
        return self.indicators[modality]
