"""The window's privacy layer, on the real window: no camera opens before the person
allows it in the consent dialog; a revocation closes the device, empties its buffers,
takes it out of fusion and puts the indicator out at once; "Revoke all and stop"
forgets the timeline kept in memory; an export holds scores only unless the person ticks
more; "What is stored" and "About the models" say what they must.

The camera is the real CameraSource over a recording camera (tests/privacy/fakedevices.py)
that shows a face; consent lives in tmp_path (EMOAPP_CONFIG_DIR and a ConsentStore there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from emoapp.core import clock
from emoapp.core.messages import Modality
from emoapp.privacy.consent import ConsentStore, load_consent_text
from emoapp.ui.consent_dialog import ConsentDialog, ask_consent
from emoapp.ui.export_dialog import ExportDialog
from emoapp.ui.privacy_views import ModelCardsDialog, StoredDialog
from emoapp.ui.style import CAVEAT
from tests.privacy.fakedevices import FakeDevices, first_frame, install_fake_devices

from .conftest import close_window

FACE, VOICE, TEXT = Modality.FACE, Modality.VOICE, Modality.TEXT
WAIT_MS = 20_000
SECRET = "my secret words about the concert"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def devices(monkeypatch: pytest.MonkeyPatch, samples: Path) -> FakeDevices:
    return install_fake_devices(monkeypatch, first_frame(samples / "face_only.mp4"))


class Prompt:
    """Stands in for the consent dialog: records each question, answers ``answer``."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[tuple[Modality, str]] = []

    def __call__(self, parent, text, modality: Modality, source_title: str) -> bool:
        self.asked.append((modality, source_title))
        return self.answer


@pytest.fixture
def privacy_window(qtbot, config: Path):
    """Open the real window with consent kept in ``config`` and ``prompt`` answering."""
    from emoapp.ui.app import build_window

    opened = []

    def make(args, prompt: Prompt, wanted: set[Modality] | None = None):
        built = build_window(args, consent_store=ConsentStore(config))
        window = built.window
        window.privacy.prompt = prompt
        window.privacy.export_folder = config.parent
        window.resize(1200, 800)
        window.show()
        window.start(built.wanted if wanted is None else wanted)
        opened.append(window)
        return window

    yield make
    for window in opened:
        close_window(qtbot, window)


def contributes(window, modality: Modality) -> bool:
    estimate = window.fused_panel.estimate()
    return estimate is not None and modality in estimate.contributions


def audit(config: Path) -> list[dict]:
    path = config / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def answer_dialog(qtbot, kind: type, act: Callable[[object], None]) -> list[object]:
    """When a dialog of ``kind`` shows (modal, from an action), run ``act`` on it."""
    seen: list[object] = []

    def poll() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, kind) and widget.isVisible() and widget not in seen:
                seen.append(widget)
                act(widget)
                return
        QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)
    return seen


# --- consent before capture ---------------------------------------------------------------


def test_no_camera_opens_until_the_person_allows_it(
    qtbot, window_args, privacy_window, devices: FakeDevices, config: Path
):
    prompt = Prompt(answer=False)
    window = privacy_window(window_args("--camera", "0", camera=False), prompt)
    assert prompt.asked == [(FACE, "camera 0")]
    assert FACE not in window.controller.wanted()
    qtbot.waitUntil(lambda: contributes(window, VOICE), timeout=WAIT_MS)  # the rest runs
    assert devices.camera.log.opened == []
    assert not window.capture_indicators.indicator(FACE).active
    assert "face was not started: not allowed" in window.message_label.text()
    assert not (config / "consent.json").exists()
    problems: list[str] = []
    window.controller.problem.connect(problems.append)
    with qtbot.waitSignal(window.controller.devices_listed, timeout=WAIT_MS):
        window.controls.refresh_devices.emit()  # finding cameras would open each one
    assert any(p.startswith("cameras not listed: finding them opens each one") for p in problems)
    assert devices.camera.log.opened == []

    prompt.answer = True
    qtbot.mouseClick(window.controls.toggles[FACE], Qt.MouseButton.LeftButton)
    assert prompt.asked[-1] == (FACE, "camera 0")
    qtbot.waitUntil(lambda: window.capture_indicators.indicator(FACE).capturing, timeout=WAIT_MS)
    assert devices.camera.log.opened == [0]
    assert "capturing (camera 0)" in window.capture_indicators.indicator(FACE).text.text()
    qtbot.waitUntil(lambda: contributes(window, FACE), timeout=WAIT_MS)
    saved = json.loads((config / "consent.json").read_text())["modalities"]
    current = load_consent_text().version  # the grant is for the current text
    assert saved["face"]["granted"] is True and saved["face"]["version"] == current
    assert [(e["event"], e["modality"], e["via"]) for e in audit(config)] == [
        ("consent-granted", "face", "window")
    ]


