"""The timeline: a scrolling plot of the last minute of the fused distribution (or, on
request, one modality's own predictions), one line per canonical label.

Points are stored as they arrive; the plot is redrawn at most five times a second (a
pixel of a minute-wide plot is about a tenth of a second), and only when something
changed, so a burst of estimates costs one redraw. What is drawn is at most one point per
tenth of a second (:func:`thin_series`: the newest point of each tenth, a gap wherever
the tenth held one), with one-pixel lines: the fused estimate comes at up to ~35 Hz, and
a minute of it drawn point by point as two-pixel antialiased lines cost the UI thread
15-20 ms per redraw on the replayed sample (the window's longest stalls in ``emoapp
bench --profile embedded --window``) and 130-480 ms for a restless estimate; thinned and
one pixel wide, 13-28 ms for the same restless minute on this 2-core machine.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from emoapp.core.messages import EncoderOutput, FusedEstimate, Modality, ModalityPrediction
from emoapp.core.taxonomy import CANONICAL_LABELS, NUM_LABELS
from emoapp.ui.style import LABEL_COLORS, MODALITY_TITLES

FUSED = "fused"
_GAP = np.full(NUM_LABELS, np.nan)
DRAW_STEP_S = 0.1
"""The timeline draws at most one point per this many seconds."""


def thin_series(
    x: np.ndarray, values: np.ndarray, step_s: float = DRAW_STEP_S
) -> tuple[np.ndarray, np.ndarray]:
    """At most one point per ``step_s`` of ``x`` (ascending): the last point of each step,
    with NaN for a label wherever any point of that step had NaN there (a gap is never
    hidden). ``values``: one row per point, one column per label."""
    if x.size == 0:
        return x, values
    bins = np.floor(x / step_s).astype(np.int64)
    last = np.flatnonzero(np.diff(bins, append=bins[-1] + 1))
    if last.size == x.size:
        return x, values
    first = np.concatenate(([0], last[:-1] + 1))
    gaps = np.maximum.reduceat(np.isnan(values), first, axis=0)
    thinned = values[last].copy()
    thinned[gaps] = np.nan
    return x[last], thinned


class TimelinePanel(QGroupBox):
    """Last ``window_s`` seconds of estimates, newest at the right (x = 0)."""

    def __init__(
        self, parent: QWidget | None = None, window_s: float = 60.0, redraw_ms: int = 200
    ) -> None:
        super().__init__("Timeline (last minute)", parent)
        self.window_s = window_s
        self._series: dict[str, deque[tuple[float, np.ndarray]]] = {
            FUSED: deque(),
            **{m.value: deque() for m in Modality},
        }
        self._latest_t: float | None = None
        self._dirty = False

        pg.setConfigOptions(antialias=True)
        palette = self.palette()
        self.plot = pg.PlotWidget(background=palette.color(palette.ColorRole.Base))
        axis_pen = pg.mkPen(palette.color(palette.ColorRole.WindowText))
        for side in ("left", "bottom"):
            axis = self.plot.getAxis(side)
            axis.setPen(axis_pen)
            axis.setTextPen(axis_pen)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setYRange(0.0, 1.0, padding=0.02)
        self.plot.setXRange(-window_s, 0.0, padding=0.0)
        self.plot.setLabel("bottom", "seconds ago")
        self.plot.setLabel("left", "probability")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        legend = self.plot.addLegend(offset=(5, 5), colCount=4)
        legend.setLabelTextSize("8pt")
        legend.setLabelTextColor(palette.color(palette.ColorRole.WindowText))
        legend_background = palette.color(palette.ColorRole.Base)
        legend_background.setAlpha(200)
        legend.setBrush(pg.mkBrush(legend_background))
        self._curves = {
            label: self.plot.plot([], [], name=label, pen=pg.mkPen(LABEL_COLORS[label], width=1))
            for label in CANONICAL_LABELS
        }

        self.source_box = QComboBox()
        self.source_box.addItem("Fused estimate", FUSED)
        for m in Modality:
            self.source_box.addItem(f"{MODALITY_TITLES[m]} only", m.value)
        self.source_box.setToolTip("Plot the fused estimate or one modality's own predictions")
        self.source_box.currentIndexChanged.connect(self._source_changed)
        self.gap_note = QLabel("Gaps: no estimate (fuser abstained, or no prediction).")
        self.gap_note.setEnabled(False)

        header = QHBoxLayout()
        header.addWidget(QLabel("Show:"))
        header.addWidget(self.source_box)
        header.addStretch(1)
        header.addWidget(self.gap_note)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.plot, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(redraw_ms)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()

    # -- inputs ------------------------------------------------------------------------

    @Slot(object)
    def add_estimate(self, estimate: FusedEstimate) -> None:
        probs = _GAP if estimate.probs is None else np.asarray(estimate.probs, dtype=float)
        self._append(FUSED, estimate.t, probs)

    @Slot(object)
    def add_output(self, output: EncoderOutput) -> None:
        if isinstance(output, ModalityPrediction):
            # Labels a model cannot express are not plotted as 0: they are absent.
            probs = np.where(output.mask, output.probs, np.nan)
        else:
            probs = _GAP
        self._append(output.modality.value, output.t, probs)

    def clear(self) -> None:
        for series in self._series.values():
            series.clear()
        self._latest_t = None
        self._dirty = True

    # -- what tests read ---------------------------------------------------------------

    def point_count(self, source: str = FUSED) -> int:
        return len(self._series[source])

    def plotted_points(self) -> int:
        """How many points the visible curves hold right now."""
        x, _ = self._curves[CANONICAL_LABELS[0]].getData()
        return 0 if x is None else len(x)

    def shown_source(self) -> str:
        return str(self.source_box.currentData())

    # -- drawing -----------------------------------------------------------------------

    def _append(self, source: str, t: float, probs: np.ndarray) -> None:
        series = self._series[source]
        if series and t < series[-1][0]:
            return  # out of order: the plot only moves forward
        series.append((t, probs))
        if self._latest_t is None or t > self._latest_t:
            self._latest_t = t
        horizon = self._latest_t - self.window_s - 1.0
        for s in self._series.values():
            while s and s[0][0] < horizon:
                s.popleft()
        self._dirty = True

    def _source_changed(self) -> None:
        self._dirty = True
        self._redraw_if_dirty()

    @Slot()
    def _redraw_if_dirty(self) -> None:
        if not self._dirty or self._latest_t is None:
            if self._dirty and self._latest_t is None:
                for curve in self._curves.values():
                    curve.setData([], [])
                self._dirty = False
            return
        self._dirty = False
        series = self._series[self.shown_source()]
        if not series:
            for curve in self._curves.values():
                curve.setData([], [])
            return
        t = np.fromiter((p[0] for p in series), dtype=float, count=len(series))
        values = np.stack([p[1] for p in series])
        x, values = thin_series(t - self._latest_t, values)
        for i, label in enumerate(CANONICAL_LABELS):
            self._curves[label].setData(x, values[:, i], connect="finite")

    def stop(self) -> None:
        self._timer.stop()
