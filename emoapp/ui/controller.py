"""Everything the window asks of the live session, done off the UI thread.

The UI thread never waits on a model or a device. :class:`SessionController` owns:

- a **command thread** that runs session operations in the order the person asked for
  them (start or stop a modality, switch a camera, apply fusion settings, submit text,
  read metrics). Stopping a modality closes its device and may wait for a capture thread
  to end; that wait happens here, never on the UI thread;
- **model loader threads** that build and load the encoders of a profile, one modality
  at a time, announcing "loading model…" as they go, and hand each loaded encoder to the
  command thread. A profile switch starts a new generation; encoders still loading for
  an older one are discarded.

Results come back to the UI thread as queued Qt signals: the session's own messages go
through :class:`~emoapp.ui.bridge.SessionBridge`, the controller's (model loading,
metrics, device lists, problems) through the signals below.

Consent: :attr:`SessionController.start_gate` is asked on the UI thread before a
modality starts (the window's consent dialog), and :attr:`SessionController.consent_gate`
goes with every camera and microphone source the controller builds, which ask it
themselves whenever they open: a device without consent stays shut even if a command
slipped past the first check (or no gate was set at all), and a retry after a
revocation is refused. Probing cameras for the device list opens each one briefly, so
it too asks for camera consent.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from emoapp.capture.base import Source, one_line
from emoapp.config import (
    FusionOptions,
    ModelOptions,
    choose_models,
    fusion_config,
    runtime_options,
)
from emoapp.core import clock
from emoapp.core.errors import ConsentRequiredError, EmoappError
from emoapp.core.fusion import FusionConfig
from emoapp.core.messages import Modality
from emoapp.encoders.base import Encoder, EncoderInfo
from emoapp.encoders.factory import build_encoder
from emoapp.privacy.consent import ConsentGate
from emoapp.registry import ModelSpec
from emoapp.ui.bridge import SessionBridge
from emoapp.ui.settings import FusionSettings
from emoapp.ui.source_keys import ReplayOptions, build_source, key_for_source, key_title

log = logging.getLogger(__name__)

EncoderHook = Callable[[Modality, Encoder], Encoder]
"""Wraps each loaded encoder before the session gets it (tests use it to inject faults)."""
CalibrationLoader = Callable[[str], Any]
"""A voice model id -> its stored calibration (SpeakerStats) or None."""


@dataclass(frozen=True)
class VoiceCalibrationState:
    """Whether the voice model runs with a "calibrate to me" calibration."""

    model_id: str
    adaptive: bool
    """The voice model adapts to speakers at all."""
    seconds: float | None
    """Seconds of speech of the calibration in use; None: none in use."""
    note: str = ""
    """Why a stored calibration is not used (empty when nothing went wrong)."""


@dataclass(frozen=True)
class SourceInfo:
    """What a modality's chosen source is, for pickers and capture indicators."""

    key: str
    title: str
    is_device: bool


StartGate = Callable[[Modality, SourceInfo | None], bool]
"""Asked on the UI thread before a modality starts or switches source; False refuses."""


@dataclass(frozen=True)
class ModelChoiceNote:
    """The models a profile resolved to, and notes for the person (fallbacks)."""

    profile: str
    models: dict[Modality, str | None]
    notes: list[str]


class EncoderPlan:
    """Which model each modality runs under a profile, and how to load it, following
    the model options the window was started with (a per-modality model given there
    overrides any profile)."""

    def __init__(self, models: ModelOptions) -> None:
        self.models = models

    def choose(self, profile: str) -> tuple[dict[Modality, ModelSpec | None], list[str]]:
        choice = choose_models(self.models.with_profile(profile))
        return choice.specs, list(choice.notes)

    def fusion_base(self, profile: str) -> FusionConfig:
        """The fusion config ``profile`` brings: its fitted reliabilities and
        temperatures, and the registry's priors of its models (the window's own fusion
        choices go on top)."""
        return fusion_config(self.models.with_profile(profile), FusionOptions())

    def load(self, spec: ModelSpec) -> Encoder:
        encoder = build_encoder(spec, runtime_options(self.models))
        encoder.load()
        return encoder


