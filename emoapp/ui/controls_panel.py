"""The controls: start/stop each modality, pause everything, pick the camera and the
microphone, choose the model profile, and set fusion (rule, weights, smoothing).

The panel only says what the person asked for, through its signals; the controller
does it off the UI thread and the panel shows the result through :meth:`set_running`.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from emoapp.core.fusion import RULES
from emoapp.core.messages import Modality
from emoapp.ui.settings import FusionSettings
from emoapp.ui.style import DEVICE_TITLES, MODALITY_TITLES

SHORTCUT_KEYS = {Modality.FACE: "Ctrl+1", Modality.VOICE: "Ctrl+2", Modality.TEXT: "Ctrl+3"}
_AUTO = -0.1  # a weight spin box at this value means "auto"
_TOGGLE_STYLE = (
    "QPushButton:checked { background-color: #1a9641; color: white; font-weight: bold; "
    "border: 1px solid #106b2e; border-radius: 3px; padding: 4px; }"
)
_RULE_TITLES = {"weighted": "Weighted mean", "product": "Product of experts"}


class ControlsPanel(QWidget):
    """Buttons, pickers and fusion settings."""

    modality_toggled = Signal(object, bool)  # Modality, wanted on
    pause_toggled = Signal()
    camera_chosen = Signal(str)  # source key
    microphone_chosen = Signal(str)  # source key
    refresh_devices = Signal()
    profile_chosen = Signal(str)
    fusion_changed = Signal(object)  # FusionSettings

    def __init__(self, profiles: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        # Modalities
        self.toggles: dict[Modality, QPushButton] = {}
        modal_box = QGroupBox("Modalities")
        modal_layout = QVBoxLayout(modal_box)
        for m in Modality:
            button = QPushButton(f"{DEVICE_TITLES[m]} · {MODALITY_TITLES[m].lower()}")
            button.setCheckable(True)
            button.setStyleSheet(_TOGGLE_STYLE)
            button.setToolTip(
                f"Start or stop the {MODALITY_TITLES[m].lower()} modality ({SHORTCUT_KEYS[m]})"
            )
            button.clicked.connect(lambda checked, m=m: self.modality_toggled.emit(m, checked))
            self.toggles[m] = button
            modal_layout.addWidget(button)
        self.pause_button = QPushButton("Pause all (Space)")
        self.pause_button.setToolTip("Stop every modality at once; again to resume them")
        self.pause_button.clicked.connect(self.pause_toggled.emit)
        modal_layout.addWidget(self.pause_button)

        # Sources
        source_box = QGroupBox("Sources")
        source_form = QFormLayout(source_box)
        self.camera_box = QComboBox()
        self.camera_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.camera_box.setMinimumContentsLength(12)
        self.camera_box.activated.connect(
            lambda _i: self.camera_chosen.emit(str(self.camera_box.currentData()))
        )
        self.microphone_box = QComboBox()
        self.microphone_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.microphone_box.setMinimumContentsLength(12)
        self.microphone_box.activated.connect(
            lambda _i: self.microphone_chosen.emit(str(self.microphone_box.currentData()))
        )
        refresh = QToolButton()
        refresh.setText("Find devices")
        refresh.setToolTip(
            "List the cameras and microphones again (probing cameras briefly opens each one)"
        )
        refresh.clicked.connect(self.refresh_devices.emit)
        source_form.addRow("Camera", self.camera_box)
        source_form.addRow("Microphone", self.microphone_box)
        source_form.addRow("", refresh)

        # Models
        model_box = QGroupBox("Models")
        model_form = QFormLayout(model_box)
        self.profile_box = QComboBox()
        for name, description in profiles:
            self.profile_box.addItem(name, name)
            self.profile_box.setItemData(
                self.profile_box.count() - 1,
                description,
                Qt.ItemDataRole.ToolTipRole,
            )
        self.profile_box.activated.connect(
            lambda _i: self.profile_chosen.emit(str(self.profile_box.currentData()))
        )
        self.profile_note = QLabel("")
        self.profile_note.setWordWrap(True)
        self.profile_note.setEnabled(False)
        model_form.addRow("Profile", self.profile_box)
        model_form.addRow(self.profile_note)
        self._profile_descriptions = dict(profiles)
        self.profile_box.currentIndexChanged.connect(self._describe_profile)

        # Fusion
        fusion_box = QGroupBox("Fusion")
        fusion_form = QFormLayout(fusion_box)
        self.rule_box = QComboBox()
        for rule in RULES:
            self.rule_box.addItem(_RULE_TITLES.get(rule, rule), rule)
        self.weight_boxes: dict[Modality, QDoubleSpinBox] = {}
        fusion_form.addRow("Rule", self.rule_box)
        for m in Modality:
            spin = QDoubleSpinBox()
            # The lowest value reads "auto": the profile's (or the model's) own prior.
            spin.setRange(_AUTO, 5.0)
            spin.setSingleStep(0.1)
            spin.setDecimals(2)
            spin.setSpecialValueText("auto")
            spin.setToolTip(
                f"Reliability prior of the {MODALITY_TITLES[m].lower()} modality: auto "
                "(the profile's or the model's own prior), or a weight of your choosing "
                "(0 leaves it out of fusion)"
            )
            self.weight_boxes[m] = spin
            fusion_form.addRow(f"{MODALITY_TITLES[m]} weight", spin)
        self.smoothing_box = QDoubleSpinBox()
        self.smoothing_box.setRange(0.0, 30.0)
        self.smoothing_box.setSingleStep(0.5)
        self.smoothing_box.setSuffix(" s")
        self.smoothing_box.setToolTip("Time constant of exponential smoothing (0: off)")
        fusion_form.addRow("Smoothing", self.smoothing_box)
        self.hysteresis_box = QDoubleSpinBox()
        self.hysteresis_box.setRange(0.0, 0.9)
        self.hysteresis_box.setSingleStep(0.05)
        self.hysteresis_box.setToolTip(
            "The shown label changes only when another label leads it by this much (0: off)"
        )
        fusion_form.addRow("Label hysteresis", self.hysteresis_box)
        self.threshold_box = QDoubleSpinBox()
        self.threshold_box.setRange(0.0, 1.0)
        self.threshold_box.setSingleStep(0.05)
        self.threshold_box.setToolTip(
            "Warn when the divergence between modalities reaches this (0–1)"
        )
        fusion_form.addRow("Warn at divergence", self.threshold_box)
        # Spin boxes emit on every keystroke; settle for 300 ms before applying.
        self._fusion_timer = QTimer(self)
        self._fusion_timer.setSingleShot(True)
        self._fusion_timer.setInterval(300)
        self._fusion_timer.timeout.connect(lambda: self.fusion_changed.emit(self.fusion()))
        self.rule_box.currentIndexChanged.connect(self._fusion_timer.start)
        for spin in (
            *self.weight_boxes.values(),
            self.smoothing_box,
            self.hysteresis_box,
            self.threshold_box,
        ):
            spin.valueChanged.connect(self._fusion_timer.start)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        for box in (modal_box, source_box, model_box, fusion_box):
            layout.addWidget(box)
        layout.addStretch(1)

    # -- showing state -----------------------------------------------------------------

    def set_running(self, modality: Modality, on: bool) -> None:
        button = self.toggles[modality]
        with QSignalBlocker(button):
            button.setChecked(on)

    def set_paused(self, paused: bool) -> None:
        self.pause_button.setText("Resume (Space)" if paused else "Pause all (Space)")

    def set_choices(
        self, box: QComboBox, choices: list[tuple[str, str]], current: str | None
    ) -> None:
        with QSignalBlocker(box):
            box.clear()
            for title, key in choices:
                box.addItem(title, key)
            if not choices:
                box.addItem("none found", "")
            index = box.findData(current) if current is not None else -1
            box.setCurrentIndex(max(0, index))

    def set_camera_choices(self, choices: list[tuple[str, str]], current: str | None) -> None:
        self.set_choices(self.camera_box, choices, current)

    def set_microphone_choices(self, choices: list[tuple[str, str]], current: str | None) -> None:
        self.set_choices(self.microphone_box, choices, current)

    def set_profile(self, name: str, note: str = "") -> None:
        with QSignalBlocker(self.profile_box):
            index = self.profile_box.findData(name)
            if index < 0:
                self.profile_box.addItem(name, name)
                index = self.profile_box.count() - 1
            self.profile_box.setCurrentIndex(index)
        self._describe_profile()
        if note:
            self.profile_note.setText(note)

    def _describe_profile(self) -> None:
        self.profile_note.setText(
            self._profile_descriptions.get(str(self.profile_box.currentData()), "")
        )

    def set_fusion(self, settings: FusionSettings) -> None:
        widgets = (
            self.rule_box,
            *self.weight_boxes.values(),
            self.smoothing_box,
            self.hysteresis_box,
            self.threshold_box,
        )
        blockers = [QSignalBlocker(w) for w in widgets]
        self.rule_box.setCurrentIndex(max(0, self.rule_box.findData(settings.rule)))
        for m, spin in self.weight_boxes.items():
            spin.setValue(settings.weights.get(m, _AUTO))
        self.smoothing_box.setValue(settings.smoothing_s)
        self.hysteresis_box.setValue(settings.hysteresis)
        self.threshold_box.setValue(settings.disagreement_threshold)
        del blockers

    def fusion(self) -> FusionSettings:
        return FusionSettings(
            rule=str(self.rule_box.currentData()),
            weights={m: spin.value() for m, spin in self.weight_boxes.items() if spin.value() >= 0},
            smoothing_s=self.smoothing_box.value(),
            hysteresis=self.hysteresis_box.value(),
            disagreement_threshold=self.threshold_box.value(),
        )
