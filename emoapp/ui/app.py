"""Building and running the window from its typed configuration.

:func:`build_window` is what ``emoapp`` runs and what the UI tests build: the bridge,
the controller (with the sources and model options of ``emoapp live``), the persisted
settings, and the main window. :func:`run_app` adds the QApplication and its event loop.
Both take a :class:`~emoapp.config.WindowConfig` (``emoapp/commands/gui.py`` builds it
from the command line); nothing here knows about argparse.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from emoapp.config import AUTO_PROFILE, WindowConfig, build_sources
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.privacy.consent import ConsentGate, ConsentStore
from emoapp.ui.bridge import SessionBridge
from emoapp.ui.controller import EncoderHook, EncoderPlan, SessionController, SessionOptions
from emoapp.ui.main_window import MainWindow
from emoapp.ui.settings import (
    APPLICATION,
    ORGANIZATION,
    UiSettings,
    load_settings,
    open_settings,
)
from emoapp.ui.source_keys import (
    ReplayOptions,
    camera_key,
    key_for_source,
    key_title,
    microphone_key,
)

_PROFILE_AUTO_NOTE = (
    "the default profile's models where downloaded, the built-in embedded models (no "
    "download) for the rest"
)


@dataclass
class BuiltWindow:
    """The window and what it starts with."""

    window: MainWindow
    wanted: set[Modality]


def _apply_command_line(config: WindowConfig, s: UiSettings) -> None:
    """Options given on the command line win over remembered settings (and are then
    remembered like choices made in the window)."""
    if config.models.profile:
        s.profile = config.models.profile
    if config.fusion.rule:
        s.fusion.rule = config.fusion.rule
    smoothing = config.fusion.smoothing_s
    if smoothing is not None:
        if smoothing < 0:
            raise EmoappError("--smoothing must not be negative")
        s.fusion.smoothing_s = smoothing
    hold = config.fusion.min_hold_s
    if hold is not None:
        if hold < 0:
            raise EmoappError("--min-hold must not be negative")
        s.fusion.min_hold_s = hold
    if config.fusion.weights:
        for modality, weight in config.fusion.weights.items():
            if weight < 0:
                raise EmoappError(
                    f"--weights: '{modality.value}={weight:g}': a weight cannot be negative"
                )
        s.fusion.weights.update(config.fusion.weights)


def _profiles(config: WindowConfig) -> list[tuple[str, str]]:
    from emoapp.registry import profiles

    found = [(AUTO_PROFILE, _PROFILE_AUTO_NOTE)]
    found += [(p.name, p.description) for p in profiles(config.models.profiles_file).values()]
    return found


def _choices(current: str | None, default: str) -> list[tuple[str, str]]:
    keys = [k for k in (current, default) if k]
    return [(key_title(k), k) for k in dict.fromkeys(keys)]


def build_window(
    config: WindowConfig,
    store: QSettings | None = None,
    encoder_hook: EncoderHook | None = None,
    session_options: SessionOptions | None = None,
    plan: EncoderPlan | None = None,
    consent_store: ConsentStore | None = None,
) -> BuiltWindow:
    """The main window for ``config`` (not shown, session not started). Raises
    EmoappError for bad options (a missing file, an unknown profile...).
    ``consent_store``: where consent is kept (default: emoapp's config folder); the
    consent given for this run (``--allow-camera`` / ``--allow-mic``) counts on top."""
    if store is None:
        store = open_settings(config.settings_file)
    settings = load_settings(store)
    _apply_command_line(config, settings)
    gate = ConsentGate(
        consent_store if consent_store is not None else ConsentStore(),
        config.consent.allowed,
        expire_after=config.consent.limits,
    )
    # A stored "calibrate to me" lives only as long as microphone consent does: the
    # window's VoiceCalibrationController deletes it on revocation (emoapp/ui).
    sources = build_sources(config.sources, consent=gate)
    for m, source in sources.items():
        if m is Modality.FACE:
            settings.camera = key_for_source(source)
        elif m is Modality.VOICE:
            settings.microphone = key_for_source(source)
    bridge = SessionBridge()
    controller = SessionController(
        bridge,
        plan or EncoderPlan(config.models),
        sources=sources,
        fusion=settings.fusion,
        replay=ReplayOptions(speed=config.sources.replay_speed or 1.0, loop=config.sources.loop),
        options=session_options
        or SessionOptions(
            threads=config.live.threads,
            face_detect_every=config.live.face_detect_every,
            face_reclassify_after=config.live.face_reclassify_after,
        ),
        encoder_hook=encoder_hook,
    )
    camera = settings.camera or camera_key(0)
    microphone = settings.microphone or microphone_key(None)
    # Devices chosen in an earlier run are remembered, but opened only when switched on.
    if Modality.FACE not in sources:
        controller.choose_source(Modality.FACE, camera)
    if Modality.VOICE not in sources:
        controller.choose_source(Modality.VOICE, microphone)
    window = MainWindow(
        controller,
        bridge,
        store,
        settings,
        _profiles(config),
        _choices(camera, camera_key(0)),
        _choices(microphone, microphone_key(None)),
        consent_gate=gate,
    )
    bridge.setParent(window)
    controller.setParent(window)
    wanted = set(sources) | ({Modality.TEXT} & settings.enabled)
    return BuiltWindow(window, wanted)


def create_application() -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    app = QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("emoapp")
    return app


def run_app(config: WindowConfig) -> int:
    """Open the window and run until it is closed."""
    app = create_application()
    built = build_window(config)
    window = built.window
    if not window.restored_geometry:
        window.resize(1360, 860)
    window.show()
    window.start(built.wanted)
    quit_after = config.quit_after
    if quit_after is not None:
        # Counted from when the models are ready, so that S seconds of the pipeline run
        # however long loading takes.
        def close_later(_profile: str) -> None:
            window.controller.models_ready.disconnect(close_later)
            QTimer.singleShot(max(0, round(quit_after * 1000)), window.close)

        window.controller.models_ready.connect(close_later)
    # Ctrl-C in the terminal closes the window cleanly; the timer lets Python run its
    # signal handler while Qt's event loop waits.
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    heartbeat = QTimer()
    heartbeat.start(200)
    heartbeat.timeout.connect(lambda: None)
    try:
        status = int(app.exec())
    finally:
        signal.signal(signal.SIGINT, previous)
    if quit_after is not None:
        print(quit_summary(window, quit_after), file=sys.stderr)
    return status


def quit_summary(window: MainWindow, seconds: float) -> str:
    """One line after ``--quit-after``: how much the window estimated (for smoke tests)."""
    rows = window.privacy.memory.rows()
    used = {
        m.value: sum(1 for row in rows if (row.get("modalities") or {}).get(m.value))
        for m in Modality
    }
    fused = sum(1 for row in rows if row.get("fused"))
    return (
        f"emoapp: window closed after {seconds:g} s (--quit-after); {len(rows)} timeline "
        f"rows in memory, {fused} with an estimate ("
        + ", ".join(f"{name} in {count}" for name, count in used.items())
        + ")"
    )