@dataclass
class SessionOptions:
    """How the window's live session runs."""

    rate_hz: float = 10.0
    voice_window_s: float = 2.0
    voice_hop_s: float = 0.5
    metrics_interval_ms: int = 1000
    threads: int | None = None
    """Per-worker thread count (None: ``EMOAPP_THREADS`` or chosen from the cores)."""
    face_detect_every: int = 5
    """Detect faces on one frame in this many and track them in between."""
    face_reclassify_after: float = 1.0
    """A tracked face that neither moved nor changed keeps its classification this many
    seconds at most (0: classified on every frame)."""


class _CommandThread:
    """One daemon thread running submitted calls in order."""

    def __init__(self, name: str, on_failure: Callable[[str, str], None]) -> None:
        self._queue: queue.Queue[tuple[str, Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.Queue()
        )
        self._on_failure = on_failure
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def submit(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((what, fn, args))

    def finish(self) -> None:
        """Run what was submitted, then end."""
        self._queue.put(None)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            what, fn, args = item
            try:
                fn(*args)
            except EmoappError as exc:
                self._on_failure(what, str(exc))
            # The command thread must outlive any failure (a driver, a bug): the reason
            # is logged and shown to the person, and the next command runs.
            except Exception as exc:
                log.exception("%s failed", what)
                self._on_failure(what, f"{type(exc).__name__}: {one_line(exc)}")


class SessionController(QObject):
    """Starts, steers and stops the live session for the window."""

    # (modality, state, message): a state the session cannot know, e.g. "loading" while
    # a model loads, or "failed" when it could not load; state "" clears it.
    modality_note = Signal(object, str, str)
    models_chosen = Signal(object)  # ModelChoiceNote
    _fusion_base_ready = Signal(object, object)  # FusionConfig, {Modality: model id}
    metrics_ready = Signal(object)  # dict[Modality, ModalityMetricsSnapshot]
    devices_listed = Signal(object, object)  # camera [(title, key)], microphone [...]
    source_changed = Signal(object, object)  # Modality, SourceInfo | None
    wanted_changed = Signal(object, bool)  # Modality, on
    paused_changed = Signal(bool)
    text_rejected = Signal(str)
    # (start, end, text): typed text handed to the session between start and end (session
    # clock); the session stamps its entry in that interval. Emitted on the command thread.
    text_analysed = Signal(float, float, str)
    model_installed = Signal(object, object)  # Modality, EncoderInfo | None
    # The voice model's "calibrate to me" in use now (VoiceCalibrationState), after every
    # voice model install and every reload/forget. Emitted on the command thread.
    voice_calibration_changed = Signal(object)
    models_ready = Signal(str)  # profile: each of its models is installed or failed
    problem = Signal(str)  # a command failed, in one line
    shut_down = Signal()

    def __init__(
        self,
        bridge: SessionBridge,
        plan: EncoderPlan,
        sources: dict[Modality, Source] | None = None,
        fusion: FusionSettings | None = None,
        replay: ReplayOptions | None = None,
        options: SessionOptions | None = None,
        encoder_hook: EncoderHook | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.plan = plan
        self.options = options or SessionOptions()
        self.replay = replay or ReplayOptions()
        self.encoder_hook = encoder_hook
        self.start_gate: StartGate | None = None
        """Asked on the UI thread before a modality starts (or switches to another source
        while on); returning False keeps it off. The privacy layer's consent check
        belongs here: it runs before any command that could open a device is sent."""
        self.consent_gate: ConsentGate | None = None
        """Handed to every camera and microphone source the controller builds (set
        before :meth:`start`); they ask it when they open, and without it never do."""
        self.voice_calibration: CalibrationLoader | None = None
        """Given the voice model's id, the stored "calibrate to me" statistics for it (None:
        none, or not allowed). Asked on the command thread whenever a voice model that
        adapts to speakers is installed, and by :meth:`reload_voice_calibration`."""
        # The person's fusion choices, over the current profile's fusion config.
        self._fusion_settings = fusion or FusionSettings()
        self._fusion_base = FusionConfig()
        self._fusion_models: dict[Modality, str] = {}
        self._fusion = self._fusion_settings.apply_to(self._fusion_base)
        self._fusion_base_ready.connect(self._on_fusion_base)
        # UI-thread state.
        self._wanted: set[Modality] = set()
        self._explaining: set[Modality] = set()  # panels whose explanation view is on
        self._paused: set[Modality] | None = None
        self._source_info: dict[Modality, SourceInfo | None] = {m: None for m in Modality}
        self._initial_sources = dict(sources or {})
        for m, source in self._initial_sources.items():
            if m is not Modality.TEXT:
                key = key_for_source(source)
                self._source_info[m] = SourceInfo(key, source.name, source.is_device)
        self._started = False
        self._shutting_down = False
        self._metrics_pending = False
        # Speech recognition (the profile's recogniser; switched by set_transcription).
        self._asr_on = True
        self._asr_profile = ""
        self._transcriber: Any = None
        # Command-thread state.
        self._session: Any = None
        # key -> source built for it; and the source the session currently holds.
        self._built: dict[Modality, tuple[str, Source]] = {}
        for m, source in self._initial_sources.items():
            info = self._source_info[m]
            self._built[m] = (info.key if info is not None else "file:", source)
        self._given: dict[Modality, Source | None] = {}
        # Loader state (generation guarded by a lock: read by loader threads).
        self._gen_lock = threading.Lock()
        self._generation = 0
        self._loaders: list[threading.Thread] = []
        self._cancel = threading.Event()
        self._commands = _CommandThread("emoapp-ui-commands", self._command_failed)
        self._metrics_timer = QTimer(self)
        self._metrics_timer.setInterval(self.options.metrics_interval_ms)
        self._metrics_timer.timeout.connect(self.poll_metrics)

    # -- reading (UI thread) ------------------------------------------------------------

    def wanted(self) -> set[Modality]:
        return set(self._wanted)

    @property
    def paused(self) -> bool:
        return self._paused is not None

    def source_info(self, modality: Modality) -> SourceInfo | None:
        return self._source_info.get(modality)

    @property
    def session(self) -> Any:
        """The live session (None before start). Read-only use, e.g. in tests."""
        return self._session

    def threads(self) -> list[threading.Thread]:
        """The controller's own threads that are still alive."""
        return [t for t in (self._commands.thread, *self._loaders) if t.is_alive()]

    # -- commands (UI thread; each returns at once) -------------------------------------

    def start(self, wanted: set[Modality], profile: str) -> None:
        """Create the session, start the wanted modalities, and load the profile's models
        (those wanted first)."""
        if self._started:
            return
        self._started = True
        self._wanted = {m for m in wanted if self._allowed(m)}
        self._asr_profile = profile
        self._commands.submit("starting the session", self._create_session, set(self._wanted))
        for m in Modality:
            self.wanted_changed.emit(m, m in self._wanted)
        self.load_profile(profile)
        self._metrics_timer.start()

    def load_profile(self, profile: str) -> None:
        """Load the models of ``profile`` in the background and swap them in as each is
        ready; the modalities keep running on their old model meanwhile."""
        if self._shutting_down:
            return
        with self._gen_lock:
            self._generation += 1
            generation = self._generation
        if self._started and profile != self._asr_profile:
            self._asr_profile = profile
            self._commands.submit("choosing the speech recogniser", self._swap_recognizer, profile)
        order = sorted(Modality, key=lambda m: (m not in self._wanted, m is not Modality.TEXT))
        thread = threading.Thread(
            target=self._load_models,
            args=(generation, profile, order),
            name=f"emoapp-model-loader-{generation}",
            daemon=True,
        )
        self._loaders = [t for t in self._loaders if t.is_alive()]
        self._loaders.append(thread)
        thread.start()

    def set_wanted(self, modality: Modality, on: bool) -> None:
        """Start or stop one modality."""
        if self._shutting_down:
            return
        if on and not self._allowed(modality):
            self.wanted_changed.emit(modality, False)
            return
        if on:
            self._wanted.add(modality)
            self._commands.submit(f"starting {modality.value}", self._start_modality, modality)
        else:
            self._wanted.discard(modality)
            self._commands.submit(f"stopping {modality.value}", self._stop_modality, modality)
        if on and self._paused is not None:
            self._paused = None
            self.paused_changed.emit(False)
        self.wanted_changed.emit(modality, on)

    def _allowed(self, modality: Modality) -> bool:
        if self.start_gate is None or self.start_gate(modality, self._source_info.get(modality)):
            return True
        self.problem.emit(f"{modality.value} was not started: not allowed")
        return False

    def withdraw(self, modality: Modality) -> None:
        """Stop ``modality`` now and leave it off: unlike a pause, resuming does not
        start it again (its consent was revoked)."""
        if self._paused is not None:
            self._paused.discard(modality)
        if modality in self._wanted:
            self.set_wanted(modality, False)
        else:
            # Not wanted, but perhaps still running (e.g. a start in flight).
            self._commands.submit(f"stopping {modality.value}", self._stop_modality, modality, True)
        self._commands.submit(f"forgetting {modality.value} adaptation", self._forget, modality)

    def _forget(self, m: Modality) -> None:
        """Consent withdrawn: a model that adapts to the person (the voice model's running
        estimate and calibration) forgets them."""
        encoder = self._session.encoder(m) if self._session is not None else None
        if encoder is not None and hasattr(encoder, "reset_adaptation"):
            encoder.reset_adaptation()
            if m is Modality.VOICE:
                self._announce_calibration(encoder, None)

    def reload_voice_calibration(self) -> None:
        """Hand the stored calibration (:attr:`voice_calibration`) to the voice model
        again, e.g. after one was saved or deleted; done on the command thread."""
        self._commands.submit("loading the voice calibration", self._apply_voice_calibration)

    def forget_voice_adaptation(self) -> None:
        """Microphone consent withdrawn: the voice model forgets its running estimate and
        its calibration, whatever the voice source (a replayed file too)."""
        self._commands.submit("forgetting voice adaptation", self._forget, Modality.VOICE)

    def _apply_voice_calibration(self) -> None:
        encoder = self._session.encoder(Modality.VOICE) if self._session is not None else None
        if encoder is None or self.voice_calibration is None:
            return
        if not getattr(encoder, "adaptive", False) or not hasattr(encoder, "set_calibration"):
            self._announce_calibration(encoder, None)
            return
        note = ""
        try:
            stats = self.voice_calibration(encoder.model_id)
            encoder.set_calibration(stats)
        except EmoappError as exc:  # made for another model, unreadable: not used
            stats, note = None, f"voice calibration not used: {exc}"
            encoder.set_calibration(None)
        self._announce_calibration(encoder, stats, note)

    def _announce_calibration(self, encoder: Any, stats: Any, note: str = "") -> None:
        self.voice_calibration_changed.emit(
            VoiceCalibrationState(
                encoder.model_id,
                bool(getattr(encoder, "adaptive", False)),
                None if stats is None else float(stats.seconds),
                note,
            )
        )

    def stop_all(self) -> None:
        """Stop every modality and forget a pause (nothing resumes by itself)."""
        was_paused = self._paused is not None
        self._paused = None
        for m in Modality:
            self.withdraw(m)
        if was_paused:
            self.paused_changed.emit(False)

    def note_ended(self, modality: Modality) -> None:
        """A modality stopped by itself (its replayed file ended): show it as off."""
        if modality in self._wanted:
            self._wanted.discard(modality)
            self.wanted_changed.emit(modality, False)

    def set_explaining(self, modality: Modality, on: bool) -> None:
        """A panel's explanation view was switched on or off: while any is on, the
        session explains each modality's newest prediction at most every
        ``EXPLAIN_EVERY_S`` seconds (and this one at once)."""
        if self._shutting_down:
            return
        if on:
            self._explaining.add(modality)
        else:
            self._explaining.discard(modality)
        self._commands.submit("explanations", self._apply_explaining, modality if on else None)

    def _apply_explaining(self, modality: Modality | None = None) -> None:
        from emoapp.ui.explain_views import EXPLAIN_EVERY_S

        if self._session is None:
            return
        self._session.enable_explanations(EXPLAIN_EVERY_S if self._explaining else None)
        if modality is not None:
            self._session.request_explanation(modality)

    def toggle_pause(self) -> None:
        """Stop every modality at once; the next call starts again those that were on."""
        if self._paused is None:
            paused = set(self._wanted)
            for m in sorted(paused):
                self.set_wanted(m, False)
            self._paused = paused
            self.paused_changed.emit(True)
        else:
            resume, self._paused = self._paused, None
            for m in sorted(resume):
                self.set_wanted(m, True)
            self.paused_changed.emit(False)

    def choose_source(self, modality: Modality, key: str) -> None:
        """Use another camera or microphone (or file); a running modality switches now."""
        if not key or self._shutting_down:
            return
        current = self._source_info.get(modality)
        if current is not None and current.key == key:
            return
        self._source_info[modality] = SourceInfo(key, key_title(key), not key.startswith("file:"))
        self.source_changed.emit(modality, self._source_info[modality])
        if modality in self._wanted and not self._allowed(modality):
            self.set_wanted(modality, False)
        self._commands.submit(
            f"switching the {modality.value} source", self._switch_source, modality, key
        )

    def set_fusion(self, settings: FusionSettings) -> None:
        """Apply the person's fusion choices (raises ValueError for impossible ones)."""
        config = settings.apply_to(self._fusion_base, self._fusion_models)
        self._fusion_settings = settings
        self._fusion = config
        self._commands.submit("applying fusion settings", self._apply_fusion, config)

    def fusion_config(self) -> FusionConfig:
        """The fusion config the session runs with (or will, once started)."""
        return self._fusion

    def _on_fusion_base(self, base: FusionConfig, models: dict[Modality, str]) -> None:
        self._fusion_base, self._fusion_models = base, models
        self.set_fusion(self._fusion_settings)

    def submit_text(self, text: str) -> None:
        self._commands.submit("analysing text", self._submit_text, text)

    @property
    def transcription(self) -> bool:
        """Whether speech heard by the microphone is transcribed into the text channel."""
        return self._asr_on

    def set_transcription(self, on: bool) -> None:
        """Switch transcription on or off (off drops the audio it holds at once)."""
        self._asr_on = bool(on)
        transcriber = self._transcriber
        if transcriber is not None:
            transcriber.set_enabled(self._asr_on)

    def poll_metrics(self) -> None:
        """Ask for fresh metrics (at most one request in flight)."""
        if self._metrics_pending or self._shutting_down:
            return
        self._metrics_pending = True
        self._commands.submit("reading metrics", self._read_metrics)

    def list_devices(self) -> None:
        """List cameras and microphones in the background (probing cameras opens each
        briefly, so this runs only when asked)."""
        thread = threading.Thread(
            target=self._list_devices, name="emoapp-device-lister", daemon=True
        )
        self._loaders = [t for t in self._loaders if t.is_alive()]
        self._loaders.append(thread)
        thread.start()

    def shutdown(self) -> None:
        """Stop everything in the background; ``shut_down`` is emitted when done."""
        if self._shutting_down:
            return
        self._shutting_down = True
        self._metrics_timer.stop()
        self._cancel.set()
        with self._gen_lock:
            self._generation += 1
        self._commands.submit("stopping the session", self._stop_session)
        self._commands.finish()

    def join(self, timeout: float = 5.0) -> list[str]:
        """Wait for the controller's threads (after ``shut_down``); names of those left."""
        for thread in (self._commands.thread, *self._loaders):
            thread.join(timeout)
        return [t.name for t in self.threads()]

    # -- command thread -----------------------------------------------------------------

    def _create_session(self, wanted: set[Modality]) -> None:
        from emoapp.live.session import LiveSession

        self._transcriber = self._make_transcriber(self._asr_profile)
        self._session = LiveSession(
            {},
            {},
            fusion=self._fusion,
            rate_hz=self.options.rate_hz,
            voice_window_s=self.options.voice_window_s,
            voice_hop_s=self.options.voice_hop_s,
            threads=self.options.threads,
            face_detect_every=self.options.face_detect_every,
            face_reclassify_after=self.options.face_reclassify_after,
            transcriber=self._transcriber,
        )
        self._session.add_listener(self.bridge)
        self._session.enable_explanations(None)  # on request only, until a view is on
        self._session.start()
        self._apply_explaining()
        for m in sorted(wanted):
            self._start_modality(m)

    def _recognizer(self, profile: str) -> Any:
        """The (unloaded) recogniser of ``profile``, or None; it loads on the
        transcription thread."""
        from emoapp.encoders.asr import build_recognizer
        from emoapp.recorded.transcribe import choose_recognizer

        models = getattr(self.plan, "models", None)
        if models is None:  # a plan that names no model options has no recogniser either
            return None
        try:
            choice = choose_recognizer("auto", profile, models.models_dir, models.download)
            if choice.spec is None:
                return None
            return build_recognizer(
                choice.spec, models.device, models.dtype, models.models_dir, models.download
            )
        except EmoappError as exc:
            self.problem.emit(f"speech recognition is off: {exc}")
            return None

    def _make_transcriber(self, profile: str) -> Any:
        from emoapp.encoders.vad import EnergyVAD
        from emoapp.live.transcriber import LiveTranscriber

        recognizer = self._recognizer(profile)
        if recognizer is None:
            return None
        transcriber = LiveTranscriber(
            recognizer,
            on_entry=lambda entry: None,  # the session connects itself
            gate=EnergyVAD(),
            on_error=self.problem.emit,
        )
        transcriber.set_enabled(self._asr_on)
        return transcriber

    def _swap_recognizer(self, profile: str) -> None:
        recognizer = self._recognizer(profile)
        if self._transcriber is not None and recognizer is not None:
            self._transcriber.recognizer = recognizer

    def _ensure_source(self, m: Modality) -> bool:
        """Give the session the chosen source of ``m``; False when there is none."""
        info = self._source_info.get(m)
        built = self._built.get(m)
        if m is not Modality.TEXT:
            if info is None:
                return False
            if built is None or built[0] != info.key:
                built = (info.key, build_source(m, info.key, self.replay, self.consent_gate))
                self._built[m] = built
        if built is not None and self._given.get(m) is not built[1]:
            self._session.set_source(m, built[1])
            self._given[m] = built[1]
        return True

    def _start_modality(self, m: Modality) -> None:
        if self._session is None:
            return
        if not self._ensure_source(m):
            device = "camera" if m is Modality.FACE else "microphone"
            self.modality_note.emit(m, "failed", f"no {device} chosen")
            return
        if self._session.status()[m].state == "stopped":
            # A replay that ended keeps its finished run; clear it so the file plays again.
            self._session.stop_modality(m)
        self._session.start_modality(m)

    def _stop_modality(self, m: Modality, only_if_running: bool = False) -> None:
        if self._session is None:
            return
        if only_if_running and self._session.status()[m].state in ("off", "stopped"):
            return
        self._session.stop_modality(m)

    def _switch_source(self, m: Modality, key: str) -> None:
        if self._session is None:
            return
        source = build_source(m, key, self.replay)
        self._built[m] = (key, source)
        self._session.set_source(m, source)
        self._given[m] = source

    def _install_encoder(self, generation: int, m: Modality, encoder: Encoder | None) -> None:
        with self._gen_lock:
            current = generation == self._generation
        if not current or self._session is None:
            return
        self._session.set_encoder(m, encoder)
        self.modality_note.emit(m, "", "")
        if m is Modality.VOICE and encoder is not None:
            self._apply_voice_calibration()
        info: EncoderInfo | None = None
        if encoder is not None:
            try:
                info = encoder.info()
            except EmoappError as exc:  # a card is a courtesy: the model still runs
                log.warning("no model card for %s: %s", encoder.model_id, exc)
        self.model_installed.emit(m, info)

    def _apply_fusion(self, config: FusionConfig) -> None:
        if self._session is not None:
            self._session.set_fusion_config(config)

    def _submit_text(self, text: str) -> None:
        start = clock.now()
        if self._session is None or not self._session.submit_text(text):
            self.text_rejected.emit(
                "text is not running: switch it on (Ctrl+3), or wait for its model"
            )
            return
        self.text_analysed.emit(start, clock.now(), text)

    def _read_metrics(self) -> None:
        try:
            if self._session is not None:
                self.metrics_ready.emit(self._session.metrics())
        finally:
            self._metrics_pending = False

    def _stop_session(self) -> None:
        try:
            if self._session is not None:
                left = self._session.stop()
                self._session.remove_listener(self.bridge)
                if left:
                    log.warning("session threads still running after stop: %s", left)
            for thread in list(self._loaders):
                thread.join(5.0)
        finally:
            self.bridge.close()
            self.shut_down.emit()

    def _command_failed(self, what: str, message: str) -> None:
        self.problem.emit(f"{what}: {message}")

    # -- loader threads -----------------------------------------------------------------

    def _is_current(self, generation: int) -> bool:
        with self._gen_lock:
            return generation == self._generation and not self._cancel.is_set()

    def _load_models(self, generation: int, profile: str, order: list[Modality]) -> None:
        try:
            specs, notes = self.plan.choose(profile)
        except EmoappError as exc:
            self.problem.emit(f"profile {profile!r}: {exc}")
            return
        self.models_chosen.emit(
            ModelChoiceNote(profile, {m: s.model if s else None for m, s in specs.items()}, notes)
        )
        try:
            base = self.plan.fusion_base(profile)
        except EmoappError as exc:
            self.problem.emit(f"fusion settings of profile {profile!r}: {exc}")
        else:
            if self._is_current(generation):
                models = {m: s.model for m, s in specs.items() if s is not None}
                self._fusion_base_ready.emit(base, models)
        for m in order:
            if not self._is_current(generation):
                return
            spec = specs.get(m)
            if spec is None:
                self.modality_note.emit(m, "off", f"the {profile} profile has no {m.value} model")
                self._commands.submit(
                    "removing a model", self._install_encoder, generation, m, None
                )
                continue
            self.modality_note.emit(m, "loading", f"loading model {spec.model}…")
            try:
                encoder = self.plan.load(spec)
            except EmoappError as exc:
                self.modality_note.emit(m, "failed", f"{m.value} model failed to load: {exc}")
                continue
            # Loading runs third-party code (torch, transformers, user files) that can
            # fail in any way; the loader must report it for this modality and go on.
            except Exception as exc:
                log.exception("loading %s failed", spec.model)
                self.modality_note.emit(
                    m,
                    "failed",
                    f"{m.value} model failed to load: {type(exc).__name__}: {one_line(exc)}",
                )
                continue
            if self.encoder_hook is not None:
                encoder = self.encoder_hook(m, encoder)
            if not self._is_current(generation):
                return
            self._commands.submit(
                f"installing the {m.value} model", self._install_encoder, generation, m, encoder
            )
        # Queued after the installs: the session has every model once this runs.
        self._commands.submit("announcing the models", self._announce_models, generation, profile)

    def _announce_models(self, generation: int, profile: str) -> None:
        if self._is_current(generation):
            self.models_ready.emit(profile)

    # -- device listing -----------------------------------------------------------------

    def _list_devices(self) -> None:
        from emoapp.capture.camera import list_cameras
        from emoapp.capture.microphone import list_input_devices

        cameras: list[tuple[str, str]] = []
        microphones: list[tuple[str, str]] = [("default microphone", "mic:default")]
        try:
            for cam in list_cameras(consent=self.consent_gate):
                width, height = cam.settings.width, cam.settings.height
                size = f" ({width}x{height})" if width else ""
                cameras.append((f"{cam.name}{size}", f"camera:{cam.index}"))
        except ConsentRequiredError as refusal:
            self.problem.emit(f"cameras not listed: finding them opens each one briefly; {refusal}")
        except EmoappError as exc:
            self.problem.emit(f"cannot list cameras: {exc}")
        try:
            for dev in list_input_devices():
                microphones.append(
                    (dev.name + (" (default)" if dev.is_default else ""), f"mic:{dev.index}")
                )
        except EmoappError as exc:
            self.problem.emit(f"cannot list microphones: {exc}")
        self.devices_listed.emit(cameras, microphones)
