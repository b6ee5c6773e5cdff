"""The fused panel: the fused distribution, its top label and confidence, the
valence/arousal view, each modality's contribution, and a warning when the modalities
disagree. When the fuser abstains the panel says why instead of showing stale bars."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from emoapp.core.fusion import FusionConfig, driver_sentence
from emoapp.core.messages import FusedEstimate, Modality
from emoapp.core.taxonomy import LABEL_INDEX
from emoapp.ui.style import CAVEAT, LABEL_COLORS, MODALITY_COLORS, MODALITY_TITLES, WARNING_COLOR
from emoapp.ui.widgets import CircumplexView, ContributionBar, ProbabilityBars, StateDot


class _ContributionRow:
    """One modality's line under the contribution bar: share, its own top label."""

    def __init__(self, grid: QGridLayout, row: int, modality: Modality) -> None:
        self.dot = StateDot()
        self.dot.set_color(MODALITY_COLORS[modality])
        self.name = QLabel(MODALITY_TITLES[modality])
        self.share = QLabel("—")
        self.share.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.detail = QLabel("not contributing")
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for col, w in enumerate((self.dot, self.name, self.share, self.detail)):
            grid.addWidget(w, row, col)
        self.value: float | None = None

    def show(self, share: float | None, detail: str) -> None:
        self.value = share
        self.share.setText("—" if share is None else f"{share:.0%}")
        self.detail.setText(detail)
        self.detail.setEnabled(share is not None)
        self.name.setEnabled(share is not None)


