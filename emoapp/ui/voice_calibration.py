""" "Calibrate to me" in the window: the menu action, the dialog, and handing the stored
calibration to the voice model.

:class:`VoiceCalibrationController` connects three things:

- **the menu** (Modalities → Calibrate to me (voice)…): enabled only while microphone
  consent is saved (a calibration is stored only then), with a tooltip saying why not;
  it opens :class:`~emoapp.ui.voice_calibration_dialog.VoiceCalibrationDialog`, which
  records the passage from the chosen microphone or takes a recording of it;
- **the voice model**: the session controller asks :meth:`load_for` for the stored
  calibration whenever a voice model that adapts to speakers is installed (so at window
  start, and after a profile switch), and again after one is saved or deleted; it hands
  it to the model (``set_calibration``) on its command thread and says what is in use
  (``state_changed``: the voice panel shows it and offers "Delete");
- **consent**: revoking the microphone (here, in another emoapp process, or "Revoke all")
  deletes the stored file (audited) and makes the voice model forget its calibration and
  running estimate, whatever the voice source is.

Making a calibration (reading the audio, or recording it, and computing the features,
several seconds) runs on a worker thread of its own, on a fresh copy of the voice model
(the running model keeps serving the live session undisturbed); the result comes back to
the UI thread as a queued signal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.privacy.consent import ConsentChange, ConsentGate
from emoapp.privacy.voice_calibration import (
    CALIBRATION_FILE,
    CALIBRATION_SECONDS,
    calibrate_with,
    delete_calibration,
    describe_calibration,
    load_calibration,
    read_recording,
    record_from,
)
from emoapp.ui.controller import SessionController, VoiceCalibrationState
from emoapp.ui.source_keys import build_source
from emoapp.ui.voice_calibration_dialog import VoiceCalibrationDialog

log = logging.getLogger(__name__)

NEEDS_CONSENT = (
    "Needs microphone consent: switch the microphone on and choose Allow. A calibration "
    "is stored only while that consent lasts."
)
RUN_ONLY = (
    "The microphone is allowed for this run only: a calibration is stored only with "
    "microphone consent that is saved (switch the microphone on and choose Allow)."
)
RECORD_SECONDS = CALIBRATION_SECONDS + 3.0
"""How long "Record from the microphone" listens: the passage takes about 15 s to read."""


def fresh_copy(encoder: Any) -> Any:
    """A model to compute a calibration with, apart from the one the session runs (its own
    gate and state): a new instance of an embedded voice model; any other encoder as is."""
    from emoapp.encoders.embedded.voice import EmbeddedVoiceEncoder

    if isinstance(encoder, EmbeddedVoiceEncoder):
        from emoapp.encoders.factory import build_encoder

        return build_encoder(encoder.spec)
    return encoder


class VoiceCalibrationController(QObject):
    """The window's "calibrate to me" (see the module docstring)."""

    message = Signal(str)  # one line for the status bar
    state_changed = Signal(object)  # VoiceCalibrationState, on the UI thread
    _done = Signal(str, str)  # message, error ("" when none): from the worker thread
    _consent_changed = Signal(object)  # ConsentChange, from any thread

    def __init__(
        self,
        parent: QWidget,
        controller: SessionController,
        gate: ConsentGate,
        path: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.controller = controller
        self.gate = gate
        self.store = gate.store
        self.audit = gate.store.audit
        self.path = path if path is not None else gate.store.folder / CALIBRATION_FILE
        self.record_seconds = RECORD_SECONDS
        self.copy_model: Callable[[Any], Any] = fresh_copy
        """Turns the running voice model into the one a calibration is computed with."""
        self.state: VoiceCalibrationState | None = None
        self.dialog: VoiceCalibrationDialog | None = None
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()

        self.action = QAction("Calibrate to &me (voice)…", self)
        self.action.triggered.connect(self.open_dialog)
        controller.voice_calibration = self.load_for
        controller.voice_calibration_changed.connect(self._on_state)
        controller.source_changed.connect(lambda *_: self._refresh_dialog())
        self._done.connect(self._on_done)
        self._consent_changed.connect(self._on_consent_changed)
        self._unsubscribe = self.store.add_listener(self._on_store_change)
        self.refresh_action()

    # -- what the session controller asks (command thread) --------------------------------

    def load_for(self, model_id: str) -> Any:
        """The stored calibration for ``model_id``, only while microphone consent is saved;
        a file found without it is deleted (audited): consent was withdrawn meanwhile,
        e.g. by another program while the window was closed."""
        return load_calibration(model_id, self.store, self.audit, self.path)

    # -- the menu and the dialog ----------------------------------------------------------

    def can_store(self) -> tuple[bool, str]:
        """Whether a calibration may be stored now, and why not."""
        if self.store.is_granted(Modality.VOICE):
            return True, ""
        if self.gate.is_allowed(Modality.VOICE):
            return False, RUN_ONLY
        return False, NEEDS_CONSENT

    @Slot()
    def refresh_action(self) -> None:
        ok, why = self.can_store()
        self.action.setEnabled(ok)
        self.action.setToolTip(
            "Read a short neutral passage so the voice model adapts to your voice" if ok else why
        )
        self.action.setStatusTip(self.action.toolTip())
        self._refresh_dialog()

    def _mic_usable(self) -> tuple[bool, str]:
        info = self.controller.source_info(Modality.VOICE)
        if info is None or not info.is_device:
            return False, (
                "The voice source is a replayed file: choose a microphone in Controls to "
                "record here, or use a recording of you reading the passage."
            )
        return True, ""

    def _refresh_dialog(self, status: bool = True) -> None:
        """Bring the dialog's buttons (and, with ``status``, what it says is stored) up to
        date."""
        if self.dialog is None:
            return
        ok, why = self.can_store()
        self.dialog.set_allowed(ok, why)
        self.dialog.set_mic(*self._mic_usable())
        if status and not self.dialog.busy:
            self.dialog.refresh()

    @Slot()
    def open_dialog(self) -> VoiceCalibrationDialog:
        """Modalities → Calibrate to me (voice)…: the dialog (not modal: the window keeps
        running, and the passage stays on screen while the person reads)."""
        if self.dialog is None:
            self.dialog = VoiceCalibrationDialog(
                self.record_file,
                self.delete,
                lambda: describe_calibration(self.path),
                self.parent_widget,
                record_mic=self.record_mic,
                mic_seconds=self.record_seconds,
            )
            self.dialog.cancel_requested.connect(self._cancel.set)
        self._refresh_dialog()
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    # -- making one (a worker thread) -----------------------------------------------------

    def _voice_model(self) -> Any:
        session = self.controller.session
        encoder = session.encoder(Modality.VOICE) if session is not None else None
        if encoder is None:
            raise EmoappError("the voice model has not loaded yet; try again in a moment")
        if not getattr(encoder, "adaptive", False):
            raise EmoappError(
                f"the voice model in use ({encoder.model_id}) does not adapt to speakers; "
                "choose a profile with an embedded voice model (e.g. embedded/voice-multicorpus)"
            )
        return encoder

    def _start_worker(self, samples_of: Callable[[], Any], what: str) -> None:
        ok, why = self.can_store()
        if not ok:
            raise EmoappError(why)
        if self.busy:
            raise EmoappError("a calibration is already being made")
        encoder = self._voice_model()
        self._cancel.clear()

        def work() -> None:
            try:
                samples = samples_of()
                model = self.copy_model(encoder)
                stats, _ = calibrate_with(model, samples, self.store, self.audit, self.path)
            except EmoappError as exc:
                self._report("", str(exc))
                return
            # Reading audio and computing features runs third-party code (decoders,
            # librosa, a speaker encoder) that can fail in any way: say so, and go on.
            except Exception as exc:
                log.exception("making a voice calibration failed")
                self._report("", f"{type(exc).__name__}: {exc}")
                return
            self._report(f"Stored {stats.seconds:.0f} s of {what}.", "")

        self._worker = threading.Thread(target=work, name="emoapp-voice-calibration", daemon=True)
        self._worker.start()

    def _report(self, message: str, error: str) -> None:
        """From the worker: hand the result to the UI thread (nothing to do when the
        window has closed meanwhile and this object is gone)."""
        try:
            self._done.emit(message, error)
        except RuntimeError:  # the Qt object was deleted with the window
            log.info("voice calibration finished after the window closed: %s", message or error)

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def record_file(self, path: Path) -> None:
        """Make and store a calibration from a recording (in the background)."""
        self._start_worker(lambda: read_recording(path), f"your reading ({Path(path).name})")

    def record_mic(self) -> None:
        """Record the person reading the passage from the chosen microphone (through the
        consent gate) and make and store a calibration from it (in the background). The
        sound is kept in memory only, until its features are computed."""
        usable, why = self._mic_usable()
        if not usable:
            raise EmoappError(why)
        info = self.controller.source_info(Modality.VOICE)
        assert info is not None
        source = build_source(Modality.VOICE, info.key, self.controller.replay, self.gate)
        seconds = self.record_seconds
        self._start_worker(lambda: record_from(source, seconds, self._cancel), "your reading")

    @Slot(str, str)
    def _on_done(self, message: str, error: str) -> None:
        if not error:
            self.controller.reload_voice_calibration()
            self.message.emit(f"voice calibration: {message}")
        if self.dialog is not None:
            self.dialog.finished_storing(message, error or None)
            self._refresh_dialog(status=False)

    def delete(self) -> bool:
        """Delete the stored calibration (audited); the voice model stops using it."""
        deleted = delete_calibration(self.audit, self.path)
        self.controller.reload_voice_calibration()
        if deleted:
            self.message.emit("voice calibration deleted")
        self._refresh_dialog()
        return deleted

    # -- what is in use, and consent ------------------------------------------------------

    @Slot(object)
    def _on_state(self, state: VoiceCalibrationState) -> None:
        self.state = state
        if state.note:
            self.message.emit(state.note)
        self.state_changed.emit(state)

    def _on_store_change(self, change: ConsentChange) -> None:
        """Any thread: a revoked microphone deletes the stored calibration at once."""
        if change.modality is Modality.VOICE and not change.granted:
            self._cancel.set()
            delete_calibration(self.audit, self.path, why="microphone consent revoked")
        self._consent_changed.emit(change)

    @Slot(object)
    def _on_consent_changed(self, change: ConsentChange) -> None:
        if change.modality is Modality.VOICE and not change.granted:
            self.controller.forget_voice_adaptation()
        self.refresh_action()

    def close(self, timeout: float = 1.0) -> None:
        """The window is closing: stop a recording, wait briefly for the worker (a daemon
        thread; a computation still running is abandoned), stop listening to consent."""
        self._cancel.set()
        self._unsubscribe()
        if self._worker is not None:
            self._worker.join(timeout)
        if self.dialog is not None:
            self.dialog.close()
