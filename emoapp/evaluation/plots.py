"""The report's figures, drawn with OpenCV (no plotting library needed): confusion-matrix
heatmaps, reliability diagrams, and bar charts with confidence-interval whiskers.

Each function writes one PNG and returns its path. cv2 is imported when a figure is
drawn, never when the module is imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.core.errors import EmoappError
from emoapp.evaluation.metrics import Interval, ReliabilityBin

_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GREY = (170, 170, 170)
_LIGHT = (225, 225, 225)
_BLUE = (180, 110, 40)  # BGR
_RED = (60, 60, 210)
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def _cv2() -> Any:
    import cv2

    return cv2


def _canvas(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 255, dtype=np.uint8)


def _text(
    img: np.ndarray,
    text: str,
    x: int,
    y: int,
    scale: float = 0.45,
    color: tuple[int, int, int] = _BLACK,
    align: str = "left",
    thickness: int = 1,
) -> None:
    """Text whose baseline is at ``y``; ``align`` left, center or right of ``x``."""
    cv2 = _cv2()
    (w, _), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    if align == "center":
        x -= w // 2
    elif align == "right":
        x -= w
    cv2.putText(img, text, (int(x), int(y)), _FONT, scale, color, thickness, cv2.LINE_AA)


def _save(img: np.ndarray, path: Path) -> Path:
    cv2 = _cv2()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise EmoappError(f"cannot write the figure {path}")
    return path


def _short(label: str) -> str:
    return label[:3]


def confusion_png(path: Path, confusion: np.ndarray, labels: Sequence[str], title: str) -> Path:
    """Rows are gold labels, columns predictions; each cell is shaded by its share of
    the row and shows the count."""
    cv2 = _cv2()
    n = len(labels)
    cell = 56
    left, top = 110, 80
    width, height = left + n * cell + 30, top + n * cell + 60
    img = _canvas(width, height)
    _text(img, title, width // 2, 26, 0.55, align="center", thickness=1)
    _text(img, "predicted", left + n * cell // 2, 52, 0.45, _GREY, "center")
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.where(rows > 0, confusion / np.maximum(rows, 1), 0.0)
    for i in range(n):
        _text(img, labels[i], left - 8, top + i * cell + cell // 2 + 5, 0.45, align="right")
        _text(img, _short(labels[i]), left + i * cell + cell // 2, top - 8, 0.45, align="center")
        for j in range(n):
            v = float(share[i, j])
            # White to a deep blue as the share of the row grows.
            color = tuple(int(255 - v * (255 - c)) for c in (140, 60, 20))
            x0, y0 = left + j * cell, top + i * cell
            cv2.rectangle(img, (x0, y0), (x0 + cell, y0 + cell), color, -1)
            cv2.rectangle(img, (x0, y0), (x0 + cell, y0 + cell), _LIGHT, 1)
            count = int(confusion[i, j])
            if count:
                ink = _WHITE if v > 0.55 else _BLACK
                _text(img, str(count), x0 + cell // 2, y0 + cell // 2 + 5, 0.42, ink, "center")
    _text(img, "gold", 12, top - 8, 0.45, _GREY)
    _text(img, "cells: count, shaded by share of the gold row", left, height - 20, 0.4, _GREY)
    return _save(img, path)


def reliability_png(path: Path, bins: Sequence[ReliabilityBin], ece: float, title: str) -> Path:
    """Accuracy per confidence bin (bars) against the diagonal of perfect calibration;
    red outlines show the mean confidence of each bin; grey bars below show how many
    items fall in each bin."""
    cv2 = _cv2()
    left, top, size, hist = 70, 50, 360, 60
    width, height = left + size + 40, top + size + hist + 90
    img = _canvas(width, height)
    _text(img, f"{title} (ECE {ece:.3f})", width // 2, 28, 0.5, align="center")
    x0, y0, x1, y1 = left, top, left + size, top + size

    def px(v: float) -> int:
        return round(x0 + v * size)

    def py(v: float) -> int:
        return round(y1 - v * size)

    for k in range(6):
        v = k / 5
        cv2.line(img, (x0, py(v)), (x1, py(v)), _LIGHT, 1)
        _text(img, f"{v:.1f}", x0 - 6, py(v) + 4, 0.38, align="right")
        _text(img, f"{v:.1f}", px(v), y1 + 16, 0.38, align="center")
    for b in bins:
        if not b.count:
            continue
        cv2.rectangle(img, (px(b.lower) + 1, py(b.accuracy)), (px(b.upper) - 1, y1), _BLUE, -1)
        cv2.rectangle(img, (px(b.lower) + 1, py(b.confidence)), (px(b.upper) - 1, y1), _RED, 1)
    cv2.line(img, (x0, y1), (x1, y0), _GREY, 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x1, y1), _BLACK, 1)
    _text(img, "accuracy", 8, y0 - 12, 0.4, _GREY)
    _text(img, "confidence (top label)", (x0 + x1) // 2, y1 + 34, 0.4, _GREY, "center")
    most = max((b.count for b in bins), default=0)
    base = y1 + hist + 40
    for b in bins:
        if b.count and most:
            h = max(1, round(b.count / most * hist))
            cv2.rectangle(img, (px(b.lower) + 1, base - h), (px(b.upper) - 1, base), _GREY, -1)
    _text(img, f"items per bin (max {most})", x1, base + 16, 0.38, _GREY, "right")
    _text(img, "blue: accuracy; red outline: mean confidence", x0, base + 34, 0.38, _GREY)
    return _save(img, path)


def bars_png(
    path: Path,
    names: Sequence[str],
    values: Sequence[float],
    title: str,
    intervals: Sequence[Interval | None] | None = None,
    counts: Sequence[int] | None = None,
) -> Path:
    """Vertical bars in [0, 1] with optional interval whiskers and item counts."""
    cv2 = _cv2()
    n = max(1, len(names))
    bar = 70 if n <= 8 else 44
    left, top, plot_h = 60, 50, 300
    width = max(360, left + n * bar + 30)
    height = top + plot_h + 80
    img = _canvas(width, height)
    _text(img, title, width // 2, 28, 0.5, align="center")
    y1 = top + plot_h

    def py(v: float) -> int:
        return round(y1 - max(0.0, min(1.0, v)) * plot_h)

    for k in range(6):
        v = k / 5
        cv2.line(img, (left, py(v)), (left + n * bar, py(v)), _LIGHT, 1)
        _text(img, f"{v:.1f}", left - 6, py(v) + 4, 0.38, align="right")
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        x0 = left + i * bar + 8
        x1 = left + (i + 1) * bar - 8
        interval = intervals[i] if intervals else None
        if not math.isnan(value):
            cv2.rectangle(img, (x0, py(value)), (x1, y1), _BLUE, -1)
            above = value
            if interval is not None and not math.isnan(interval.high):
                above = max(value, interval.high)
            _text(img, f"{value:.2f}", (x0 + x1) // 2, py(above) - 6, 0.38, align="center")
        if interval is not None and not math.isnan(interval.low):
            cx = (x0 + x1) // 2
            cv2.line(img, (cx, py(interval.low)), (cx, py(interval.high)), _BLACK, 1)
            cv2.line(img, (cx - 5, py(interval.low)), (cx + 5, py(interval.low)), _BLACK, 1)
            cv2.line(img, (cx - 5, py(interval.high)), (cx + 5, py(interval.high)), _BLACK, 1)
        label = name if len(name) <= 12 else name[:11] + "."
        _text(img, label, (x0 + x1) // 2, y1 + 18, 0.36, align="center")
        if counts is not None:
            _text(img, f"n={counts[i]}", (x0 + x1) // 2, y1 + 34, 0.33, _GREY, "center")
    cv2.line(img, (left, y1), (left + n * bar, y1), _BLACK, 1)
    if intervals:
        _text(img, "whiskers: 95% bootstrap interval", left, height - 14, 0.36, _GREY)
    return _save(img, path)
