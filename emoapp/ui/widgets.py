"""Small drawing widgets the panels are built from: probability bars, the
valence/arousal circumplex, modality contribution bars, a level meter and a state dot.

Each takes numbers that the core or the session already computed and draws them; none
of them computes an estimate.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS, VALENCE_AROUSAL
from emoapp.ui.style import LABEL_COLORS, MODALITY_COLORS, MODALITY_TITLES

# Values that move less than this (a fraction of a bar) are not worth a repaint.
_REDRAW_STEP = 0.002


def _close(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """True when two arrays (or two Nones) would draw the same."""
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape:
        return False
    return bool(np.max(np.abs(a.astype(float) - b.astype(float)), initial=0.0) < _REDRAW_STEP)


def _text_color(widget: QWidget, dimmed: bool = False) -> QColor:
    role = QPalette.ColorRole.PlaceholderText if dimmed else QPalette.ColorRole.WindowText
    return widget.palette().color(role)


class ProbabilityBars(QWidget):
    """One horizontal bar per canonical label, with its percentage.

    Labels outside the model's mask are drawn as "no vote" rather than as 0 %. With no
    distribution (the fuser abstained, or nothing yet) the bars are empty and greyed,
    never left showing stale values.
    """

    def __init__(self, parent: QWidget | None = None, compact: bool = False) -> None:
        super().__init__(parent)
        self._probs: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._stale = False
        self._compact = compact
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_distribution(
        self, probs: np.ndarray | None, mask: np.ndarray | None = None, stale: bool = False
    ) -> None:
        """Show ``probs`` (None: nothing); ``stale`` greys it out as no longer current."""
        new_probs = None if probs is None else np.asarray(probs, dtype=float)
        new_mask = None if mask is None else np.asarray(mask, dtype=bool)
        new_stale = stale and probs is not None
        unchanged = (
            new_stale == self._stale
            and _close(new_probs, self._probs)
            and _close(new_mask, self._mask)
        )
        self._probs, self._mask, self._stale = new_probs, new_mask, new_stale
        if not unchanged:  # no visible change: no repaint
            self.update()

    def set_stale(self, stale: bool) -> None:
        self._stale = stale and self._probs is not None
        self.update()

    def distribution(self) -> np.ndarray | None:
        return self._probs

    def is_stale(self) -> bool:
        return self._stale

    def _row_height(self) -> int:
        return self.fontMetrics().height() + (2 if self._compact else 6)

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(
            fm.horizontalAdvance("surprised") * 3, self._row_height() * len(CANONICAL_LABELS)
        )

    def minimumSizeHint(self) -> QSize:
        # Rows may shrink below the font's height: the text shrinks with them.
        fm = self.fontMetrics()
        return QSize(
            fm.horizontalAdvance("surprised  100%") + 40,
            int(fm.height() * 0.8) * len(CANONICAL_LABELS),
        )

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        n = len(CANONICAL_LABELS)
        row_h = self.height() / n
        base = QFont(self.font())
        if row_h < self.fontMetrics().height():
            base.setPixelSize(max(6, int(row_h * 0.85)))
        painter.setFont(base)
        fm = painter.fontMetrics()
        name_w = fm.horizontalAdvance("surprised") + 8
        pct_w = fm.horizontalAdvance("100%") + 8
        bar_w = max(4.0, self.width() - name_w - pct_w)
        text = _text_color(self)
        dim = _text_color(self, dimmed=True)
        if self._stale:
            painter.setOpacity(0.45)
        probs = self._probs
        top = int(np.argmax(probs)) if probs is not None else -1
        for i, label in enumerate(CANONICAL_LABELS):
            y = i * row_h
            voted = self._mask is None or bool(self._mask[i])
            has = probs is not None
            font = QFont(base)
            font.setBold(i == top)
            painter.setFont(font)
            painter.setPen(text if has and voted else dim)
            painter.drawText(
                QRectF(0, y, name_w, row_h),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                label,
            )
            track = QRectF(name_w, y + row_h * 0.2, bar_w, row_h * 0.6)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self.palette().color(QPalette.ColorRole.AlternateBase))
            painter.drawRect(track)
            if probs is None:
                continue
            if not voted:
                painter.setPen(dim)
                painter.drawText(
                    QRectF(name_w, y, bar_w + pct_w, row_h),
                    Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                    "no vote",
                )
                continue
            p = float(probs[i])
            color = QColor(LABEL_COLORS[label])
            painter.setBrush(color)
            painter.drawRect(QRectF(track.x(), track.y(), bar_w * p, track.height()))
            painter.setPen(text)
            painter.drawText(
                QRectF(name_w + bar_w, y, pct_w, row_h),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                f"{p:.0%}",
            )
        painter.end()


class CircumplexView(QWidget):
    """The valence/arousal plane: each canonical label at its NRC-VAD position, and a
    dot (with a fading trail) at the estimate's valence and arousal."""

    TRAIL = 30

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._point: tuple[float, float] | None = None
        self._trail: deque[tuple[float, float]] = deque(maxlen=self.TRAIL)
        self._background: QPixmap | None = None
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def set_point(self, valence: float | None, arousal: float | None) -> None:
        if valence is None or arousal is None:
            self._point = None
        else:
            self._point = (valence, arousal)
            self._trail.append(self._point)
        self.update()

    def point(self) -> tuple[float, float] | None:
        return self._point

    def clear(self) -> None:
        self._point = None
        self._trail.clear()
        self.update()

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return width

    def sizeHint(self) -> QSize:
        side = self.fontMetrics().height() * 12
        return QSize(side, side)

    def minimumSizeHint(self) -> QSize:
        side = self.fontMetrics().height() * 7
        return QSize(side, side)

    def _to_px(self, area: QRectF, valence: float, arousal: float) -> QPointF:
        return QPointF(
            area.left() + valence * area.width(), area.bottom() - arousal * area.height()
        )

    def _area(self) -> QRectF | None:
        margin = self.fontMetrics().height() + 2
        side = min(self.width(), self.height()) - 2 * margin
        if side <= 10:
            return None
        return QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)

    def resizeEvent(self, event) -> None:
        self._background = None
        super().resizeEvent(event)

    def changeEvent(self, event) -> None:
        self._background = None  # palette or font changed
        super().changeEvent(event)

    def _draw_background(self, area: QRectF) -> QPixmap:
        """The plane, its axes and the label positions: drawn once per size."""
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(int(self.width() * ratio), int(self.height() * ratio))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        margin = self.fontMetrics().height() + 2
        dim = _text_color(self, dimmed=True)
        painter.setPen(QPen(dim, 1))
        painter.setBrush(self.palette().color(QPalette.ColorRole.Base))
        painter.drawEllipse(area)
        center = area.center()
        painter.drawLine(QPointF(area.left(), center.y()), QPointF(area.right(), center.y()))
        painter.drawLine(QPointF(center.x(), area.top()), QPointF(center.x(), area.bottom()))
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, self.font().pointSizeF() * 0.8))
        painter.setFont(small)
        sfm = painter.fontMetrics()
        painter.setPen(dim)
        painter.drawText(
            QRectF(area.left(), area.bottom(), area.width(), margin),
            Qt.AlignmentFlag.AlignCenter,
            "valence →",
        )
        painter.save()
        painter.translate(area.left() - 2, area.bottom())
        painter.rotate(-90)
        painter.drawText(
            QRectF(0, -margin, area.height(), margin),
            Qt.AlignmentFlag.AlignCenter,
            "arousal →",
        )
        painter.restore()
        # Label names beside their dots, nudged down where they would overlap (anger,
        # fear and disgust sit close together); a leader line joins a nudged name.
        placed: list[QRectF] = []
        for label, (valence, arousal) in sorted(VALENCE_AROUSAL.items(), key=lambda kv: -kv[1][1]):
            pos = self._to_px(area, valence, arousal)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(LABEL_COLORS[label]))
            painter.drawEllipse(pos, 3, 3)
            w, h = sfm.horizontalAdvance(label) + 2, sfm.height()
            x = pos.x() - 6 - w if valence > 0.7 else pos.x() + 6
            rect = QRectF(x, pos.y() - h / 2, w, h)
            while any(rect.intersects(other) for other in placed):
                rect.translate(0, 2)
            placed.append(rect)
            painter.setPen(QPen(dim, 1))
            if abs(rect.center().y() - pos.y()) > 2:
                edge = rect.left() if rect.left() > pos.x() else rect.right()
                painter.drawLine(pos, QPointF(edge, rect.center().y()))
            painter.drawText(
                rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, label
            )
        painter.end()
        return pixmap

    def paintEvent(self, event) -> None:
        area = self._area()
        if area is None:
            return
        if self._background is None:
            self._background = self._draw_background(area)
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._background)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = _text_color(self)
        # Trail, oldest faintest.
        trail = list(self._trail)
        if len(trail) > 1:
            path = QPainterPath(self._to_px(area, *trail[0]))
            for v, a in trail[1:]:
                path.lineTo(self._to_px(area, v, a))
            pen = QPen(text)
            pen.setWidthF(1.0)
            color = QColor(text)
            color.setAlpha(80)
            pen.setColor(color)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
        if self._point is not None:
            pos = self._to_px(area, *self._point)
            painter.setPen(QPen(QColor("white"), 2))
            painter.setBrush(text)
            painter.drawEllipse(pos, 6, 6)
        painter.end()


