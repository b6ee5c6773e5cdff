"""The real main window over replayed camera and microphone files and tiny models:
estimates reach the fused panel and the timeline, stopping a modality removes it from
fusion, an encoder error shows on its own row while the rest keeps updating, models
load off the UI thread, settings persist, and closing leaves no thread behind."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from PySide6.QtCore import QSettings, Qt

from emoapp.core.messages import Modality
from emoapp.encoders.base import Encoder, EncoderInfo
from emoapp.registry import ModelSpec
from emoapp.ui.camera_panel import PreviewMode
from emoapp.ui.controller import EncoderPlan
from emoapp.ui.timeline_panel import FUSED

from .conftest import close_window

FACE, VOICE, TEXT = Modality.FACE, Modality.VOICE, Modality.TEXT
WAIT_MS = 20_000


def contributes(window, modality: Modality) -> bool:
    estimate = window.fused_panel.estimate()
    return estimate is not None and modality in estimate.contributions


def test_estimates_reach_the_fused_panel_and_the_timeline(qtbot, window_args, open_window):
    window = open_window(window_args())
    assert window.controller.wanted() == {FACE, VOICE, TEXT}
    qtbot.waitUntil(lambda: contributes(window, FACE), timeout=WAIT_MS)
    window.text_panel.entry.setText("I am so happy to see you today!")
    qtbot.mouseClick(window.text_panel.submit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: contributes(window, TEXT), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: contributes(window, VOICE), timeout=WAIT_MS)

    estimate = window.fused_panel.estimate()
    assert not estimate.abstained
    shown = "uncertain" if estimate.uncertain else estimate.label
    assert window.fused_panel.headline.text().startswith(shown)
    assert window.text_panel.result.text().startswith("Text: ")
    assert window.text_panel.entry.text() == ""  # submitted entries leave the box
    qtbot.waitUntil(lambda: window.timeline.plotted_points() > 0, timeout=WAIT_MS)
    assert window.timeline.point_count(FUSED) > 0
    assert window.camera_panel.view.has_picture()
    for m in Modality:
        assert window.status_panel.state_of(m) in ("running", "starting")
    # Replayed files are shown as replays, not as open capture devices.
    camera = window.capture_indicators.indicator(FACE)
    assert camera.active and not camera.capturing
    assert "replaying face_speech.mp4" in camera.text.text()
    assert window.lag_meter.percentiles() is not None


def test_stopping_a_modality_removes_it_from_fusion(qtbot, window_args, open_window):
    window = open_window(window_args())
    qtbot.waitUntil(lambda: contributes(window, FACE), timeout=WAIT_MS)
    qtbot.mouseClick(window.controls.toggles[FACE], Qt.MouseButton.LeftButton)
    assert FACE not in window.controller.wanted()
    qtbot.waitUntil(lambda: window.status_panel.state_of(FACE) == "stopped", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.fused_panel.contribution_of(FACE) is None, timeout=WAIT_MS)
    # Later estimates keep it out, and the camera is shown closed and not drawn.
    seen = []
    window.bridge.estimate_received.connect(seen.append)
    qtbot.waitUntil(lambda: len(seen) >= 5, timeout=WAIT_MS)
    assert all(FACE not in e.contributions for e in seen)
    assert not window.capture_indicators.indicator(FACE).active
    assert not window.camera_panel.view.has_picture()
    # Ctrl+1 switches it on again.
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert FACE in window.controller.wanted()
    qtbot.waitUntil(lambda: contributes(window, FACE), timeout=WAIT_MS)


class FailingEncoder:
    """Wraps an encoder whose every encode() raises, like a GPU that went away."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.modality = inner.modality
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def baseline(self) -> bool:
        return self.inner.baseline

    def load(self) -> None:
        self.inner.load()

    def encode(self, items: Sequence[Any]) -> list:
        self.calls += 1
        raise RuntimeError("simulated device fault")

    def info(self) -> EncoderInfo:
        return self.inner.info()


def test_an_encoder_error_shows_on_its_row_while_the_rest_updates(qtbot, window_args, open_window):
    def hook(modality: Modality, encoder: Encoder) -> Encoder:
        return FailingEncoder(encoder) if modality is FACE else encoder

    window = open_window(window_args(), encoder_hook=hook)
    qtbot.waitUntil(lambda: window.status_panel.state_of(FACE) == "degraded", timeout=WAIT_MS)
    message = window.status_panel.message_of(FACE)
    assert "face encoder failed" in message and "simulated device fault" in message
    # The other modalities keep producing, and estimates keep coming, without the face.
    qtbot.waitUntil(lambda: contributes(window, VOICE), timeout=WAIT_MS)
    voice_points = window.timeline.point_count(VOICE.value)
    fused_points = window.timeline.point_count(FUSED)
    qtbot.waitUntil(
        lambda: (
            window.timeline.point_count(VOICE.value) > voice_points
            and window.timeline.point_count(FUSED) > fused_points + 5
        ),
        timeout=WAIT_MS,
    )
    assert window.status_panel.state_of(VOICE) == "running"
    assert not contributes(window, FACE)
    assert window.status_panel.state_of(FACE) == "degraded"


