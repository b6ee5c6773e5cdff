"""Each face in the preview shows its track id and label; clicking a face follows it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt

from emoapp.core.messages import FaceDetection, Modality, ModalityPrediction, VideoFrame
from emoapp.core.taxonomy import LABEL_INDEX, NUM_LABELS
from emoapp.encoders.face import follow_face
from emoapp.ui.camera_panel import CameraPanel, face_caption, primary_sentence


def _probs(label: str) -> np.ndarray:
    p = np.full(NUM_LABELS, 0.1 / (NUM_LABELS - 1))
    p[LABEL_INDEX[label]] = 0.9
    return p


def _two_faces(primary: int = 0, rule: str = "largest") -> ModalityPrediction:
    faces = (
        FaceDetection((20, 20, 60, 60), _probs("happy"), 1),
        FaceDetection((100, 30, 40, 40), _probs("sad"), 2),
    )
    return ModalityPrediction(
        Modality.FACE,
        10.0,
        faces[primary].probs,
        np.ones(NUM_LABELS, bool),
        0.9,
        "face-model",
        faces=faces,
        detail={"primary_index": primary, "primary_rule": rule},
    )


def _centre_of(panel: CameraPanel, face: FaceDetection) -> QPoint:
    rect = panel.view.face_rect(face)
    assert rect is not None
    return rect.center().toPoint()


def test_captions_carry_the_track_id_and_mark_the_followed_face():
    face = FaceDetection((0, 0, 10, 10), _probs("happy"), 3)
    assert face_caption(face) == "#3 happy 90%"
    assert face_caption(face, followed=True) == "#3 happy 90% · following"
    assert face_caption(FaceDetection((0, 0, 10, 10), _probs("sad"))) == "sad 90%"


def test_clicking_a_face_follows_it_and_clicking_it_again_lets_go(qtbot):
    panel = CameraPanel()
    qtbot.addWidget(panel)
    panel.resize(480, 400)
    panel.show()
    output = _two_faces()
    panel.show_output(output)
    panel.show_frame(VideoFrame(10.0, np.zeros((120, 160, 3), np.uint8)))
    assert "the largest face speaks (#1)" in panel.reason.text()
    small = output.faces[1]
    with qtbot.waitSignal(panel.follow_requested) as got:
        qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton, pos=_centre_of(panel, small))
    assert got.args == [2] and panel.followed() == 2
    panel.show_output(_two_faces(primary=1, rule="followed"))
    assert "following face #2" in panel.reason.text()
    with qtbot.waitSignal(panel.follow_requested) as got:
        qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton, pos=_centre_of(panel, small))
    assert got.args == [None] and panel.followed() is None


def test_clicking_beside_every_face_goes_back_to_the_rule(qtbot):
    panel = CameraPanel()
    qtbot.addWidget(panel)
    panel.resize(480, 400)
    panel.show()
    output = _two_faces()
    panel.show_output(output)
    panel.show_frame(VideoFrame(10.0, np.zeros((120, 160, 3), np.uint8)))
    qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton, pos=_centre_of(panel, output.faces[0]))
    assert panel.followed() == 1
    with qtbot.waitSignal(panel.follow_requested) as got:
        qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton, pos=QPoint(2, 2))
    assert got.args == [None]


def test_the_follow_request_reaches_the_encoder(qtbot):
    class Encoder:
        follow = None

    encoder = Encoder()
    panel = CameraPanel()
    qtbot.addWidget(panel)
    panel.follow_requested.connect(lambda track: follow_face(encoder, track))
    panel.resize(480, 400)
    panel.show()
    output = _two_faces()
    panel.show_output(output)
    panel.show_frame(VideoFrame(10.0, np.zeros((120, 160, 3), np.uint8)))
    qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton, pos=_centre_of(panel, output.faces[1]))
    assert encoder.follow == 2


def test_the_rule_is_said_in_words():
    assert "the largest face speaks (#1) · click a face to follow it" in primary_sentence(
        _two_faces(), None
    )
    assert "face #7 is not in view" in primary_sentence(_two_faces(), 7)
