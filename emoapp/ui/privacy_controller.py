"""The window's privacy layer: consent before a device opens, immediate revocation, the
export of the timeline kept in memory, and the "What is stored" and model-card views.

:class:`PrivacyController` plugs into the session controller at its two doors:

- ``controller.start_gate`` (UI thread, before a modality starts or switches source):
  a camera or microphone without consent shows the consent dialog
  (:mod:`emoapp.ui.consent_dialog`); "Allow" saves a grant in the consent store, "Not
  now" keeps the device shut. Replayed files and typed text pass;
- ``controller.consent_gate``: every camera and microphone source carries this gate and
  asks it whenever it opens (:mod:`emoapp.capture.base`), so a device without consent
  stays shut even if something slipped past the first door, and a retry after a
  revocation is refused.

Revocation is immediate. The consent store calls its listeners on the thread that made
or noticed the change (the Privacy menu on the UI thread; another emoapp process, or a
deleted consent file, seen by a check four times a second); the listener emits a signal, and
on the UI thread the modality is withdrawn: the session stops it at once (device closed,
buffers emptied, removed from fusion), the pause no longer resumes it, and the capture
indicator goes out with the session's next status.

The rows an export writes come from :class:`~emoapp.privacy.memory.TimelineMemory`,
fed here from the session bridge: in memory only, bounded, and forgotten by "Revoke all
and stop".
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QMenu, QWidget

from emoapp.core import clock
from emoapp.core.messages import EncoderOutput, FusedEstimate, Modality
from emoapp.encoders.base import EncoderInfo
from emoapp.live.session import ModalityStatus
from emoapp.privacy.consent import DEVICE_NAME, ConsentChange, ConsentError, ConsentGate
from emoapp.privacy.export import ExportError, ExportResult, export_timeline
from emoapp.privacy.memory import TimelineMemory
from emoapp.privacy.modelcards import ModelCard, model_card
from emoapp.ui.bridge import SessionBridge
from emoapp.ui.consent_dialog import ConsentPrompt, ask_consent
from emoapp.ui.controller import SessionController, SourceInfo
from emoapp.ui.export_dialog import ExportDialog, ExportRequest
from emoapp.ui.privacy_views import ModelCardsDialog, StoredDialog, stored_report

log = logging.getLogger(__name__)

CONSENT_CHECK_MS = 250
"""How often the consent file is checked for changes made elsewhere (one stat)."""


def media_reference(info: SourceInfo | None) -> str | None:
    """What an export's "media references" name for a source: a replayed file's path,
    or a device's name (emoapp never writes frames or sound)."""
    if info is None:
        return None
    kind, _, rest = info.key.partition(":")
    return rest if kind == "file" else info.title