def test_the_consent_dialog_shows_the_versioned_text(qtbot):
    from emoapp.privacy.consent import load_consent_text

    text = load_consent_text()
    shown: list[str] = []

    def allow(dialog: ConsentDialog) -> None:
        shown.append(dialog.text())
        qtbot.mouseClick(dialog.allow_button, Qt.MouseButton.LeftButton)

    answer_dialog(qtbot, ConsentDialog, allow)
    assert ask_consent(None, text, VOICE, "default microphone") is True
    section = text.sections[VOICE]
    for part in (section.captures, section.processing, section.kept, section.revoke, text.local):
        assert part in shown[0]
    assert "default microphone" in shown[0] and f"version {text.version}" in shown[0]

    answer_dialog(qtbot, ConsentDialog, lambda dialog: dialog.reject())  # closed: "Not now"
    assert ask_consent(None, text, FACE, "camera 0") is False


# --- revocation ---------------------------------------------------------------------------


def test_revoking_the_camera_closes_it_and_empties_its_buffers(
    qtbot, window_args, privacy_window, devices: FakeDevices, config: Path
):
    ConsentStore(config).grant(FACE)
    prompt = Prompt(answer=False)
    window = privacy_window(window_args("--camera", "0", camera=False), prompt)
    qtbot.waitUntil(lambda: contributes(window, FACE), timeout=WAIT_MS)
    assert prompt.asked == []  # granted earlier: no question
    session = window.controller.session
    assert window.capture_indicators.indicator(FACE).capturing

    window.privacy_menu.aboutToShow.emit()
    action = window.privacy.revoke_actions[FACE]
    assert action.isEnabled()
    revoked_at = clock.now()
    action.trigger()
    qtbot.waitUntil(lambda: devices.camera.log.open_now == 0, timeout=5000)
    closed_in = devices.camera.log.closed_at[0] - revoked_at
    print(f"revoke → camera closed in {closed_in * 1000:.0f} ms")
    assert session.buffered()[FACE] == 0
    assert session.status()[FACE].state == "stopped"
    qtbot.waitUntil(lambda: not window.capture_indicators.indicator(FACE).active, timeout=5000)
    qtbot.waitUntil(lambda: window.fused_panel.contribution_of(FACE) is None, timeout=5000)
    qtbot.waitUntil(lambda: contributes(window, VOICE), timeout=WAIT_MS)
    assert not contributes(window, FACE)
    assert "camera consent revoked" in window.message_label.text()
    assert not window.privacy.revoke_actions[FACE].isEnabled()

    # Pause and resume (Space) does not bring a revoked camera back; asking again does.
    window.controller.toggle_pause()
    window.controller.toggle_pause()
    assert FACE not in window.controller.wanted() and VOICE in window.controller.wanted()
    assert devices.camera.log.opened == [0]
    assert [(e["event"], e["modality"]) for e in audit(config)] == [
        ("consent-granted", "face"),
        ("consent-revoked", "face"),
    ]


def test_a_revocation_made_elsewhere_closes_the_camera(
    qtbot, window_args, privacy_window, devices: FakeDevices, config: Path
):
    """Another emoapp (or a person deleting consent.json) revokes: the window notices
    within its next check of the file (four times a second) and closes the camera."""
    ConsentStore(config).grant(FACE)
    window = privacy_window(window_args("--camera", "0", camera=False), Prompt(answer=False))
    qtbot.waitUntil(lambda: window.capture_indicators.indicator(FACE).capturing, timeout=WAIT_MS)
    revoked_at = clock.now()
    (config / "consent.json").unlink()
    qtbot.waitUntil(lambda: devices.camera.log.open_now == 0, timeout=5000)
    print(f"consent file deleted → camera closed in {(clock.now() - revoked_at) * 1000:.0f} ms")
    qtbot.waitUntil(lambda: not window.capture_indicators.indicator(FACE).active, timeout=5000)
    assert FACE not in window.controller.wanted()
    assert window.controller.session.buffered()[FACE] == 0


def test_revoke_all_and_stop_forgets_the_timeline_in_memory(
    qtbot, window_args, privacy_window, config: Path
):
    window = privacy_window(window_args("--allow-mic"), Prompt(answer=True))
    qtbot.waitUntil(lambda: len(window.privacy.memory) > 3, timeout=WAIT_MS)
    window.privacy.revoke_all_action.trigger()
    assert window.controller.wanted() == set() and not window.controller.paused
    assert len(window.privacy.memory) == 0
    for m in Modality:
        qtbot.waitUntil(
            lambda m=m: window.status_panel.state_of(m) in ("stopped", "off"), timeout=WAIT_MS
        )
    qtbot.wait(300)
    # What came since holds no score: the session abstains, with nothing left to fuse.
    later = window.privacy.memory.rows()
    assert all(row["fused"] is None for row in later[1:])
    assert all(not any(row["modalities"].values()) for row in later[1:])
    assert "All consent revoked and everything stopped" in window.message_label.text()
    # The microphone flag of this run is withdrawn too, and that is audited.
    assert not window.privacy.gate.is_allowed(VOICE)
    assert [(e["event"], e["modality"]) for e in audit(config)] == [("consent-revoked", "voice")]


