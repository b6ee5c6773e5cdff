"""The main window: the panels, the docks, menus and keyboard shortcuts, and the wiring
from the session bridge and the controller to the widgets.

Layout (every divider can be dragged; docks can be moved, floated or hidden and the
arrangement is remembered)::

    ┌ Controls ┐┌ Camera · face ──────┐┌ Fused estimate ────────────┐
    │ (dock)   ││ preview             ││ bars · top label · V/A     │
    │          │├ Microphone · voice ─┤│ contributions · warning    │
    │          │├ Text ───────────────┤├ Timeline ──────────────────┤
    └──────────┘└─────────────────────┘└────────────────────────────┘
    ┌ Status (dock) ───────────────────────────────────────────────┐
    └──────────────────────────────────────────────────────────────┘
    status bar: ● Camera: capturing   ● Microphone: off   ● Stream: off   (always visible)

The privacy layer (:mod:`emoapp.ui.privacy_controller`) asks for consent before a camera
or microphone opens, adds Revoke / What is stored / About the models to the Privacy
menu and Export timeline to the File menu, and keeps the timeline rows an export writes.
The capture indicators follow the session's own word on whether each source is open.
Modalities → Calibrate to me (voice)… (:mod:`emoapp.ui.voice_calibration`) stores a
neutral reading of the person and hands it to the voice model; the voice panel says when
one is in use and offers to delete it.
File → Stream estimates… (:mod:`emoapp.ui.stream_controller`) sends those rows to local
WebSocket clients; its indicator sits beside the capture indicators.

Closing the window stops the session on the controller's thread; the window closes once
every thread has ended (or after a deadline, since all of them are daemon threads).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QWidget,
)

from emoapp.core.messages import Modality, VideoFrame
from emoapp.live.session import ModalityStatus
from emoapp.privacy.consent import ConsentGate, ConsentStore
from emoapp.privacy.memory import TimelineMemory
from emoapp.ui.bridge import AudioLevel, SessionBridge
from emoapp.ui.camera_panel import CameraPanel, PreviewMode
from emoapp.ui.controller import ModelChoiceNote, SessionController, SourceInfo
from emoapp.ui.controls_panel import SHORTCUT_KEYS, ControlsPanel
from emoapp.ui.fused_panel import FusedPanel
from emoapp.ui.indicators import CaptureIndicatorBar
from emoapp.ui.privacy_controller import PrivacyController
from emoapp.ui.responsiveness import EventLoopLagMeter
from emoapp.ui.settings import FusionSettings, UiSettings, load_layout, save_layout, save_settings
from emoapp.ui.source_keys import key_title
from emoapp.ui.status_panel import StatusPanel
from emoapp.ui.stream_controller import StreamController
from emoapp.ui.style import CAVEAT, MODALITY_TITLES
from emoapp.ui.timeline_panel import TimelinePanel
from emoapp.ui.voice_calibration import VoiceCalibrationController
from emoapp.ui.voice_text_panels import TextPanel, VoicePanel

log = logging.getLogger(__name__)

# States in which a modality's source may be open (starting: being opened).
_SOURCE_OPEN_STATES = ("starting", "running", "degraded")
CLOSE_DEADLINE_MS = 8000
LAG_MEANING = (
    "How late the window's event loop runs (95th percentile of a 20 ms timer's "
    "lateness): the window's own responsiveness"
)


class MainWindow(QMainWindow):
    """The emoapp window. Call :meth:`start` once shown to start the session."""

    closed = Signal()  # the session has stopped and the window is closed

    def __init__(
        self,
        controller: SessionController,
        bridge: SessionBridge,
        store: QSettings,
        settings: UiSettings,
        profiles: list[tuple[str, str]],
        camera_choices: list[tuple[str, str]],
        microphone_choices: list[tuple[str, str]],
        consent_gate: ConsentGate | None = None,
        memory: TimelineMemory | None = None,
    ) -> None:
        """``consent_gate``: the consent store (and this run's ``--allow-*`` flags)
        devices open through; by default the saved consent in emoapp's config folder."""
        super().__init__()
        self.setWindowTitle("emoapp — live estimate of displayed expression")
        self.controller = controller
        self.bridge = bridge
        self.store = store
        self.settings = settings
        self._session_status: dict[Modality, Any] = {}
        self._notes: dict[Modality, tuple[str, str]] = {}
        self._shutdown_done = False
        self._closing = False

        # -- panels ------------------------------------------------------------------
        self.camera_panel = CameraPanel()
        self.voice_panel = VoicePanel()
        self.text_panel = TextPanel()
        self.fused_panel = FusedPanel()
        self.timeline = TimelinePanel()
        self.status_panel = StatusPanel()
        self.controls = ControlsPanel(profiles)
        self.capture_indicators = CaptureIndicatorBar()
        """Always-visible per-device capture indicators (status bar, cannot be hidden).
        The privacy layer may drive them too, via ``set_capture``."""

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.camera_panel)
        left.addWidget(self.voice_panel)
        left.addWidget(self.text_panel)
        left.setStretchFactor(0, 3)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.fused_panel)
        right.addWidget(self.timeline)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        for s in (left, right, self.splitter):
            s.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)

        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(
            self.controls.minimumSizeHint().width()
            + scroll.verticalScrollBar().sizeHint().width()
            + 2 * scroll.frameWidth()
        )
        self.controls_dock = self._dock("Controls", scroll, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.status_dock = self._dock(
            "Status", self.status_panel, Qt.DockWidgetArea.BottomDockWidgetArea
        )

        bar = self.statusBar()
        bar.setSizeGripEnabled(True)
        bar.addWidget(self.capture_indicators)
        self.message_label = QLabel("")
        bar.addPermanentWidget(self.message_label, 1)
        self.lag_label = QLabel("")
        self.lag_label.setEnabled(False)
        self.lag_label.setToolTip(LAG_MEANING)
        bar.addPermanentWidget(self.lag_label)
        caveat = QLabel(CAVEAT)
        caveat.setEnabled(False)
        bar.addPermanentWidget(caveat)
        self.lag_meter = EventLoopLagMeter(interval_ms=20, window=500, parent=self)
        self._lag_timer = QTimer(self)
        self._lag_timer.setInterval(2000)
        self._lag_timer.timeout.connect(self._show_lag)

        self.privacy = PrivacyController(
            self,
            controller,
            bridge,
            consent_gate if consent_gate is not None else ConsentGate(ConsentStore()),
            memory,
            settings_file=store.fileName(),
        )
        self.streaming = StreamController(self, self.privacy.memory, self.privacy.store.audit)
        """File → Stream estimates…, and its indicator beside the capture indicators."""
        bar.insertWidget(1, self.streaming.indicator)
        self.voice_calibration = VoiceCalibrationController(self, controller, self.privacy.gate)
        """Modalities → Calibrate to me (voice)…, and the stored calibration handed to
        the voice model."""
        self._build_menus()
        self.privacy.install(self.privacy_menu, self.file_menu, self.quit_action)
        self.file_menu.insertAction(self.privacy.export_action, self.streaming.action)
        self._build_shortcuts()
        self._wire()
        self._apply_settings(settings, camera_choices, microphone_choices)

        self._close_deadline = QTimer(self)
        self._close_deadline.setSingleShot(True)
        self._close_deadline.setInterval(CLOSE_DEADLINE_MS)
        self._close_deadline.timeout.connect(self._force_close)

    # -- construction --------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        quit_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        self.quit_action = quit_action
        self.file_menu = file_menu
        """Where export actions go (the privacy layer adds "Export timeline…")."""

        modality_menu = menus.addMenu("&Modalities")
        self.modality_actions: dict[Modality, QAction] = {}
        for m in Modality:
            action = QAction(f"{MODALITY_TITLES[m]}", self)
            action.setCheckable(True)
            action.setShortcut(QKeySequence(SHORTCUT_KEYS[m]))
            action.triggered.connect(lambda checked, m=m: self.controller.set_wanted(m, checked))
            modality_menu.addAction(action)
            self.modality_actions[m] = action
        modality_menu.addSeparator()
        self.pause_action = QAction("&Pause all", self)
        self.pause_action.triggered.connect(self.controller.toggle_pause)
        modality_menu.addAction(self.pause_action)
        focus_text = QAction("Type &text", self)
        focus_text.setShortcut(QKeySequence("Ctrl+E"))
        focus_text.triggered.connect(self.focus_text_entry)
        modality_menu.addAction(focus_text)
        modality_menu.addSeparator()
        modality_menu.addAction(self.voice_calibration.action)
        modality_menu.setToolTipsVisible(True)  # why "Calibrate to me" is off, when it is
        modality_menu.aboutToShow.connect(self.voice_calibration.refresh_action)
        self.modality_menu = modality_menu

        self.privacy_menu: QMenu = menus.addMenu("&Privacy")
        """Privacy preview modes; the privacy layer adds consent and revocation here."""
        group = QActionGroup(self)
        group.setExclusive(True)
        self.preview_actions: dict[PreviewMode, QAction] = {}
        for i, mode in enumerate(PreviewMode):
            action = QAction(mode.caption, self)
            action.setCheckable(True)
            action.setShortcut(QKeySequence(f"Ctrl+Shift+{i + 1}"))
            action.triggered.connect(lambda _c, mode=mode: self.camera_panel.set_mode(mode))
            group.addAction(action)
            self.privacy_menu.addAction(action)
            self.preview_actions[mode] = action

        view_menu = menus.addMenu("&View")
        view_menu.addAction(self.controls_dock.toggleViewAction())
        view_menu.addAction(self.status_dock.toggleViewAction())

        help_menu = menus.addMenu("&Help")
        about = QAction("&About emoapp", self)
        about.triggered.connect(self._about)
        help_menu.addAction(about)
        explain = QAction("What the &explanations mean", self)
        explain.triggered.connect(self._explanations_help)
        help_menu.addAction(explain)
        keys = QAction("&Keyboard shortcuts", self)
        keys.triggered.connect(self._shortcuts_help)
        help_menu.addAction(keys)

    def _build_shortcuts(self) -> None:
        # Space pauses everything, except while typing (the text entry keeps its spaces:
        # a line edit claims printable keys before shortcuts see them).
        self.pause_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Space), self)
        self.pause_shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self.pause_shortcut.activated.connect(self.controller.toggle_pause)

    def _wire(self) -> None:
        b, c = self.bridge, self.controller
        b.estimate_received.connect(self.fused_panel.show_estimate)
        b.estimate_received.connect(self.timeline.add_estimate)
        b.output_received.connect(self.timeline.add_output)
        b.output_received.connect(self.camera_panel.show_output)
        b.output_received.connect(self.voice_panel.show_output)
        b.output_received.connect(self.text_panel.show_output)
        b.explanation_received.connect(self.camera_panel.show_explanation)
        b.explanation_received.connect(self.voice_panel.show_explanation)
        b.explanation_received.connect(self.text_panel.show_explanation)
        for panel, m in (
            (self.camera_panel, Modality.FACE),
            (self.voice_panel, Modality.VOICE),
            (self.text_panel, Modality.TEXT),
        ):
            panel.explain_toggled.connect(lambda on, m=m: c.set_explaining(m, on))
        b.heard_received.connect(self.text_panel.show_heard)
        b.withdrawn.connect(self.text_panel.forget_heard)
        b.withdrawn.connect(self.voice_panel.forget)
        b.withdrawn.connect(self.camera_panel.forget)
        b.frame_received.connect(self._on_frame)
        b.audio_level_received.connect(self._on_audio_level)
        b.status_received.connect(self._on_session_status)

        c.modality_note.connect(self._on_note)
        c.models_chosen.connect(self._on_models_chosen)
        c.metrics_ready.connect(self.status_panel.show_metrics)
        c.devices_listed.connect(self._on_devices_listed)
        c.source_changed.connect(self._on_source_changed)
        c.wanted_changed.connect(self._on_wanted_changed)
        c.paused_changed.connect(self._on_paused_changed)
        c.text_rejected.connect(self.text_panel.reason.setText)
        c.problem.connect(self.show_problem)
        c.shut_down.connect(self._on_shut_down)
        self.privacy.message.connect(self.show_problem)
        self.privacy.forgotten.connect(self.timeline.clear)
        self.privacy.forgotten.connect(self.streaming.stop)
        # the highlighted words are the typed text: forgotten with the rest
        self.privacy.forgotten.connect(self.text_panel.words.clear_explanation)
        self.streaming.message.connect(self.show_problem)
        self.voice_calibration.message.connect(self.show_problem)
        self.voice_calibration.state_changed.connect(self.voice_panel.show_calibration)
        self.voice_panel.calibration_delete_requested.connect(self.voice_calibration.delete)

        ctl = self.controls
        ctl.modality_toggled.connect(c.set_wanted)
        ctl.pause_toggled.connect(c.toggle_pause)
        ctl.camera_chosen.connect(lambda key: self._choose_source(Modality.FACE, key))
        ctl.microphone_chosen.connect(lambda key: self._choose_source(Modality.VOICE, key))
        ctl.refresh_devices.connect(c.list_devices)
        ctl.profile_chosen.connect(self._choose_profile)
        ctl.fusion_changed.connect(self._apply_fusion)
        self.text_panel.text_submitted.connect(c.submit_text)
        self.text_panel.asr_box.toggled.connect(c.set_transcription)
        self.text_panel.asr_box.toggled.connect(self.text_panel.set_transcribing)
        self.camera_panel.mode_changed.connect(self._on_preview_mode)
        self.camera_panel.follow_requested.connect(self._on_follow_face)
        self.timeline.source_box.currentIndexChanged.connect(self._remember_timeline_source)
        self.text_panel.live_box.toggled.connect(self._remember_typing)

    def _apply_settings(
        self,
        s: UiSettings,
        camera_choices: list[tuple[str, str]],
        microphone_choices: list[tuple[str, str]],
    ) -> None:
        self.controls.set_profile(s.profile)
        self.controls.set_fusion(s.fusion)
        self.fused_panel.set_disagreement_threshold(s.fusion.disagreement_threshold)
        cam = self.controller.source_info(Modality.FACE)
        mic = self.controller.source_info(Modality.VOICE)
        self.controls.set_camera_choices(camera_choices, cam.key if cam else None)
        self.controls.set_microphone_choices(microphone_choices, mic.key if mic else None)
        mode = PreviewMode(s.preview_mode)
        self.camera_panel.set_mode(mode)
        self.preview_actions[mode].setChecked(True)
        self.text_panel.live_box.setChecked(s.analyse_while_typing)
        index = self.timeline.source_box.findData(s.timeline_source)
        self.timeline.source_box.setCurrentIndex(max(0, index))
        geometry, state = load_layout(self.store)
        self.restored_geometry = geometry is not None and self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, wanted: set[Modality]) -> None:
        """Start the session with ``wanted`` modalities and the settings' profile."""
        for m in Modality:
            self._render_status(m)
        self.controller.start(wanted, self.settings.profile)
        self.lag_meter.start()
        self._lag_timer.start()

    def _show_lag(self) -> None:
        lag = self.lag_meter.percentiles()
        if lag is not None:
            self.lag_label.setText(f"UI lag p95 {lag.p95_ms:.0f} ms")
        plan = getattr(self.controller.session, "thread_plan", None)
        if plan is not None:
            self.lag_label.setToolTip(f"{LAG_MEANING}\n{plan.describe()}")

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._shutdown_done:
            event.accept()
            self.closed.emit()
            return
        event.ignore()
        if self._closing:
            return
        self._closing = True
        self._save()
        self.message_label.setText("Stopping…")
        self.setEnabled(False)
        self.timeline.stop()
        self.streaming.stop()
        self.privacy.close()
        self.voice_calibration.close()
        self.lag_meter.stop()
        self._lag_timer.stop()
        self.controller.shutdown()
        self._close_deadline.start()

    @Slot()
    def _on_shut_down(self) -> None:
        left = self.controller.join(timeout=1.0)
        if left:
            log.warning("threads still running at close: %s", left)
        self._finish_close()

    @Slot()
    def _force_close(self) -> None:
        log.warning("the session did not stop within %d ms; closing anyway", CLOSE_DEADLINE_MS)
        self.bridge.close()
        self._finish_close()

    def _finish_close(self) -> None:
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self._close_deadline.stop()
        self.close()

    def _save(self) -> None:
        wanted = self.controller.wanted()
        self.settings.enabled = wanted
        save_settings(self.store, self.settings)
        save_layout(self.store, self.saveGeometry(), self.saveState())
        self.store.sync()

    # -- actions -------------------------------------------------------------------------

    def focus_text_entry(self) -> None:
        self.text_panel.entry.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.text_panel.entry.selectAll()

    def show_problem(self, message: str) -> None:
        self.message_label.setText(message)
        self.message_label.setToolTip(message)
        log.warning("%s", message)

    def _choose_source(self, modality: Modality, key: str) -> None:
        self.controller.choose_source(modality, key)
        if modality is Modality.FACE:
            self.settings.camera = key
        else:
            self.settings.microphone = key
        save_settings(self.store, self.settings)

    def _choose_profile(self, name: str) -> None:
        self.settings.profile = name
        save_settings(self.store, self.settings)
        self.controller.load_profile(name)

    def _apply_fusion(self, fusion: FusionSettings) -> None:
        try:
            self.controller.set_fusion(fusion)
        except ValueError as exc:
            self.show_problem(f"fusion settings: {exc}")
            return
        self.settings.fusion = fusion
        save_settings(self.store, self.settings)
        self.fused_panel.set_disagreement_threshold(fusion.disagreement_threshold)

    def _on_follow_face(self, track_id: int | None) -> None:
        """A face clicked in the preview: the face encoder makes it the primary face while
        it is tracked (None: back to the largest face)."""
        from emoapp.encoders.face import follow_face

        session = getattr(self.controller, "session", None)
        encoder = session.encoder(Modality.FACE) if session is not None else None
        if encoder is not None:
            follow_face(encoder, track_id)

    def _on_preview_mode(self, mode: PreviewMode) -> None:
        self.preview_actions[mode].setChecked(True)
        self.settings.preview_mode = mode.value
        save_settings(self.store, self.settings)

    def _remember_timeline_source(self) -> None:
        self.settings.timeline_source = self.timeline.shown_source()
        save_settings(self.store, self.settings)

    def _remember_typing(self, on: bool) -> None:
        self.settings.analyse_while_typing = on
        save_settings(self.store, self.settings)

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About emoapp",
            "emoapp estimates the emotion a face, a voice and a text <i>display</i>, "
            "fuses them late, and shows how the fused estimate was reached.<br><br>"
            f"<b>{CAVEAT}</b><br><br>Everything runs on this computer.",
        )

    def _explanations_help(self) -> None:
        from emoapp.ui.explain_views import EXPLAIN_EVERY_S, help_html

        self.explanations_help = QMessageBox(
            QMessageBox.Icon.Information,
            "What the explanations mean",
            help_html(EXPLAIN_EVERY_S),
            parent=self,
        )
        self.explanations_help.setTextFormat(Qt.TextFormat.RichText)
        self.explanations_help.open()

    def _shortcuts_help(self) -> None:
        lines = [f"{SHORTCUT_KEYS[m]}: start/stop {MODALITY_TITLES[m].lower()}" for m in Modality]
        lines += [
            "Space: pause all / resume",
            "Ctrl+E: type text",
            "Ctrl+Shift+1/2/3: show picture / blur faces / scores only",
            "Ctrl+Q: quit",
        ]
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join(lines))

    # -- from the controller and the session ---------------------------------------------

    def _source_open(self, m: Modality) -> bool:
        status = self._session_status.get(m)
        return status is not None and status.state in _SOURCE_OPEN_STATES

    @Slot(object)
    def _on_frame(self, frame: VideoFrame) -> None:
        # A frame captured just before its camera stopped may arrive after the stop:
        # it is dropped, never drawn.
        if self._source_open(Modality.FACE):
            self.camera_panel.show_frame(frame)

    @Slot(object)
    def _on_audio_level(self, level: AudioLevel) -> None:
        if self._source_open(Modality.VOICE):
            self.voice_panel.show_level(level)

    @Slot(object)
    def _on_session_status(self, status: ModalityStatus) -> None:
        self._session_status[status.modality] = status
        self._render_status(status.modality)
        if status.state in ("stopped", "off", "failed"):
            if status.modality is Modality.FACE:
                self.camera_panel.clear(
                    "Camera stopped" if status.state == "stopped" else "No camera picture"
                )
            elif status.modality is Modality.VOICE:
                self.voice_panel.clear()
        if status.state == "stopped" and status.modality in self.controller.wanted():
            # The replayed file ended: show the modality as off; switching it on replays.
            self.controller.note_ended(status.modality)

    @Slot(object, str, str)
    def _on_note(self, modality: Modality, state: str, message: str) -> None:
        if state:
            self._notes[modality] = (state, message)
        else:
            self._notes.pop(modality, None)
        self._render_status(modality)

    def _render_status(self, m: Modality) -> None:
        status = self._session_status.get(m) or ModalityStatus(m, "off")
        note = self._notes.get(m)
        if note is not None:
            state, message = note
            if status.state == "off":
                status = ModalityStatus(
                    m,
                    state,
                    status.source,
                    status.model_id,
                    status.device,
                    status.baseline,
                    message,
                    device_detail=status.device_detail,
                )
            else:
                joined = f"{status.message}; {message}" if status.message else message
                status = ModalityStatus(
                    m,
                    status.state,
                    status.source,
                    status.model_id,
                    status.device,
                    status.baseline,
                    joined,
                    device_detail=status.device_detail,
                )
        if not status.source:
            info = self.controller.source_info(m)
            if info is not None:
                status = ModalityStatus(
                    m,
                    status.state,
                    info.title,
                    status.model_id,
                    status.device,
                    status.baseline,
                    status.message,
                    device_detail=status.device_detail,
                )
        self.status_panel.show_status(status)
        if m is Modality.TEXT and status.state in ("failed", "degraded"):
            self.text_panel.reason.setText(status.message)
        info = self.controller.source_info(m)
        raw = self._session_status.get(m)
        # The session's own word on whether the device (or file) is open right now: not
        # while it is being opened, retried after a failure, or refused for consent.
        active = raw is not None and raw.source_open
        self.capture_indicators.set_capture(
            m,
            active,
            is_device=info.is_device if info is not None else True,
            source_name=raw.source
            if raw is not None and raw.source
            else (info.title if info else ""),
        )

    @Slot(object)
    def _on_models_chosen(self, choice: ModelChoiceNote) -> None:
        note = " ".join(choice.notes)
        self.controls.set_profile(choice.profile, note)
        if note:
            self.message_label.setText(note)

    @Slot(object, object)
    def _on_devices_listed(self, cameras: list, microphones: list) -> None:
        found = f"found {len(cameras)} camera(s) and {len(microphones) - 1} microphone(s)"
        cam = self.controller.source_info(Modality.FACE)
        mic = self.controller.source_info(Modality.VOICE)
        for info, choices in ((cam, cameras), (mic, microphones)):
            if info is not None and info.key not in {k for _, k in choices}:
                choices.insert(0, (key_title(info.key), info.key))
        self.controls.set_camera_choices(cameras, cam.key if cam else None)
        self.controls.set_microphone_choices(microphones, mic.key if mic else None)
        self.message_label.setText(found)

    @Slot(object, object)
    def _on_source_changed(self, modality: Modality, info: SourceInfo | None) -> None:
        self._render_status(modality)

    @Slot(object, bool)
    def _on_wanted_changed(self, modality: Modality, on: bool) -> None:
        self.controls.set_running(modality, on)
        self.modality_actions[modality].setChecked(on)

    @Slot(bool)
    def _on_paused_changed(self, paused: bool) -> None:
        self.controls.set_paused(paused)
        self.pause_action.setText("&Resume" if paused else "&Pause all")
        self.message_label.setText("Paused: every device is closed." if paused else "")