class ContributionBar(QWidget):
    """One stacked bar: each contributing modality's share of the fused weight."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._shares: dict[Modality, float] = {}
        self.setMinimumHeight(self.fontMetrics().height() + 6)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_shares(self, shares: dict[Modality, float]) -> None:
        shares = dict(shares)
        if shares.keys() == self._shares.keys() and all(
            abs(v - self._shares[m]) < _REDRAW_STEP for m, v in shares.items()
        ):
            return  # no visible change: no repaint
        self._shares = shares
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(200, self.fontMetrics().height() + 6)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(_text_color(self, dimmed=True), 1))
        painter.setBrush(self.palette().color(QPalette.ColorRole.AlternateBase))
        painter.drawRect(rect)
        x = rect.left()
        for modality in Modality:
            share = self._shares.get(modality)
            if not share:
                continue
            w = rect.width() * share
            seg = QRectF(x, rect.top(), w, rect.height())
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(MODALITY_COLORS[modality]))
            painter.drawRect(seg)
            caption = f"{MODALITY_TITLES[modality]} {share:.0%}"
            if self.fontMetrics().horizontalAdvance(caption) + 6 < w:
                painter.setPen(QColor("white"))
                painter.drawText(seg, Qt.AlignmentFlag.AlignCenter, caption)
            x += w
        painter.end()


class LevelMeter(QWidget):
    """A horizontal input level meter in dBFS (-60 to 0), with a peak hold marker."""

    FLOOR_DB = -60.0

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._db: float | None = None
        self._peak: float | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(self.fontMetrics().height())

    def set_level(self, dbfs: float | None) -> None:
        self._db = dbfs
        if dbfs is None:
            self._peak = None
        else:
            # Peak hold falls back by 1 dB per update.
            self._peak = dbfs if self._peak is None else max(dbfs, self._peak - 1.0)
        self.update()

    def level(self) -> float | None:
        return self._db

    def sizeHint(self) -> QSize:
        return QSize(200, self.fontMetrics().height())

    def _fraction(self, db: float) -> float:
        return min(1.0, max(0.0, (db - self.FLOOR_DB) / -self.FLOOR_DB))

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(_text_color(self, dimmed=True), 1))
        painter.setBrush(self.palette().color(QPalette.ColorRole.AlternateBase))
        painter.drawRect(rect)
        if self._db is not None:
            frac = self._fraction(self._db)
            color = "#1a9641" if self._db < -12 else ("#e69f00" if self._db < -3 else "#c0392b")
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(color))
            painter.drawRect(QRectF(rect.left(), rect.top(), rect.width() * frac, rect.height()))
        if self._peak is not None:
            x = rect.left() + rect.width() * self._fraction(self._peak)
            painter.setPen(QPen(_text_color(self), 2))
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        painter.end()


class StateDot(QWidget):
    """A small filled circle whose colour says a state (running, failed, ...)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._color = QColor("#8c8c8c")
        side = self.fontMetrics().height() * 0.7
        self.setFixedSize(QSize(int(side) + 2, int(side) + 2))

    def set_color(self, color: str) -> None:
        self._color = QColor(color)
        self.update()

    def color(self) -> str:
        return self._color.name()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._color)
        painter.drawEllipse(QRectF(self.rect()).adjusted(1, 1, -1, -1))
        painter.end()
