"""A live run inside the real main window, for ``emoapp bench --profile NAME --window``.

The window is built as ``emoapp --camera CLIP --mic SPEECH --text-file LINES --loop``
builds it (:func:`~emoapp.ui.app.build_window`: the same panels, controller, bridge and
privacy layer), shown at its default size, and runs the bench's already-loaded encoders
through the controller's own loading path. While the Qt event loop runs on this (the
main) thread, the bench's ``drive`` function runs on another: it gets the live session
once the models are installed, measures what it wants (warm-up, then the measured span)
and returns; the window then closes as when the person closes it.

The event-loop lag is measured by a 10 ms precise timer on the UI thread (beside the
status bar's own 20 ms meter): each tick's lateness (time since the previous tick minus
10 ms, never below zero), counted in a fixed histogram (:mod:`emoapp.core.lag`) from
when ``drive`` arms it (after the warm-up).

Replayed files need no camera or microphone consent (the window's consent check passes
sources that are not devices); consent for real devices is not touched.

Without a display, Qt's ``offscreen`` platform is used (it paints every widget into its
backing store as on screen); under Xvfb (``DISPLAY`` set) the window goes there.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoapp.config import ModelOptions, SourceOptions, WindowConfig
from emoapp.core.fusion import FusionConfig
from emoapp.core.lag import LagHistogram
from emoapp.core.messages import Modality
from emoapp.registry import ModelSpec

LAG_INTERVAL_MS = 10
MODELS_READY_TIMEOUT_S = 300.0


def choose_platform(env: dict[str, str] | None = None) -> str:
    """Set ``QT_QPA_PLATFORM=offscreen`` when there is no display and none is asked for;
    returns what the window will draw on (``offscreen``, ``x11`` or the platform asked)."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    assert env is not None
    asked = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    if not asked and not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
        asked = "offscreen"
    if asked in ("", "xcb") and env.get("DISPLAY"):
        return "x11"
    return asked or "wayland"


class PreloadedPlan:
    """An encoder plan that hands the window encoders already built and loaded (the
    bench's), through the controller's usual loading path; fusion as the headless bench
    runs it (the default config)."""

    def __init__(self, encoders: Mapping[Modality, Any]) -> None:
        self.encoders = dict(encoders)

    def choose(self, profile: str) -> tuple[dict[Modality, ModelSpec | None], list[str]]:
        specs: dict[Modality, ModelSpec | None] = {
            m: ModelSpec(
                m, str(getattr(self.encoders.get(m), "model_id", m.value)), backend="bench"
            )
            if m in self.encoders
            else None
            for m in Modality
        }
        return specs, []

    def fusion_base(self, profile: str) -> FusionConfig:
        return FusionConfig()

    def load(self, spec: ModelSpec) -> Any:
        return self.encoders[spec.modality]


@dataclass
class WindowRun:
    """What the window run measured besides what ``drive`` did."""

    window: str
    lag: LagHistogram
    threads_left_running: list[str] = field(default_factory=list)


class LagArm:
    """Given to ``drive``: :meth:`arm` starts counting the lag (from the next tick)."""

    def __init__(self, request: Callable[[], None]) -> None:
        self._request = request

    def arm(self) -> None:
        self._request()


def run_in_window(
    clip: Path,
    speech: Path,
    lines: Path,
    text_every_s: float,
    encoders: Mapping[Modality, Any],
    drive: Callable[[Any, LagArm], None],
    *,
    profile: str,
    threads: int | None,
    face_detect_every: int,
    face_reclassify_after: float = 1.0,
) -> WindowRun:
    """Run the window on the replayed files with ``encoders`` until ``drive(session,
    lag)`` returns (it runs on another thread); re-raises what ``drive`` raised."""
    window_kind = choose_platform()
    from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSettings, QTimer, Signal

    from emoapp.privacy.consent import ConsentStore
    from emoapp.ui.app import build_window, create_application
    from emoapp.ui.controller import SessionOptions
    from emoapp.ui.responsiveness import EventLoopLagMeter

    class Relay(QObject):
        arm = Signal()
        finish = Signal()

    app = create_application()
    histogram = LagHistogram()
    with tempfile.TemporaryDirectory(prefix="emoapp-bench-window-") as folder:
        config = WindowConfig(
            models=ModelOptions(profile=profile),
            sources=SourceOptions(
                camera=str(clip),
                mic=str(speech),
                text_file=str(lines),
                text_interval=text_every_s,
                loop=True,
            ),
        )
        built = build_window(
            config,
            store=QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat),
            plan=PreloadedPlan(encoders),  # type: ignore[arg-type]
            session_options=SessionOptions(
                threads=threads,
                face_detect_every=face_detect_every,
                face_reclassify_after=face_reclassify_after,
            ),
            consent_store=ConsentStore(Path(folder) / "consent"),
        )
        window = built.window
        window.resize(1360, 860)
        meter = EventLoopLagMeter(interval_ms=LAG_INTERVAL_MS, window=1, parent=window)
        relay = Relay()

        def arm() -> None:
            histogram.clear()
            meter.histogram = histogram

        relay.arm.connect(arm)
        relay.finish.connect(window.close)
        # One way out of the event loop: the window's own ``closed``. Qt's quit on the last
        # window closed would post a second quit that outlives this loop and ends the
        # next one at once (a caller's, e.g. a test's).
        quit_on_last = app.quitOnLastWindowClosed()
        app.setQuitOnLastWindowClosed(False)
        window.closed.connect(app.quit)
        ready = threading.Event()
        window.controller.models_ready.connect(lambda _profile: ready.set())
        failure: list[BaseException] = []

        def driver() -> None:
            try:
                if not ready.wait(MODELS_READY_TIMEOUT_S):
                    raise RuntimeError(
                        f"the window's models were not ready within {MODELS_READY_TIMEOUT_S:g} s"
                    )
                drive(window.controller.session, LagArm(relay.arm.emit))
            except Exception as exc:  # noqa: BLE001 (handed back to the caller's thread)
                failure.append(exc)
            finally:
                relay.finish.emit()

        thread = threading.Thread(target=driver, name="emoapp-bench-window-driver", daemon=True)
        window.show()
        window.start(built.wanted)
        meter.start()
        QTimer.singleShot(0, thread.start)
        try:
            app.exec()
        finally:
            app.setQuitOnLastWindowClosed(quit_on_last)
        QCoreApplication.removePostedEvents(app, QEvent.Type.Quit)
        meter.stop()
        thread.join(10.0)
        left = window.controller.join(timeout=5.0)
        window.deleteLater()
        app.processEvents()
    if failure:
        raise failure[0]
    return WindowRun(window_kind, histogram, left)