class GatedPlan(EncoderPlan):
    """Loads models only once the test opens the gate: a model that loads slowly."""

    def __init__(self, config, slow: Modality) -> None:
        super().__init__(config.models)
        self.slow = slow
        self.gate = threading.Event()

    def load(self, spec: ModelSpec) -> Encoder:
        if spec.modality is self.slow:
            assert self.gate.wait(30), "the test never opened the gate"
        return super().load(spec)


def test_a_slow_model_shows_loading_while_the_window_and_others_run(
    qtbot, window_args, open_window
):
    args = window_args()
    plan = GatedPlan(args, slow=VOICE)
    window = open_window(args, plan=plan)
    try:
        qtbot.waitUntil(lambda: window.status_panel.state_of(VOICE) == "loading", timeout=WAIT_MS)
        assert "loading model" in window.status_panel.message_of(VOICE)
        # The face runs meanwhile and the window keeps handling events.
        qtbot.waitUntil(lambda: contributes(window, FACE), timeout=WAIT_MS)
        assert window.status_panel.state_of(VOICE) == "loading"
    finally:
        plan.gate.set()
    qtbot.waitUntil(lambda: contributes(window, VOICE), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.status_panel.state_of(VOICE) == "running", timeout=WAIT_MS)
    assert "loading" not in window.status_panel.message_of(VOICE)


def test_space_pauses_everything_but_types_in_the_text_entry(qtbot, window_args, open_window):
    window = open_window(window_args())
    qtbot.waitUntil(lambda: contributes(window, FACE), timeout=WAIT_MS)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    window.focus_text_entry()
    qtbot.keyClicks(window.text_panel.entry, "so glad")
    assert window.text_panel.entry.text() == "so glad"
    assert not window.controller.paused

    window.fused_panel.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.controller.paused and window.controller.wanted() == set()
    for m in Modality:
        qtbot.waitUntil(lambda m=m: window.status_panel.state_of(m) == "stopped", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.fused_panel.estimate().abstained, timeout=WAIT_MS)
    assert "abstains" in window.fused_panel.subline.text()
    assert not window.controls.toggles[FACE].isChecked()

    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.controller.paused
    assert window.controller.wanted() == {FACE, VOICE, TEXT}
    qtbot.waitUntil(lambda: contributes(window, FACE), timeout=WAIT_MS)


def test_a_refusing_start_gate_keeps_the_device_closed(qtbot, window_args, open_window):
    asked = []

    def gate(modality, source) -> bool:
        asked.append((modality, source.key if source else None))
        return modality is not FACE

    window = open_window(window_args(), start_gate=gate)
    assert FACE not in window.controller.wanted()
    assert any(m is FACE and key.endswith("face_speech.mp4") for m, key in asked)
    qtbot.waitUntil(lambda: contributes(window, VOICE), timeout=WAIT_MS)
    qtbot.mouseClick(window.controls.toggles[FACE], Qt.MouseButton.LeftButton)
    assert not window.controls.toggles[FACE].isChecked()
    assert "not allowed" in window.message_label.text()
    assert window.status_panel.state_of(FACE) == "off"
    assert not window.capture_indicators.indicator(FACE).active
    assert not contributes(window, FACE)


def test_choices_persist_between_runs(qtbot, window_args, open_window, tmp_path):
    args = window_args()
    window = open_window(args, wanted=set())
    window.controls.rule_box.setCurrentIndex(window.controls.rule_box.findData("product"))
    window.controls.weight_boxes[VOICE].setValue(1.25)
    qtbot.waitUntil(lambda: window.settings.fusion.rule == "product", timeout=5000)
    config = window.controller.fusion_config()
    assert config.rule == "product" and config.reliability[VOICE] == 1.25
    assert FACE not in window.settings.fusion.weights  # untouched weights stay "auto"
    window.camera_panel.set_mode(PreviewMode.SCORES_ONLY)
    close_window(qtbot, window)

    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert store.value("fusion/rule") == "product"
    again = open_window(window_args(), wanted=set())
    assert again.controls.fusion().rule == "product"
    assert again.controls.fusion().weights[VOICE] == pytest.approx(1.25)
    assert again.camera_panel.mode() is PreviewMode.SCORES_ONLY
    assert again.preview_actions[PreviewMode.SCORES_ONLY].isChecked()


def test_ctrl_q_closes_the_window_and_stops_every_thread(qtbot, window_args, open_window):
    window = open_window(window_args())
    qtbot.waitUntil(lambda: contributes(window, FACE), timeout=WAIT_MS)
    session = window.controller.session
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    with qtbot.waitSignal(window.closed, timeout=15_000):
        qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert not window.isVisible()
    assert not session.running
    assert window.controller.threads() == []
    assert not [t.name for t in threading.enumerate() if t.name.startswith("emoapp-")]
