""" "Calibrate to me" in the real window: reachable from the Modalities menu only while
microphone consent is saved (a tooltip says why not); a stored calibration is handed to
the voice model at start and after it is made (from a recording, or recorded from the
microphone through the consent gate), shown in the voice panel with "Delete"; revoking
the microphone deletes the file and makes the model forget, even when the voice source
is a replayed file.

The voice model is the tiny one wrapped in :class:`AdaptiveFake`, which records what the
window hands it; consent lives in tmp_path."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emoapp.core.messages import Modality
from emoapp.encoders.adaptation import SpeakerStats
from emoapp.encoders.base import Encoder, EncoderInfo
from emoapp.privacy.consent import ConsentStore
from emoapp.privacy.voice_calibration import CALIBRATION_FILE, save_calibration
from emoapp.ui.voice_calibration import NEEDS_CONSENT
from tests.privacy.fakedevices import FakeDevices, install_fake_devices

VOICE = Modality.VOICE
WAIT_MS = 20_000
MODEL = "fake/voice-adaptive"


class AdaptiveFake:
    """The tiny voice encoder, posing as a voice model that adapts to speakers: it records
    the calibration it is given, resets, and the audio it computed a calibration of."""

    adaptive = True

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.modality = inner.modality
        self.calibration: SpeakerStats | None = None
        self.given: list[SpeakerStats | None] = []
        self.resets = 0
        self.calibrated_samples: list[int] = []
        self.lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return MODEL

    @property
    def baseline(self) -> bool:
        return self.inner.baseline

    def load(self) -> None:
        self.inner.load()

    def encode(self, items: Sequence[Any]) -> list:
        return self.inner.encode(items)

    def info(self) -> EncoderInfo:
        return self.inner.info()

    def set_calibration(self, stats: SpeakerStats | None) -> None:
        with self.lock:
            self.calibration = stats
            self.given.append(stats)

    def reset_adaptation(self, calibration: bool = True) -> None:
        with self.lock:
            self.resets += 1
            if calibration:
                self.calibration = None

    def calibration_stats(self, samples: np.ndarray) -> SpeakerStats:
        self.calibrated_samples.append(len(samples))
        if len(samples) == 0:
            from emoapp.encoders.adaptation import AdaptationError

            raise AdaptationError("no speech found in the calibration recording")
        frames = np.asarray(samples[: 16_000 * (len(samples) // 16_000)]).reshape(-1, 16_000)
        return SpeakerStats.of(np.stack([frames.mean(1), frames.std(1)], 1), seconds_each=1.0)


def stats(seconds: int = 12) -> SpeakerStats:
    return SpeakerStats.of(np.arange(seconds * 2.0).reshape(seconds, 2), seconds_each=1.0)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def devices(monkeypatch: pytest.MonkeyPatch) -> FakeDevices:
    return install_fake_devices(monkeypatch)


def open_with_fake(
    open_window, window_args, config: Path, wanted: set[Modality] | None = None, **args: Any
):
    """The window over the tiny models with the voice model wrapped; returns both."""
    fakes: list[AdaptiveFake] = []

    def hook(modality: Modality, encoder: Encoder) -> Encoder:
        if modality is VOICE:
            fakes.append(AdaptiveFake(encoder))
            return fakes[-1]  # type: ignore[return-value]
        return encoder

    window = open_window(
        window_args(**args),
        {VOICE} if wanted is None else wanted,
        encoder_hook=hook,
        consent_store=ConsentStore(config),
    )
    return window, fakes


def audit(config: Path) -> list[dict]:
    path = config / "audit.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == "voice-calibration"]


def test_the_menu_needs_microphone_consent_and_says_why(
    qtbot, window_args, open_window, config: Path
):
    window, _ = open_with_fake(open_window, window_args, config, camera=False)
    action = window.voice_calibration.action
    assert action in window.modality_menu.actions()
    assert not action.isEnabled()
    assert action.toolTip() == NEEDS_CONSENT
    window.privacy.store.grant(VOICE)
    qtbot.waitUntil(action.isEnabled, timeout=WAIT_MS)
    assert "adapts to your voice" in action.toolTip()
    window.privacy.revoke(VOICE)
    qtbot.waitUntil(lambda: not action.isEnabled(), timeout=WAIT_MS)


def test_a_stored_calibration_is_used_from_the_start_and_can_be_deleted(
    qtbot, window_args, open_window, config: Path
):
    store = ConsentStore(config)
    store.grant(VOICE)
    path = config / CALIBRATION_FILE
    save_calibration(stats(12), MODEL, store, store.audit, path)
    window, fakes = open_with_fake(open_window, window_args, config, camera=False)
    qtbot.waitUntil(lambda: bool(fakes) and fakes[-1].calibration is not None, timeout=WAIT_MS)
    assert np.allclose(fakes[-1].calibration.total, stats(12).total)
    panel = window.voice_panel
    qtbot.waitUntil(lambda: "Calibrated to you (12 s" in panel.calibration.text(), timeout=WAIT_MS)
    assert panel.calibration_delete.isVisibleTo(panel)

    panel.calibration_delete.click()
    assert not path.exists()
    qtbot.waitUntil(lambda: fakes[-1].calibration is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not panel.calibration_delete.isVisibleTo(panel), timeout=WAIT_MS)
    assert "as they talk" in panel.calibration.text()
    assert [e["action"] for e in audit(config)] == ["saved", "deleted"]


def test_without_consent_a_stored_calibration_is_not_used_and_is_deleted(
    qtbot, window_args, open_window, config: Path
):
    store = ConsentStore(config)
    store.grant(VOICE)
    path = config / CALIBRATION_FILE
    save_calibration(stats(), MODEL, store, store.audit, path)
    store.revoke(VOICE)  # by a program that does not delete it, while the window was closed
    assert path.exists()
    window, fakes = open_with_fake(open_window, window_args, config, camera=False)
    qtbot.waitUntil(lambda: window.voice_calibration.state is not None, timeout=WAIT_MS)
    assert window.voice_calibration.state.seconds is None
    assert fakes[-1].calibration is None and fakes[-1].given == [None]
    assert not window.voice_panel.calibration_delete.isVisibleTo(window.voice_panel)
    assert not path.exists()
    assert audit(config)[-1]["why"] == "microphone consent not granted"


def test_calibrating_from_a_recording_hands_it_to_the_voice_model(
    qtbot, window_args, open_window, config: Path, samples: Path
):
    ConsentStore(config).grant(VOICE)
    window, fakes = open_with_fake(open_window, window_args, config, camera=False)
    qtbot.waitUntil(lambda: window.voice_calibration.state is not None, timeout=WAIT_MS)
    window.voice_calibration.action.trigger()
    dialog = window.voice_calibration.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.status.text() == "Nothing stored."
    # The voice source is a replayed file: recording from it is off, and says why.
    assert not dialog.record_button.isEnabled()
    assert "replayed file" in dialog.record_button.toolTip()

    assert dialog.store_from(samples / "speech.wav")  # off the UI thread
    qtbot.waitUntil(lambda: not dialog.busy, timeout=WAIT_MS)
    assert dialog.status.text().startswith("Stored"), dialog.status.text()
    assert (config / CALIBRATION_FILE).exists()
    qtbot.waitUntil(lambda: fakes[-1].calibration is not None, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: window.voice_panel.calibration.text().startswith("Calibrated to you"),
        timeout=WAIT_MS,
    )
    # A file with no sound is refused with the reason; the stored one stays.
    (config.parent / "empty.wav").write_bytes(b"")
    dialog.store_from(config.parent / "empty.wav")
    qtbot.waitUntil(lambda: not dialog.busy, timeout=WAIT_MS)
    assert dialog.status.text().startswith("Not stored:")
    assert (config / CALIBRATION_FILE).exists()


def test_revoking_the_microphone_deletes_it_and_the_model_forgets(
    qtbot, window_args, open_window, config: Path
):
    store = ConsentStore(config)
    store.grant(VOICE)
    path = config / CALIBRATION_FILE
    save_calibration(stats(), MODEL, store, store.audit, path)
    # The voice source replays a file, so the withdrawal does not stop it; the
    # calibration is the person's, and goes all the same.
    window, fakes = open_with_fake(open_window, window_args, config, camera=False)
    qtbot.waitUntil(lambda: bool(fakes) and fakes[-1].calibration is not None, timeout=WAIT_MS)
    window.privacy.revoke(VOICE)
    assert not path.exists()
    qtbot.waitUntil(lambda: fakes[-1].calibration is None, timeout=WAIT_MS)
    assert fakes[-1].resets >= 1
    qtbot.waitUntil(
        lambda: not window.voice_panel.calibration_delete.isVisibleTo(window.voice_panel),
        timeout=WAIT_MS,
    )
    assert audit(config)[-1]["why"] == "microphone consent revoked"


def test_recording_from_the_microphone_goes_through_the_consent_gate(
    qtbot, window_args, open_window, config: Path, devices: FakeDevices
):
    ConsentStore(config).grant(VOICE)
    # The voice modality stays off: the microphone opens only for the calibration.
    window, fakes = open_with_fake(open_window, window_args, config, set(), camera=False, mic=False)
    qtbot.waitUntil(lambda: window.voice_calibration.state is not None, timeout=WAIT_MS)
    window.voice_calibration.record_seconds = 1.0
    dialog = window.voice_calibration.open_dialog()
    assert dialog.record_button.isEnabled()
    assert devices.microphone.log.opened == []
    dialog.record_button.click()
    assert dialog.busy
    qtbot.waitUntil(lambda: not dialog.busy, timeout=WAIT_MS)
    assert dialog.status.text().startswith("Stored"), dialog.status.text()
    assert len(devices.microphone.log.opened) == 1  # the (fake) microphone, once
    assert fakes[-1].calibrated_samples == [16_000]  # 1 s at 16 kHz, in memory only
    qtbot.waitUntil(lambda: fakes[-1].calibration is not None, timeout=WAIT_MS)
    assert devices.microphone.log.open_now == 0  # closed again
