"""The camera panel: the live preview with a box, track id and top label on each
detected face, and the privacy modes that blur faces or hide the picture and show scores
only.

Which face speaks for the face modality (the *primary* face) follows a rule the panel
states under the picture: the largest tracked face by default. Clicking a face in the
preview follows it (its track id is handed to the face encoder through
:attr:`CameraPanel.follow_requested`); clicking it again, or clicking beside every face,
goes back to the rule. The followed face is drawn with a thick border and "following".

The preview draws only the newest frame it was handed (the bridge drops stale ones). In
"scores only" mode a frame is dropped the moment it arrives: no picture is converted,
kept or drawn. In "blur faces" mode each face box of the latest face prediction is
pixelated before the picture is drawn; when no recent face position is known the whole
picture is blurred rather than risk showing a face.
"""

from __future__ import annotations

import enum

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from emoapp.core.explanation import FaceExplanation, FaceSaliency
from emoapp.core.messages import (
    EncoderOutput,
    FaceDetection,
    Modality,
    ModalityPrediction,
    NoPrediction,
    VideoFrame,
)
from emoapp.core.taxonomy import LABEL_INDEX
from emoapp.ui.explain_views import EXPLANATION_MAX_AGE_S, MEANING, draw_saliency
from emoapp.ui.style import LABEL_COLORS
from emoapp.ui.widgets import ProbabilityBars


class PreviewMode(enum.StrEnum):
    """What the camera preview shows."""

    PICTURE = "picture"
    BLUR_FACES = "blur"
    SCORES_ONLY = "scores"

    @property
    def caption(self) -> str:
        return {
            PreviewMode.PICTURE: "Show picture",
            PreviewMode.BLUR_FACES: "Blur faces",
            PreviewMode.SCORES_ONLY: "Scores only (no picture)",
        }[self]


# Face boxes older than this (seconds, frame clock) are not trusted to cover a face.
FACE_BOX_MAX_AGE_S = 1.0
_BLUR_MARGIN = 0.25
_BLUR_BLOCKS = 8