class PrivacyController(QObject):
    """Consent, revocation, export and transparency for one window."""

    message = Signal(str)  # one line for the status bar
    revoked = Signal(object)  # Modality: withdrawn after its consent was revoked
    forgotten = Signal()  # "Revoke all and stop": views of the session should clear
    _store_changed = Signal(object)  # ConsentChange, from any thread

    def __init__(
        self,
        parent: QWidget,
        controller: SessionController,
        bridge: SessionBridge,
        gate: ConsentGate,
        memory: TimelineMemory | None = None,
        settings_file: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.controller = controller
        self.gate = gate
        self.store = gate.store
        self.memory = memory if memory is not None else TimelineMemory()
        self.settings_file = settings_file
        self.prompt: ConsentPrompt = ask_consent
        """Asks for consent (the dialog); tests put a recorder in its place."""
        self.cards: dict[Modality, ModelCard] = {}
        self.export_folder = Path.home()

        controller.start_gate = self.start_gate
        controller.consent_gate = gate
        controller.model_installed.connect(self._on_model_installed)
        controller.text_analysed.connect(self.memory.add_text)
        controller.source_changed.connect(self._on_source_changed)
        for m in Modality:
            self._on_source_changed(m, controller.source_info(m))
        bridge.estimate_received.connect(self._on_estimate)
        bridge.output_received.connect(self._on_output)
        bridge.status_received.connect(self._on_status)
        # Heard text is held like typed text (in memory, exported only if asked), as
        # microphone data: withdrawing the microphone forgets it.
        bridge.heard_received.connect(
            lambda e: self.memory.add_text(e.t, e.t, e.text, origin=Modality.VOICE)
        )
        bridge.withdrawn.connect(self.memory.forget_origin)

        self._store_changed.connect(self._apply_change)  # direct on the UI thread
        self._unsubscribe = self.store.add_listener(self._store_changed.emit)
        self._check_timer = QTimer(self)
        self._check_timer.setInterval(CONSENT_CHECK_MS)
        self._check_timer.timeout.connect(self.check_consent_file)
        self._check_timer.start()

        self.revoke_actions: dict[Modality, QAction] = {}
        for m in self.store.text.granted_modalities:
            action = QAction(f"Revoke {DEVICE_NAME.get(m, m.value)}", self)
            action.triggered.connect(lambda _checked=False, m=m: self.revoke(m))
            self.revoke_actions[m] = action
        self.revoke_all_action = QAction("Revoke all and &stop", self)
        self.revoke_all_action.triggered.connect(self.revoke_all_and_stop)
        self.stored_action = QAction("What is &stored…", self)
        self.stored_action.triggered.connect(self.show_stored)
        self.models_action = QAction("About the &models…", self)
        self.models_action.triggered.connect(self.show_models)
        self.export_action = QAction("&Export timeline…", self)
        self.export_action.triggered.connect(self.export)

    # -- menus ---------------------------------------------------------------------------

    def install(self, privacy_menu: QMenu, file_menu: QMenu, before: QAction) -> None:
        """Add the consent and transparency actions to the Privacy menu, and the export
        to the File menu (before ``before``, e.g. Quit)."""
        privacy_menu.addSeparator()
        for action in self.revoke_actions.values():
            privacy_menu.addAction(action)
        privacy_menu.addAction(self.revoke_all_action)
        privacy_menu.addSeparator()
        privacy_menu.addAction(self.stored_action)
        privacy_menu.addAction(self.models_action)
        privacy_menu.aboutToShow.connect(self.refresh_actions)
        file_menu.insertAction(before, self.export_action)
        file_menu.insertSeparator(before)
        self.refresh_actions()

    @Slot()
    def refresh_actions(self) -> None:
        """A revoke action is enabled while there is something to revoke."""
        for m, action in self.revoke_actions.items():
            action.setEnabled(self.gate.is_allowed(m))

    def close(self) -> None:
        """Stop listening (the window is closing)."""
        self._check_timer.stop()
        self._unsubscribe()

    # -- consent -------------------------------------------------------------------------

    def start_gate(self, modality: Modality, info: SourceInfo | None) -> bool:
        """Asked on the UI thread before ``modality`` starts: True when it may."""
        if info is None or not info.is_device:
            return True  # nothing to open yet (the controller says so), or a replayed file
        if modality not in self.store.text.granted_modalities:
            return True
        if self.gate.is_allowed(modality):
            return True
        answer = self.prompt(self.parent_widget, self.store.text, modality, info.title)
        if answer is not True and not isinstance(answer, bool) and answer > 0:
            self.gate.allow_for(modality, float(answer), via="window")  # audited
            self.refresh_actions()
            return True
        if answer is not True:
            return False  # the controller says the modality was not started
        try:
            self.store.grant(modality, via="window")
        except ConsentError as error:
            self.message.emit(str(error))
            return False
        self.refresh_actions()
        return True

    @Slot()
    def check_consent_file(self) -> None:
        """Pick up consent changed by another emoapp process (or a deleted file), and
        withdraw a modality whose consent for a time has run out (audited as expired
        by the gate)."""
        for modality in self.gate.expire_due():
            self._withdraw_now(modality)
            self.message.emit(
                f"{DEVICE_NAME.get(modality, modality.value)} consent expired: "
                f"{modality.value} stopped and what it gave is dropped from memory"
            )
            self.refresh_actions()
        self.store.records()

    def revoke(self, modality: Modality) -> None:
        """Privacy → Revoke camera / microphone: consent withdrawn, device closed now."""
        device = DEVICE_NAME[modality]
        try:
            saved = self.store.revoke(modality, via="window")
        except ConsentError as error:  # revoked for this process, but not saved
            self.message.emit(str(error))
            saved = True
        flag = self.gate.withdraw_for_run(modality, via="window")
        if not saved:
            self._withdraw(modality)  # a saved revocation was withdrawn by the listener
        if saved or flag:
            self.message.emit(
                f"{device} consent revoked: the {device} is closed and what it captured "
                "is dropped from memory"
            )
        else:
            self.message.emit(f"{device} consent was not granted: nothing to revoke")
        self.refresh_actions()

    def revoke_all_and_stop(self) -> None:
        """Privacy → Revoke all and stop: every consent withdrawn, every modality
        stopped, and the timeline kept in memory forgotten."""
        try:
            self.store.revoke_all(via="window")
        except ConsentError as error:
            self.message.emit(str(error))
        for m in self.gate.allowed_for_run:
            self.gate.withdraw_for_run(m, via="window")
        self.controller.stop_all()
        self.memory.clear()
        self.forgotten.emit()
        self.refresh_actions()
        self.message.emit(
            "All consent revoked and everything stopped; the timeline kept in memory is forgotten"
        )

    @Slot(object)
    def _apply_change(self, change: ConsentChange) -> None:
        if change.granted:
            self.refresh_actions()
            return
        self._withdraw(change.modality)
        self.refresh_actions()

    def _withdraw(self, modality: Modality) -> None:
        info = self.controller.source_info(modality)
        if info is not None and not info.is_device:
            return  # a replayed file: no device to close, no consent involved
        self._withdraw_now(modality)

    def _withdraw_now(self, modality: Modality) -> None:
        """The withdrawal path, on the UI thread: what the export memory holds from the
        capture is forgotten now, and the session withdraws it (stopped, in-flight work
        dropped at delivery, held data purged: :meth:`LiveSession.withdraw`)."""
        self.memory.forget_origin(modality, clock.now())
        self.controller.withdraw(modality)
        self.revoked.emit(modality)

    # -- the timeline in memory ----------------------------------------------------------

    @Slot(object)
    def _on_estimate(self, estimate: FusedEstimate) -> None:
        self.memory.add_estimate(estimate)

    @Slot(object)
    def _on_output(self, output: EncoderOutput) -> None:
        self.memory.add_output(output)

    @Slot(object)
    def _on_status(self, status: ModalityStatus) -> None:
        self.memory.note_status(status.modality, status.state, status.message)

    @Slot(object, object)
    def _on_source_changed(self, modality: Modality, info: SourceInfo | None) -> None:
        reference = "typed text" if modality is Modality.TEXT else media_reference(info)
        self.memory.set_media(modality, reference)

    # -- export --------------------------------------------------------------------------

    def export(self) -> ExportResult | None:
        """File → Export timeline…: ask, then write."""
        dialog = ExportDialog(
            len(self.memory), self.memory.span_s(), self.export_folder, self.parent_widget
        )
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            request = dialog.request()
        finally:
            dialog.deleteLater()
        return self.export_to(request)

    def export_to(self, request: ExportRequest) -> ExportResult | None:
        """Write the rows kept in memory as ``request`` says (scores only unless it
        asks for text or media references); audited."""
        rows = self.memory.rows(request.include_text, request.include_media)
        try:
            result = export_timeline(
                rows,
                request.path,
                include_text=request.include_text,
                include_media=request.include_media,
                fmt=request.format,
                audit=self.store.audit,
            )
        except ExportError as error:
            self.message.emit(str(error))
            return None
        self.export_folder = result.path.parent
        fields = ["scores"]
        fields += ["typed text"] if request.include_text else []
        fields += ["media references"] if request.include_media else []
        self.message.emit(
            f"exported {result.rows} row(s) to {result.path} ({', '.join(fields)})"
            + ("" if result.audited else f"; {self.store.audit.last_error}")
        )
        return result

    # -- transparency --------------------------------------------------------------------

    @Slot(object, object)
    def _on_model_installed(self, modality: Modality, info: EncoderInfo | None) -> None:
        if info is None:
            self.cards.pop(modality, None)
        else:
            self.cards[modality] = model_card(info)

    def stored_text(self) -> str:
        return stored_report(self.gate, self.settings_file, len(self.memory))

    def show_stored(self) -> None:
        """Privacy → What is stored…"""
        dialog = StoredDialog(self.stored_text(), self.parent_widget)
        dialog.exec()
        dialog.deleteLater()

    def show_models(self) -> None:
        """Privacy → About the models…"""
        dialog = ModelCardsDialog(self.cards.values(), self.parent_widget)
        dialog.exec()
        dialog.deleteLater()
