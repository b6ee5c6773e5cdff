"""The fused panel shows "uncertain" instead of a label with false confidence (issue 23):
real widgets, headless, estimates from the real fuser."""

from __future__ import annotations

import numpy as np

from emoapp.core.fusion import Fuser, FusionConfig
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.taxonomy import LABEL_INDEX, NUM_LABELS
from emoapp.ui.fused_panel import FusedPanel


def _prediction(label: str, p: float, t: float) -> ModalityPrediction:
    probs = np.full(NUM_LABELS, (1 - p) / (NUM_LABELS - 1))
    probs[LABEL_INDEX[label]] = p
    return ModalityPrediction(Modality.FACE, t, probs, np.ones(NUM_LABELS, bool), p, "face-m")


def test_the_panel_shows_uncertain_below_the_threshold_and_the_label_above(qtbot):
    panel = FusedPanel()
    qtbot.addWidget(panel)
    fuser = Fuser(FusionConfig(uncertain_below=0.5))
    fuser.update(_prediction("happy", 0.35, 0.0))
    unsure = fuser.estimate(0.0)
    assert unsure.uncertain and unsure.label == "happy"  # the label stays the top one
    panel.show_estimate(unsure)
    assert panel.headline.text() == "uncertain"
    assert panel.shown_state() == "uncertain"
    assert "happy" in panel.headline.toolTip() and "35%" in panel.headline.toolTip()
    np.testing.assert_allclose(panel.bars.distribution(), unsure.probs)  # bars still drawn

    fuser.update(_prediction("happy", 0.9, 1.0))
    sure = fuser.estimate(1.0)
    assert not sure.uncertain
    panel.show_estimate(sure)
    qtbot.waitUntil(lambda: panel.estimate() is sure, timeout=10_000)  # throttled redraw
    assert panel.headline.text().startswith("happy")
    assert panel.shown_state() == "happy"


def test_rows_carry_the_flag(qtbot):
    from emoapp.core.rows import flatten_row, row_from_estimate

    fuser = Fuser(FusionConfig(uncertain_below=0.5))
    fuser.update(_prediction("sad", 0.3, 0.0))
    row = row_from_estimate(fuser.estimate(0.0))
    assert row["fused"]["uncertain"] is True and row["fused"]["label"] == "sad"
    assert flatten_row(row)["fused_uncertain"] == 1