def frame_to_image(image: np.ndarray) -> QImage:
    """An RGB uint8 (H x W x 3) array -> a QImage that owns a copy of the pixels."""
    rgb = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def pixelate(image: QImage, rect: QRect) -> None:
    """Replace ``rect`` of ``image`` by a coarse, smoothed version of itself (in place)."""
    rect = rect.intersected(image.rect())
    if rect.width() < 2 or rect.height() < 2:
        return
    region = image.copy(rect)
    small = region.scaled(
        _BLUR_BLOCKS,
        _BLUR_BLOCKS,
        Qt.AspectRatioMode.IgnoreAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    coarse = small.scaled(
        rect.size(),
        Qt.AspectRatioMode.IgnoreAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    painter = QPainter(image)
    painter.drawImage(rect.topLeft(), coarse)
    painter.end()


def _expanded(box: tuple[int, int, int, int], margin: float) -> QRect:
    x, y, w, h = box
    dx, dy = int(w * margin), int(h * margin)
    return QRect(x - dx, y - dy, w + 2 * dx, h + 2 * dy)


class PreviewView(QWidget):
    """Draws one picture scaled to fit, with face boxes and labels on top."""

    face_clicked = Signal(object)  # the clicked face's track id, or None (no face there)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._faces: tuple[FaceDetection, ...] = ()
        self._primary: int | None = None
        self._followed: int | None = None
        self._saliency: tuple[FaceSaliency, ...] = ()
        self._message = "No camera picture"
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)

    def sizeHint(self) -> QSize:
        return QSize(480, 360)

    def set_picture(
        self,
        image: QImage | None,
        faces: tuple[FaceDetection, ...],
        saliency: tuple[FaceSaliency, ...] = (),
        primary: int | None = None,
        followed: int | None = None,
    ) -> None:
        """Show ``image`` with ``faces``; ``primary`` is the index of the face that gives
        the prediction, ``followed`` the track id a person chose to follow."""
        self._image = image
        self._faces = faces
        self._primary = primary
        self._followed = followed
        self._saliency = saliency if image is not None else ()
        self.update()

    def saliency(self) -> tuple[FaceSaliency, ...]:
        """The saliency grids drawn over the picture now."""
        return self._saliency

    def set_message(self, message: str) -> None:
        self._message = message
        self.update()

    def has_picture(self) -> bool:
        return self._image is not None

    def picture(self) -> QImage | None:
        return self._image

    def faces(self) -> tuple[FaceDetection, ...]:
        return self._faces

    def _target(self) -> tuple[QRectF, float] | None:
        if self._image is None:
            return None
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        target = QRectF(
            (self.width() - iw * scale) / 2,
            (self.height() - ih * scale) / 2,
            iw * scale,
            ih * scale,
        )
        return target, scale

    def face_rect(self, face: FaceDetection) -> QRectF | None:
        """Where a face's box is drawn, in widget coordinates."""
        placed = self._target()
        if placed is None:
            return None
        target, scale = placed
        x, y, w, h = face.box
        return QRectF(target.x() + x * scale, target.y() + y * scale, w * scale, h * scale)

    def face_at(self, point: QPointF) -> FaceDetection | None:
        """The smallest face whose drawn box holds ``point`` (widget coordinates)."""
        hits = []
        for face in self._faces:
            rect = self.face_rect(face)
            if rect is not None and rect.contains(point):
                hits.append((face.area, face))
        return min(hits, key=lambda hit: hit[0])[1] if hits else None

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._image is not None:
            face = self.face_at(event.position())
            self.face_clicked.emit(None if face is None else face.track_id)
            event.accept()
            return
        super().mousePressEvent(event)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#202020"))
        if self._image is None:
            painter.setPen(QColor("#c8c8c8"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._message)
            painter.end()
            return
        placed = self._target()
        assert placed is not None
        target, scale = placed
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        if self._saliency:
            draw_saliency(painter, target, scale, self._saliency)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        fm = painter.fontMetrics()
        for index, face in enumerate(self._faces):
            x, y, w, h = face.box
            rect = QRectF(target.x() + x * scale, target.y() + y * scale, w * scale, h * scale)
            color = QColor(LABEL_COLORS[face.label])
            followed = self._followed is not None and face.track_id == self._followed
            primary = index == self._primary
            pen = QPen(color, 4 if followed else 2)
            if not primary:
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect)
            caption = face_caption(face, followed)
            tw, th = fm.horizontalAdvance(caption) + 8, fm.height() + 2
            ty = rect.top() - th if rect.top() - th >= target.top() else rect.top()
            painter.fillRect(QRectF(rect.left(), ty, tw, th), color)
            painter.setPen(QColor("black"))
            painter.drawText(QPointF(rect.left() + 4, ty + fm.ascent() + 1), caption)
        painter.end()


def face_caption(face: FaceDetection, followed: bool = False) -> str:
    """A face's caption in the preview: ``#3 happy 81%`` (track id, label, its share),
    with ``· following`` on the followed face."""
    text = f"{face.label} {float(face.probs[LABEL_INDEX[face.label]]):.0%}"
    if face.track_id is not None:
        text = f"#{face.track_id} {text}"
    return text + (" · following" if followed else "")


def primary_sentence(output: ModalityPrediction, followed: int | None) -> str:
    """Which face speaks for the face modality, and why, in words."""
    n = len(output.faces)
    faces = f"{n} face{'s' if n != 1 else ''}"
    rule = output.detail.get("primary_rule")
    if rule == "followed" and followed is not None:
        return f"{faces} · following face #{followed} (click it again to stop)"
    if followed is not None:
        return f"{faces} · face #{followed} is not in view: the {rule or 'largest'} face speaks"
    index = output.detail.get("primary_index", 0)
    ids = [f.track_id for f in output.faces]
    which = f" (#{ids[index]})" if 0 <= index < n and ids[index] is not None else ""
    tail = " · click a face to follow it" if any(i is not None for i in ids) else ""
    return f"{faces} · the {rule or 'largest'} face speaks{which}{tail}"


class CameraPanel(QGroupBox):
    """Preview, privacy mode and the latest face prediction."""

    mode_changed = Signal(object)  # PreviewMode
    explain_toggled = Signal(bool)
    follow_requested = Signal(object)  # a track id to follow, or None: back to the rule

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Camera · face", parent)
        self._mode = PreviewMode.PICTURE
        self._faces: tuple[FaceDetection, ...] = ()
        self._faces_t: float | None = None
        self._primary: int | None = None
        self._followed: int | None = None
        self._explanation: FaceExplanation | None = None

        self.mode_box = QComboBox()
        for mode in PreviewMode:
            self.mode_box.addItem(mode.caption, mode.value)
        self.mode_box.setToolTip("Privacy: blur faces in the preview, or show no picture at all")
        self.mode_box.currentIndexChanged.connect(self._mode_box_changed)
        self.explain_box = QCheckBox("Where the model looked")
        self.explain_box.setToolTip(
            MEANING + " Drawn only while the picture is shown (never blurred or hidden)."
        )
        self.explain_box.toggled.connect(self._explain_toggled)
        self.view = PreviewView()
        self.view.face_clicked.connect(self._face_clicked)
        self.result = QLabel("Face: —")
        font = QFont(self.font())
        font.setBold(True)
        self.result.setFont(font)
        self.reason = QLabel("")
        self.reason.setEnabled(False)
        self.bars = ProbabilityBars(compact=True)

        header = QHBoxLayout()
        header.addWidget(QLabel("Preview:"))
        header.addWidget(self.mode_box)
        header.addStretch(1)
        header.addWidget(self.explain_box)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        row = QHBoxLayout()
        row.addWidget(self.result)
        row.addWidget(self.reason, 1)
        layout.addLayout(row)
        layout.addWidget(self.bars)
        self.bars.setVisible(False)

    # -- privacy mode ------------------------------------------------------------------

    def mode(self) -> PreviewMode:
        return self._mode

    def set_mode(self, mode: PreviewMode) -> None:
        index = self.mode_box.findData(mode.value)
        if index != self.mode_box.currentIndex():
            self.mode_box.setCurrentIndex(index)  # calls _mode_box_changed
        else:
            self._apply_mode(mode)

    def _mode_box_changed(self) -> None:
        self._apply_mode(PreviewMode(self.mode_box.currentData()))

    def _apply_mode(self, mode: PreviewMode) -> None:
        changed = mode is not self._mode
        self._mode = mode
        # Never keep a picture across a switch into a stricter mode.
        self.view.set_picture(None, ())
        scores_only = mode is PreviewMode.SCORES_ONLY
        # The overlay shows where a face is: only over a picture that shows it.
        self.explain_box.setEnabled(mode is PreviewMode.PICTURE)
        self.view.set_message("Picture hidden: scores only" if scores_only else "No camera picture")
        self.bars.setVisible(scores_only)
        if changed:
            self.mode_changed.emit(mode)

    # -- inputs ------------------------------------------------------------------------

    @Slot(object)
    def show_frame(self, frame: VideoFrame) -> None:
        if self._mode is PreviewMode.SCORES_ONLY:
            return  # dropped unseen
        image = frame_to_image(frame.image)
        faces = self._faces if self._faces_fresh(frame.t) else ()
        if self._mode is PreviewMode.BLUR_FACES:
            if faces:
                for face in faces:
                    pixelate(image, _expanded(face.box, _BLUR_MARGIN))
            else:
                pixelate(image, image.rect())
        primary = self._primary if faces else None
        self.view.set_picture(image, faces, self._overlay(frame.t), primary, self._followed)

    @Slot(object)
    def show_output(self, output: EncoderOutput) -> None:
        if output.modality is not Modality.FACE:
            return
        if isinstance(output, NoPrediction):
            self._faces, self._faces_t = (), output.t
            self.result.setEnabled(False)
            self.reason.setText(f"now: {output.reason}")
            self.bars.set_stale(True)
            return
        assert isinstance(output, ModalityPrediction)
        self.result.setEnabled(True)
        self._faces, self._faces_t = output.faces, output.t
        self._primary = int(output.detail.get("primary_index", 0))
        top = float(output.probs[LABEL_INDEX[output.label]])
        text = f"Face: {output.label} {top:.0%}"
        if output.baseline:
            text += " · baseline"
        self.result.setText(text)
        self.reason.setText(primary_sentence(output, self._followed) if output.faces else "")
        self.bars.set_distribution(output.probs, output.mask)

    # -- following a face --------------------------------------------------------------

    def followed(self) -> int | None:
        """The track id of the face a person chose to follow (None: the rule decides)."""
        return self._followed

    @Slot(object)
    def _face_clicked(self, track_id: int | None) -> None:
        if track_id is None or track_id == self._followed:
            self._followed = None
        else:
            self._followed = int(track_id)
        self.follow_requested.emit(self._followed)

    # -- explanations ------------------------------------------------------------------

    def explaining(self) -> bool:
        """True while the overlay is asked for and may be drawn (picture mode)."""
        return self.explain_box.isChecked() and self._mode is PreviewMode.PICTURE

    def _explain_toggled(self, on: bool) -> None:
        if not on:
            self._explanation = None
        self.explain_toggled.emit(on)

    @Slot(object)
    def show_explanation(self, explanation: object) -> None:
        if isinstance(explanation, FaceExplanation) and self.explain_box.isChecked():
            self._explanation = explanation

    @Slot(object, float)
    def forget(self, origin: Modality, _t: float = 0.0) -> None:
        """The camera was withdrawn: the saliency of its last frame goes."""
        if origin is Modality.FACE:
            self._explanation = None

    def _overlay(self, frame_t: float) -> tuple[FaceSaliency, ...]:
        e = self._explanation
        if e is None or not self.explaining() or abs(frame_t - e.t) > EXPLANATION_MAX_AGE_S:
            return ()
        return e.faces

    def clear(self, message: str = "No camera picture") -> None:
        self._faces, self._faces_t = (), None
        self._primary = None
        self._explanation = None
        self.view.set_picture(None, ())
        if self._mode is not PreviewMode.SCORES_ONLY:
            self.view.set_message(message)
        self.result.setText("Face: —")
        self.result.setEnabled(True)
        self.reason.setText("")
        self.bars.set_distribution(None)

    def _faces_fresh(self, frame_t: float) -> bool:
        return (
            self._faces_t is not None
            and bool(self._faces)
            and abs(frame_t - self._faces_t) <= FACE_BOX_MAX_AGE_S
        )
