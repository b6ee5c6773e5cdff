"""Explanations in the window: the face overlay (only over a shown picture), highlighted
words, the voice band, the bridge, and the whole path from a panel's box to a drawing."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from emoapp.core.explanation import (
    FaceExplanation,
    FaceSaliency,
    TextExplanation,
    VoiceExplanation,
    VoiceMoment,
    WordWeight,
)
from emoapp.core.messages import FaceDetection, Modality, VideoFrame
from emoapp.ui.bridge import SessionBridge
from emoapp.ui.camera_panel import CameraPanel, PreviewMode
from emoapp.ui.explain_views import help_html, highlighted_html
from emoapp.ui.voice_text_panels import TextPanel, VoicePanel

WAIT_MS = 30_000


def face_explanation(t: float = 1.0) -> FaceExplanation:
    grid = np.zeros((7, 7))
    grid[5, 3] = 1.0  # the mouth
    return FaceExplanation(t, "m", "grad-cam", (FaceSaliency((20, 10, 70, 70), "happy", grid),))


def frame(t: float = 1.0) -> VideoFrame:
    return VideoFrame(t, np.full((120, 160, 3), 40, dtype=np.uint8))


def face_panel(qtbot) -> CameraPanel:
    panel = CameraPanel()
    qtbot.addWidget(panel)
    panel.resize(400, 360)
    panel.show()
    panel._faces = (FaceDetection((30, 20, 50, 50), np.eye(7)[1]),)
    panel._faces_t = 1.0
    return panel


def test_the_face_overlay_is_drawn_only_when_asked_and_over_a_shown_picture(qtbot) -> None:
    panel = face_panel(qtbot)
    panel.show_explanation(face_explanation())
    panel.show_frame(frame())
    assert panel.view.saliency() == ()  # not asked for
    plain = panel.view.grab().toImage()

    with qtbot.waitSignal(panel.explain_toggled) as toggled:
        panel.explain_box.setChecked(True)
    assert toggled.args == [True]
    panel.show_explanation(face_explanation())
    panel.show_frame(frame())
    assert len(panel.view.saliency()) == 1
    assert panel.view.grab().toImage() != plain  # something was drawn over the face

    panel.show_frame(frame(t=30.0))  # the explanation is too old for this frame
    assert panel.view.saliency() == ()

    for mode in (PreviewMode.BLUR_FACES, PreviewMode.SCORES_ONLY):
        panel.set_mode(mode)
        assert not panel.explain_box.isEnabled()
        panel.show_explanation(face_explanation())
        panel.show_frame(frame())
        assert panel.view.saliency() == ()
    panel.set_mode(PreviewMode.PICTURE)
    assert panel.explain_box.isEnabled()


def test_words_are_highlighted_by_weight_and_escaped(qtbot) -> None:
    panel = TextPanel()
    qtbot.addWidget(panel)
    explanation = TextExplanation(
        0.0, "m", "exact-linear", "happy",
        (WordWeight("so", 0, 0.1), WordWeight("<glad>", 3, 2.0), WordWeight("not", 10, -1.0)),
        "logit",
    )  # fmt: skip
    panel.show_explanation(explanation)
    assert panel.words.explanation is None  # not asked for
    panel.explain_box.setChecked(True)
    assert panel.words.isVisibleTo(panel)
    panel.show_explanation(explanation)
    shown = panel.words.text()
    assert "&lt;glad&gt;" in shown and "<glad>" not in shown
    html = highlighted_html(explanation)
    # the strongest word at full strength, in the label's colour; "not" against it
    assert "rgba(230,159,0,1.00)" in html and "rgba(91,122,153,0.57)" in html
    panel.explain_box.setChecked(False)
    assert panel.words.explanation is None and not panel.words.isVisibleTo(panel)


def test_the_voice_band_is_strongest_where_the_label_came_from(qtbot) -> None:
    panel = VoicePanel()
    qtbot.addWidget(panel)
    panel.explain_box.setChecked(True)
    moments = tuple(
        VoiceMoment(0.25 * i, 0.25 * (i + 1), w) for i, w in enumerate([0.1, 0.4, -0.2, 0.0])
    )
    panel.show_explanation(VoiceExplanation(0.0, "m", "occlusion", "angry", moments))
    assert panel.moments.strengths() == pytest.approx([0.25, 1.0, 0.0, 0.0])
    panel.moments.grab()  # paints without error
    panel.clear()
    assert panel.moments.strengths() == []


def test_the_bridge_hands_on_the_newest_explanation_per_modality(qtbot) -> None:
    bridge = SessionBridge()
    seen = []
    bridge.explanation_received.connect(seen.append)
    older, newer = face_explanation(1.0), face_explanation(2.0)
    bridge.on_explanation(older)
    bridge.on_explanation(newer)
    qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    assert seen == [newer]


def test_help_says_what_the_maps_do_not_mean() -> None:
    text = help_html(1.0)
    assert "not why anyone feels anything" in text and "picture mode only" in text


def test_a_panel_box_brings_explanations_into_the_window(open_window, window_args, qtbot):
    window = open_window(window_args(mic=False))
    window.camera_panel.explain_box.setChecked(True)
    window.text_panel.explain_box.setChecked(True)
    qtbot.waitUntil(lambda: window.camera_panel.view.saliency() != (), timeout=WAIT_MS)
    window.text_panel.entry.setText("I am so glad to see you")
    qtbot.mouseClick(window.text_panel.submit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.text_panel.words.explanation is not None, timeout=WAIT_MS)
    assert window.text_panel.words.explanation.modality is Modality.TEXT
    window.privacy.forgotten.emit()  # "Revoke all and stop": the typed words go too
    assert window.text_panel.words.explanation is None and window.text_panel.words.text() == ""
    window.camera_panel.explain_box.setChecked(False)
    qtbot.waitUntil(lambda: window.camera_panel.view.saliency() == (), timeout=WAIT_MS)