# --- export -------------------------------------------------------------------------------


def export_via_dialog(qtbot, window, path: Path, fmt: str, text: bool, media: bool) -> dict:
    """File → Export timeline…, filled in as a person would."""
    seen: dict = {}

    def fill(dialog: ExportDialog) -> None:
        seen["defaults"] = (dialog.text_box.isChecked(), dialog.media_box.isChecked())
        dialog.format_box.setCurrentIndex(dialog.format_box.findData(fmt))
        dialog.path_edit.setText(str(path))
        dialog.text_box.setChecked(text)
        dialog.media_box.setChecked(media)
        dialog.accept()

    answer_dialog(qtbot, ExportDialog, fill)
    window.privacy.export_action.trigger()
    return seen


def test_an_export_holds_scores_only_unless_asked(
    qtbot, window_args, privacy_window, config: Path, samples: Path
):
    window = privacy_window(window_args(), Prompt(answer=False))
    qtbot.waitUntil(
        lambda: contributes(window, FACE) and contributes(window, VOICE), timeout=WAIT_MS
    )
    window.text_panel.entry.setText(SECRET)
    qtbot.mouseClick(window.text_panel.submit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: any(r["modalities"]["text"] for r in window.privacy.memory.rows()), timeout=WAIT_MS
    )

    plain = config.parent / "scores.jsonl"
    seen = export_via_dialog(qtbot, window, plain, "jsonl", text=False, media=False)
    assert seen["defaults"] == (False, False)  # nothing extra unless ticked
    content = plain.read_text()
    rows = [json.loads(line) for line in content.splitlines()]
    assert rows and any(row["fused"] for row in rows)
    assert any(row["modalities"]["text"] for row in rows)  # the text's scores are there...
    assert SECRET not in content and "concert" not in content  # ...its words are not
    assert "face_speech.mp4" not in content and "speech.wav" not in content
    assert f"exported {len(rows)} row(s) to {plain} (scores)" in window.message_label.text()

    full = config.parent / "everything.csv"
    export_via_dialog(qtbot, window, full, "csv", text=True, media=True)
    content = full.read_text()
    assert content.startswith("t,fused_label") and content.splitlines()[0].endswith(",text,media")
    assert SECRET in content
    assert str(samples / "face_speech.mp4") in content and str(samples / "speech.wav") in content

    exports = [e for e in audit(config) if e["event"] == "export"]
    assert [(e["path"], e["text"], e["media"]) for e in exports] == [
        (str(plain), False, False),
        (str(full), True, True),
    ]
    assert SECRET not in (config / "audit.jsonl").read_text()


# --- transparency -------------------------------------------------------------------------


def test_what_is_stored_and_about_the_models(
    qtbot, window_args, privacy_window, config: Path, tiny_models: dict[str, Path], tmp_path
):
    ConsentStore(config).grant(VOICE)
    window = privacy_window(window_args(), Prompt(answer=False))
    qtbot.waitUntil(lambda: len(window.privacy.cards) == 3, timeout=WAIT_MS)
    texts: dict[str, str] = {}

    def read(key: str) -> Callable[[object], None]:
        def act(dialog) -> None:
            texts[key] = dialog.text()
            dialog.accept()

        return act

    answer_dialog(qtbot, StoredDialog, read("stored"))
    window.privacy.stored_action.trigger()
    stored = texts["stored"]
    assert str(config / "consent.json") in stored and str(config / "audit.jsonl") in stored
    assert str(tmp_path / "settings.ini") in stored  # this window's real settings file
    assert "microphone: granted" in stored and "camera: not granted" in stored
    version = load_consent_text().version
    assert f"voice consent granted (text version {version}, via window)" in stored  # audit log
    assert "timeline row(s) of scores" in stored

    answer_dialog(qtbot, ModelCardsDialog, read("models"))
    window.privacy.models_action.trigger()
    models = texts["models"]
    assert CAVEAT.rstrip(".") in models
    for m in Modality:
        assert str(tiny_models[m.value]) in models
    assert "not in emoapp's curated registry" in models  # tiny models are not curated
    mapping = window.privacy.cards[TEXT].label_mapping
    raw, target = mapping[0]
    assert mapping and f"{raw} → {target}" in models
