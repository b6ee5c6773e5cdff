"""The window's status bar shows the session's thread plan (tooltip of the UI lag)."""

from __future__ import annotations

from emoapp.core.messages import Modality


def test_the_status_bar_tooltip_shows_the_thread_plan(qtbot, window_args, open_window):
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        config = window_args(
            "--threads", "1", "--face-detect-every", "3", "--face-reclassify-after", "0.5",
            mic=False,
        )  # fmt: skip
        assert config.live.threads == 1 and config.live.face_detect_every == 3
        assert config.live.face_reclassify_after == 0.5
        window = open_window(config, wanted={Modality.FACE})
        # the session is made on the window's command thread: wait for it, then its plan
        qtbot.waitUntil(
            lambda: getattr(window.controller.session, "thread_plan", None) is not None,
            timeout=20_000,
        )
        assert window.controller.session.face_reclassify_after == 0.5
        window._show_lag()
        tooltip = window.lag_label.toolTip()
        assert "event loop" in tooltip
        assert "per worker: torch 1" in tooltip and "(--threads)" in tooltip
    finally:  # the session's thread plan is process-wide
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
