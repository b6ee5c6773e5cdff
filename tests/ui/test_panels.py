"""The panels draw what they are given: fused estimates (with disagreement and
abstention), the camera preview's privacy modes, the timeline, the status rows, and
the settings they persist."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from emoapp.core.fusion import Fuser, FusionConfig
from emoapp.core.messages import (
    FaceDetection,
    Modality,
    ModalityPrediction,
    NoPrediction,
    VideoFrame,
)
from emoapp.core.taxonomy import LABEL_INDEX, NUM_LABELS
from emoapp.live.session import ModalityStatus
from emoapp.ui.camera_panel import CameraPanel, PreviewMode
from emoapp.ui.fused_panel import FusedPanel
from emoapp.ui.settings import FusionSettings, UiSettings, load_settings, save_settings
from emoapp.ui.status_panel import StatusPanel
from emoapp.ui.style import CAVEAT
from emoapp.ui.timeline_panel import FUSED, TimelinePanel

FACE, VOICE, TEXT = Modality.FACE, Modality.VOICE, Modality.TEXT


def prediction(
    modality: Modality, label: str, t: float = 10.0, p: float = 0.9, **kw
) -> ModalityPrediction:
    probs = np.full(NUM_LABELS, (1 - p) / (NUM_LABELS - 1))
    probs[LABEL_INDEX[label]] = p
    return ModalityPrediction(
        modality, t, probs, np.ones(NUM_LABELS, bool), p, f"{modality.value}-model", **kw
    )


def fused(*predictions: ModalityPrediction, now: float = 10.0):
    fuser = Fuser(FusionConfig())
    for pred in predictions:
        fuser.update(pred)
    return fuser.estimate(now)


# --- fused panel ---------------------------------------------------------------------


def test_fused_panel_shows_label_contributions_and_caveat(qtbot):
    panel = FusedPanel()
    qtbot.addWidget(panel)
    estimate = fused(prediction(FACE, "happy"), prediction(TEXT, "happy", p=0.7))
    panel.show_estimate(estimate)
    assert panel.headline.text().startswith("happy")
    assert panel.contribution_of(FACE) == pytest.approx(estimate.contributions[FACE])
    assert panel.contribution_of(VOICE) is None
    assert panel.warning_text() is None
    np.testing.assert_allclose(panel.bars.distribution(), estimate.probs)
    assert panel.circumplex.point() == (estimate.valence, estimate.arousal)
    assert panel.caveat.text() == CAVEAT


def test_fused_panel_says_in_words_which_modality_drove_the_label(qtbot):
    panel = FusedPanel()
    qtbot.addWidget(panel)
    # A neutral face with most of the weight beside a voice that says happy.
    estimate = fused(prediction(FACE, "neutral", p=0.92), prediction(VOICE, "happy", p=0.43))
    panel.show_estimate(estimate)
    share = estimate.contributions[FACE]
    assert panel.headline.text().startswith("neutral")
    assert f"Driven by face: neutral, {share:.0%} of the weight" in panel.subline.text()
    assert "voice: happy" in panel.subline.text()


def test_fused_panel_warns_when_modalities_disagree(qtbot):
    panel = FusedPanel()
    qtbot.addWidget(panel)
    estimate = fused(prediction(FACE, "happy"), prediction(VOICE, "sad"))
    assert estimate.disagreement >= FusionConfig().disagreement_threshold
    panel.show_estimate(estimate)
    warning = panel.warning_text()
    assert warning is not None and "disagree" in warning
    assert "face: happy" in warning and "voice: sad" in warning
    # Raising the threshold above the divergence takes the warning away.
    panel.set_disagreement_threshold(0.99)
    assert panel.warning_text() is None


def test_fused_panel_says_why_it_abstains_instead_of_stale_bars(qtbot):
    panel = FusedPanel()
    qtbot.addWidget(panel)
    panel.show_estimate(fused(prediction(FACE, "happy")))
    assert panel.bars.distribution() is not None
    # Every prediction is too old: the fuser abstains and says why.
    abstained = fused(prediction(FACE, "happy", t=0.0), now=100.0)
    assert abstained.abstained
    panel.show_estimate(abstained)  # drawn when the panel's redraw interval is up
    qtbot.waitUntil(lambda: panel.estimate() is abstained, timeout=10_000)
    assert panel.headline.text() == "No estimate"
    assert abstained.reason in panel.subline.text()
    assert panel.bars.distribution() is None
    assert panel.circumplex.point() is None
    assert all(panel.contribution_of(m) is None for m in Modality)


# --- camera panel privacy modes ------------------------------------------------------


def _frame(t: float = 10.0) -> VideoFrame:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    return VideoFrame(t, image)


def _pixels(panel: CameraPanel) -> np.ndarray:
    image = panel.view.picture()
    assert image is not None
    ptr = image.constBits()
    return (
        np.frombuffer(ptr, np.uint8)
        .reshape(image.height(), image.bytesPerLine())[:, : image.width() * 3]
        .reshape(image.height(), image.width(), 3)
    )


def test_picture_mode_shows_the_frame_unchanged(qtbot):
    panel = CameraPanel()
    qtbot.addWidget(panel)
    frame = _frame()
    panel.show_frame(frame)
    np.testing.assert_array_equal(_pixels(panel), frame.image)


def test_blur_mode_blurs_each_face_and_leaves_the_rest(qtbot):
    panel = CameraPanel()
    qtbot.addWidget(panel)
    panel.set_mode(PreviewMode.BLUR_FACES)
    face = FaceDetection((60, 40, 30, 30), prediction(FACE, "happy").probs)
    panel.show_output(prediction(FACE, "happy", faces=(face,)))
    frame = _frame()
    panel.show_frame(frame)
    shown = _pixels(panel).astype(int)
    original = frame.image.astype(int)
    inside = (slice(45, 65), slice(65, 85))
    assert np.abs(shown[inside] - original[inside]).mean() > 20  # noise smoothed away
    np.testing.assert_array_equal(shown[:20], original[:20])  # far from the face: as is


def test_blur_mode_without_a_known_face_blurs_everything(qtbot):
    panel = CameraPanel()
    qtbot.addWidget(panel)
    panel.set_mode(PreviewMode.BLUR_FACES)
    panel.show_output(NoPrediction(FACE, 10.0, "no face"))
    frame = _frame()
    panel.show_frame(frame)
    shown = _pixels(panel).astype(int)
    assert np.abs(shown - frame.image.astype(int)).mean() > 20


def test_scores_only_keeps_no_picture(qtbot):
    panel = CameraPanel()
    qtbot.addWidget(panel)
    panel.show_frame(_frame())
    assert panel.view.has_picture()
    panel.set_mode(PreviewMode.SCORES_ONLY)
    assert not panel.view.has_picture()  # the last picture is dropped at once
    panel.show_frame(_frame())
    assert not panel.view.has_picture()
    panel.show_output(prediction(FACE, "surprised"))
    assert "surprised" in panel.result.text()
    assert panel.bars.isVisibleTo(panel)


# --- timeline ------------------------------------------------------------------------


def test_timeline_plots_estimates_with_gaps_and_forgets_old_ones(qtbot):
    timeline = TimelinePanel(window_s=60.0, redraw_ms=10)
    qtbot.addWidget(timeline)
    for t in range(0, 100, 2):
        if t == 50:
            timeline.add_estimate(fused(prediction(FACE, "happy", t=0.0), now=float(t)))
        else:
            timeline.add_estimate(fused(prediction(FACE, "happy", t=float(t)), now=float(t)))
    # Only the last minute (and a second of margin) is kept.
    assert timeline.point_count(FUSED) == 31
    qtbot.waitUntil(lambda: timeline.plotted_points() == 31, timeout=10_000)
    x, y = timeline._curves["happy"].getData()
    assert x[-1] == 0.0 and x[0] >= -61.0
    assert np.isnan(y).sum() == 1  # the abstained estimate is a gap, not a zero


def test_timeline_can_show_one_modality(qtbot):
    timeline = TimelinePanel(redraw_ms=10)
    qtbot.addWidget(timeline)
    timeline.add_estimate(fused(prediction(FACE, "happy", t=1.0), now=1.0))
    for t in (1.0, 2.0, 3.0):
        timeline.add_output(prediction(VOICE, "sad", t=t))
    timeline.source_box.setCurrentIndex(timeline.source_box.findData(VOICE.value))
    assert timeline.shown_source() == VOICE.value
    qtbot.waitUntil(lambda: timeline.plotted_points() == 3, timeout=10_000)


# --- status panel --------------------------------------------------------------------


def test_status_rows_show_state_model_and_errors_where_they_happen(qtbot):
    panel = StatusPanel()
    qtbot.addWidget(panel)
    panel.show_status(
        ModalityStatus(FACE, "running", "camera 0", "baseline/face-smile", "cpu", True, "")
    )
    panel.show_status(
        ModalityStatus(VOICE, "degraded", "mic", "m", "cuda:0", False, "voice encoder failed")
    )
    assert "baseline" in panel.row(FACE).model.text()
    assert panel.state_of(VOICE) == "degraded"
    assert panel.message_of(VOICE) == "voice encoder failed"
    assert panel.message_of(FACE) == ""
    assert panel.row(VOICE).device.text() == "cuda:0"
    # the precision's reason is the device's tooltip; none for a model without one
    why = "cpu int8: auto: 3.52x float32's speed on this machine, probabilities within 0.004"
    panel.show_status(
        ModalityStatus(TEXT, "running", "typed text", "m", "cpu int8", device_detail=why)
    )
    assert panel.row(TEXT).device.text() == "cpu int8"
    assert panel.row(TEXT).device.toolTip() == why
    assert panel.row(FACE).device.toolTip() == ""
    panel.show_status(ModalityStatus(TEXT, "running", "typed text", "m", "cpu float32"))
    assert panel.row(TEXT).device.toolTip() == ""


# --- settings ------------------------------------------------------------------------


def test_settings_round_trip(tmp_path):
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    saved = UiSettings(
        profile="baseline",
        camera="camera:1",
        microphone="mic:default",
        fusion=FusionSettings("product", {FACE: 0.5, VOICE: 1.5, TEXT: 0.0}, 2.5, 0.4),
        preview_mode="blur",
        enabled={FACE, TEXT},
        analyse_while_typing=True,
        timeline_source="voice",
    )
    save_settings(store, saved)
    store.sync()
    loaded = load_settings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert loaded == saved


def test_malformed_settings_fall_back_to_defaults(tmp_path):
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    store.setValue("fusion/rule", "majority")
    store.setValue("fusion/weight_face", "heavy")
    store.setValue("privacy/preview_mode", "x-ray")
    store.setValue("session/enabled", "face,smell")
    loaded = load_settings(store)
    defaults = UiSettings()
    assert defaults.fusion.weights == {}
    assert loaded.fusion.rule == defaults.fusion.rule
    assert FACE not in loaded.fusion.weights  # back to "auto"
    assert loaded.preview_mode == "picture"
    assert loaded.enabled == {FACE}


def test_no_prediction_greys_the_last_result_and_says_why(qtbot):
    from emoapp.ui.voice_text_panels import VoicePanel

    panel = VoicePanel()
    qtbot.addWidget(panel)
    panel.show_output(prediction(VOICE, "angry"))
    assert "angry" in panel.result.text() and not panel.bars.is_stale()
    panel.show_output(NoPrediction(VOICE, 11.0, "no speech"))
    assert panel.bars.is_stale() and not panel.result.isEnabled()
    assert panel.reason.text() == "now: no speech"
    panel.show_output(prediction(VOICE, "sad", t=12.0))
    assert "sad" in panel.result.text() and panel.result.isEnabled()
    assert not panel.bars.is_stale()


def test_command_line_options_win_over_remembered_settings():
    from emoapp.cli import build_parser
    from emoapp.commands.gui import window_config
    from emoapp.core.errors import EmoappError
    from emoapp.ui.app import _apply_command_line

    remembered = UiSettings(
        profile="cpu", fusion=FusionSettings("weighted", {FACE: 2.0, VOICE: 1.0, TEXT: 1.0}, 3.0)
    )
    parser = build_parser()

    def config(*argv: str):
        return window_config(parser.parse_args(list(argv)))

    unchanged = UiSettings(**vars(remembered))
    _apply_command_line(config(), unchanged)
    assert unchanged == remembered  # nothing given: the remembered choices stay

    given = config("--profile", "baseline", "--fusion-rule", "product", "--weights", "voice=0.2")
    _apply_command_line(given, remembered)
    assert remembered.profile == "baseline"
    assert remembered.fusion.rule == "product"
    assert remembered.fusion.weights == {FACE: 2.0, VOICE: 0.2, TEXT: 1.0}
    assert remembered.fusion.smoothing_s == 3.0
    with pytest.raises(EmoappError):
        _apply_command_line(config("--weights", "nose=1"), UiSettings())
    with pytest.raises(EmoappError, match="cannot be negative"):
        _apply_command_line(config("--weights", "voice=-1"), UiSettings())


def test_hand_set_weights_replace_the_profile_and_model_priors():
    base = FusionConfig(
        reliability={FACE: 0.9, VOICE: 0.6, TEXT: 0.8},
        model_reliability={"voice-model": 0.4, "face-model": 1.0},
        temperature={"face-model": 1.5},
    )
    models = {FACE: "face-model", VOICE: "voice-model"}
    auto = FusionSettings(rule="product", smoothing_s=1.0).apply_to(base, models)
    assert auto.rule == "product" and auto.smoothing_s == 1.0
    assert auto.model_reliability == base.model_reliability  # "auto" keeps every prior
    assert auto.temperature == {"face-model": 1.5}
    by_hand = FusionSettings(weights={VOICE: 0.1}).apply_to(base, models)
    assert by_hand.reliability[VOICE] == 0.1
    assert "voice-model" not in by_hand.model_reliability
    assert by_hand.model_reliability["face-model"] == 1.0
    assert base.model_reliability["voice-model"] == 0.4  # the base is left as it was
