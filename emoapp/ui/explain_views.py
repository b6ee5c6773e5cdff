"""How explanations are drawn: a saliency grid over a face, highlighted words, a band of
voice moments. Each shows what the *model* used for the label it shows (where it looked,
which words and moments moved it), never why a person feels anything.

The panels own a checkbox each ("Explain"); while any is on the window asks the session
for explanations at most every :data:`EXPLAIN_EVERY_S` seconds (and once at once).
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from emoapp.core.explanation import FaceSaliency, TextExplanation, VoiceExplanation
from emoapp.ui.style import LABEL_COLORS

EXPLAIN_EVERY_S = 1.0
"""While an explanation view is on: at most one explanation per modality this often."""
EXPLANATION_MAX_AGE_S = 3.0
"""A face overlay older than this (frame clock) is not drawn: the face has moved on."""
OVERLAY_ALPHA = 170
"""Opacity (0-255) of the strongest saliency cell."""
OVERLAY_COLOR = "#00c8ff"
"""Saliency cells are this cyan (it stands out on every skin tone and on the label
colours); the dashed outline around them is the explained label's colour."""

MEANING = (
    "Where the model looked (face), which words moved it (text), which moments of the "
    "audio drove it (voice), for the label it shows. It describes the model, not the "
    "person: not why anyone feels anything, nor that they feel it."
)


def help_html(every_s: float) -> str:
    """The Help text on explanations: what each view shows and what it does not."""
    return (
        "<p>Each panel's explanation box asks the models <i>what they used</i> for the "
        f"label they show, at most every {every_s:g} s, on a low-priority thread.</p>"
        "<ul>"
        "<li><b>Face</b> (camera panel, picture mode only): a grid over the face, strongest "
        "where the face model's evidence for its label came from (Grad-CAM for the "
        "built-in network, gradient x input for transformers models).</li>"
        "<li><b>Text</b>: each word on a background as strong as it pushed the label "
        "(grey-blue: against it). Exact for the built-in model; otherwise how much the "
        "label drops when the word is deleted.</li>"
        "<li><b>Voice</b>: a band over the newest 2 s window, strongest where silencing a "
        "quarter second lowers the label most.</li>"
        "</ul>"
        "<p><b>What they do not mean.</b> They describe the model, not the person: where "
        "it looked, not why anyone feels anything, nor that they feel what the label says. "
        "A map can highlight the background or a word that has nothing to do with emotion; "
        "that tells you about the model's habits, not about the person.</p>"
    )


def draw_saliency(
    painter: QPainter, target: QRectF, scale: float, faces: tuple[FaceSaliency, ...]
) -> None:
    """Each face's grid over its region, one translucent cyan cell per grid cell
    (stronger where the model's evidence was), outlined in the explained label's
    colour."""
    painter.save()
    painter.setPen(Qt.PenStyle.NoPen)
    for face in faces:
        x, y, w, h = face.box
        rows, cols = face.grid.shape
        color = QColor(OVERLAY_COLOR)
        cw, ch = w * scale / cols, h * scale / rows
        left, top = target.x() + x * scale, target.y() + y * scale
        for r in range(rows):
            for c in range(cols):
                value = float(face.grid[r, c])
                if value <= 0.05:
                    continue
                color.setAlpha(int(OVERLAY_ALPHA * min(1.0, value)))
                painter.setBrush(color)
                painter.drawRect(QRectF(left + c * cw, top + r * ch, cw, ch))
        painter.setPen(QPen(QColor(LABEL_COLORS[face.label]), 1, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(left, top, w * scale, h * scale))
        painter.setPen(Qt.PenStyle.NoPen)
    painter.restore()


def highlighted_html(explanation: TextExplanation) -> str:
    """The words as HTML, each on a background whose strength is its weight relative to
    the strongest: the label's colour for words that raised it, grey-blue for words
    that lowered it."""
    weights = np.array([w.weight for w in explanation.words], dtype=np.float64)
    top = float(np.max(np.abs(weights))) if weights.size else 0.0
    color = QColor(LABEL_COLORS[explanation.label])
    parts = []
    for word in explanation.words:
        strength = abs(word.weight) / top if top > 0 else 0.0
        base = color if word.weight >= 0 else QColor("#5b7a99")
        rgba = f"rgba({base.red()},{base.green()},{base.blue()},{0.15 + 0.85 * strength:.2f})"
        style = f"background-color:{rgba};" if strength >= 0.05 else ""
        tip = f"{word.weight:+.3f} {explanation.unit}".strip()
        parts.append(
            f'<span style="{style}" title="{html.escape(tip)}">{html.escape(word.word)}</span>'
        )
    return " ".join(parts)


class WordHighlights(QLabel):
    """The explained text with its words highlighted by weight (held only while shown:
    the words are what the person typed)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setWordWrap(True)
        self.setToolTip(MEANING)
        self.explanation: TextExplanation | None = None

    def set_explanation(self, explanation: TextExplanation | None) -> None:
        self.explanation = explanation
        if explanation is None:
            self.clear()
            return
        self.setText(
            f"<b>{html.escape(explanation.label)}</b> because of: " + highlighted_html(explanation)
        )

    def clear_explanation(self) -> None:
        self.set_explanation(None)


class MomentBand(QWidget):
    """The stretches of the newest explained voice window, side by side: stronger where
    silencing the stretch lowered the label most."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.explanation: VoiceExplanation | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(self.fontMetrics().height())
        self.setToolTip(MEANING)

    def sizeHint(self) -> QSize:
        return QSize(200, self.fontMetrics().height())

    def set_explanation(self, explanation: VoiceExplanation | None) -> None:
        self.explanation = explanation
        self.update()

    def strengths(self) -> list[float]:
        """Each moment's weight over the largest positive one, clipped to [0, 1]."""
        if self.explanation is None or not self.explanation.moments:
            return []
        weights = np.array([m.weight for m in self.explanation.moments])
        top = float(weights.max())
        if top <= 0:
            return [0.0] * len(weights)
        return [float(v) for v in np.clip(weights / top, 0.0, 1.0)]

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(self.palette().color(self.foregroundRole()), 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect)
        strengths = self.strengths()
        if strengths and self.explanation is not None:
            color = QColor(LABEL_COLORS[self.explanation.label])
            width = rect.width() / len(strengths)
            painter.setPen(Qt.PenStyle.NoPen)
            for i, strength in enumerate(strengths):
                color.setAlpha(int(255 * strength))
                painter.setBrush(color)
                painter.drawRect(QRectF(rect.x() + i * width, rect.y(), width, rect.height()))
        painter.end()