class FusedPanel(QGroupBox):
    """Draws each :class:`FusedEstimate` it is given."""

    def __init__(self, parent: QWidget | None = None, max_rate_hz: float = 15.0) -> None:
        super().__init__("Fused estimate", parent)
        self._threshold = FusionConfig().disagreement_threshold
        self._estimate: FusedEstimate | None = None
        self._pending: FusedEstimate | None = None
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.setInterval(int(1000 / max_rate_hz))
        self._throttle.timeout.connect(self._on_throttle)

        self.headline = QLabel("Waiting for the first estimate…")
        self.headline.setToolTip("The fused top label and its fused probability")
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        self.headline.setFont(font)
        self.subline = QLabel("")
        self.subline.setWordWrap(True)

        self.bars = ProbabilityBars()
        self.circumplex = CircumplexView()
        self.circumplex.setToolTip(
            "Valence and arousal of the fused estimate; each label sits at its rating in "
            "the NRC-VAD lexicon (Mohammad, 2018)."
        )
        self.contribution_bar = ContributionBar()
        grid = QGridLayout()
        grid.setColumnStretch(3, 1)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(1)
        self._rows = {m: _ContributionRow(grid, i, m) for i, m in enumerate(Modality)}

        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(
            f"QLabel {{ color: white; background: {WARNING_COLOR}; padding: 4px; "
            "border-radius: 3px; font-weight: bold; }"
        )
        self.warning.setVisible(False)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setEnabled(False)
        self.note.setVisible(False)

        self.caveat = QLabel(CAVEAT)
        self.caveat.setWordWrap(True)
        caveat_font = QFont(self.font())
        caveat_font.setItalic(True)
        self.caveat.setFont(caveat_font)

        top = QVBoxLayout()
        top.addWidget(self.headline)
        top.addWidget(self.subline)
        top.addWidget(self.bars, 1)
        upper = QHBoxLayout()
        upper.addLayout(top, 3)
        upper.addWidget(self.circumplex, 2)

        sep = QFrame()
        sep.setFrameShape(QFrame.Shape.HLine)
        sep.setFrameShadow(QFrame.Shadow.Sunken)

        layout = QVBoxLayout(self)
        layout.addLayout(upper, 1)
        layout.addWidget(sep)
        layout.addWidget(QLabel("Contribution of each modality to the fused weight:"))
        layout.addWidget(self.contribution_bar)
        layout.addLayout(grid)
        layout.addWidget(self.warning)
        layout.addWidget(self.note)
        layout.addWidget(self.caveat)
        self._show_waiting()

    # -- inputs ------------------------------------------------------------------------

    def set_disagreement_threshold(self, threshold: float) -> None:
        self._threshold = threshold
        if self._estimate is not None:
            self._render(self._estimate)

    @Slot(object)
    def show_estimate(self, estimate: FusedEstimate) -> None:
        """Draw ``estimate``, at most ``max_rate_hz`` times a second: estimates arriving
        faster replace each other and the newest is drawn when the interval is up."""
        self._pending = estimate
        if self._throttle.isActive():
            return
        self._render_pending()
        self._throttle.start()

    def _render_pending(self) -> None:
        estimate, self._pending = self._pending, None
        if estimate is not None:
            self._render(estimate)

    def _render(self, estimate: FusedEstimate) -> None:
        self._estimate = estimate
        if estimate.abstained or estimate.probs is None:
            self._show_abstained(estimate.reason or "the fuser has nothing to combine")
            return
        if estimate.uncertain:
            # No label with false confidence: the most probable one is in the bars.
            self.headline.setText("uncertain")
            self.headline.setStyleSheet("")
            self.headline.setToolTip(
                f"The fused estimate is unsure: its most probable label, {estimate.label}, "
                f"has only {estimate.confidence:.0%}"
            )
        else:
            self.headline.setText(f"{estimate.label}  {estimate.confidence:.0%}")
            self.headline.setStyleSheet(f"color: {LABEL_COLORS.get(estimate.label or '', '')};")
            self.headline.setToolTip("The fused top label and its fused probability")
        valence = "—" if estimate.valence is None else f"{estimate.valence:.2f}"
        arousal = "—" if estimate.arousal is None else f"{estimate.arousal:.2f}"
        rule = {"weighted": "linear pool", "product": "log-linear pool"}.get(
            estimate.rule, estimate.rule
        )
        self.subline.setText(
            f"valence {valence} · arousal {arousal} (0–1) · {rule}\n{driver_sentence(estimate)}"
        )
        self.bars.setEnabled(True)
        self.bars.set_distribution(estimate.probs)
        self.circumplex.set_point(estimate.valence, estimate.arousal)
        self.contribution_bar.set_shares(estimate.contributions)
        for modality, row in self._rows.items():
            share = estimate.contributions.get(modality)
            prediction = estimate.inputs.get(modality)
            if share is None or prediction is None:
                row.show(None, "not contributing")
                continue
            top = float(prediction.probs[LABEL_INDEX[prediction.label]])
            detail = f"says {prediction.label} {top:.0%}"
            if prediction.baseline:
                detail += " (baseline model)"
            row.show(share, detail)
        self._show_agreement(estimate)

    def _on_throttle(self) -> None:
        if self._pending is not None:
            self._render_pending()
            self._throttle.start()

    # -- what tests and other panels read -------------------------------------------

    def estimate(self) -> FusedEstimate | None:
        return self._estimate

    def contribution_of(self, modality: Modality) -> float | None:
        """The share shown for ``modality`` (None: shown as not contributing)."""
        return self._rows[modality].value

    def shown_state(self) -> str:
        """What the headline shows: a label, "uncertain", or "" (no estimate)."""
        e = self._estimate
        if e is None or e.abstained or e.label is None:
            return ""
        return "uncertain" if e.uncertain else e.label

    def warning_text(self) -> str | None:
        return self.warning.text() if not self.warning.isHidden() else None

    # -- states ------------------------------------------------------------------------

    def _show_agreement(self, estimate: FusedEstimate) -> None:
        opinions = ", ".join(
            f"{MODALITY_TITLES[m].lower()}: {p.label}" for m, p in estimate.inputs.items()
        )
        if len(estimate.inputs) > 1 and estimate.disagreement >= self._threshold:
            self.warning.setText(
                f"⚠ The modalities disagree ({opinions}; divergence "
                f"{estimate.disagreement:.2f} ≥ {self._threshold:.2f}). "
                "Read the fused label with caution."
            )
            self.warning.setVisible(True)
            self.note.setVisible(False)
        elif estimate.disagree:
            self.warning.setVisible(False)
            self.note.setText(
                f"Top labels differ ({opinions}), but the distributions are close "
                f"(divergence {estimate.disagreement:.2f})."
            )
            self.note.setVisible(True)
        else:
            self.warning.setVisible(False)
            self.note.setVisible(False)

    def _clear_values(self) -> None:
        self.headline.setStyleSheet("")
        self.bars.set_distribution(None)
        self.bars.setEnabled(False)
        self.circumplex.clear()
        self.contribution_bar.set_shares({})
        for row in self._rows.values():
            row.show(None, "not contributing")
        self.warning.setVisible(False)
        self.note.setVisible(False)

    def _show_waiting(self) -> None:
        self._clear_values()
        self.headline.setText("No estimate yet")
        self.subline.setText("Start a modality, or type some text, to see an estimate.")

    def _show_abstained(self, reason: str) -> None:
        self._clear_values()
        self.headline.setText("No estimate")
        self.subline.setText(f"The fuser abstains: {reason}.")

    def reset(self) -> None:
        """Forget the last estimate (e.g. when the session restarts)."""
        self._estimate = None
        self._pending = None
        self._show_waiting()
