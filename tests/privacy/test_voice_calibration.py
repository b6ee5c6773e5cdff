"""The stored "calibrate to me" voice calibration: consent, showing, deleting, audit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emoapp.core.messages import Modality
from emoapp.encoders.adaptation import SpeakerStats
from emoapp.privacy.consent import ConsentStore
from emoapp.privacy.voice_calibration import (
    CalibrationError,
    delete_calibration,
    delete_on_revoke,
    describe_calibration,
    load_calibration,
    save_calibration,
)

MODEL = "embedded/voice-test"


@pytest.fixture
def store(tmp_path: Path) -> ConsentStore:
    return ConsentStore(tmp_path / "config")


def stats() -> SpeakerStats:
    return SpeakerStats.of(np.arange(12.0).reshape(4, 3), seconds_each=0.5)


def audit_events(store: ConsentStore) -> list[dict[str, str]]:
    lines = store.audit.path.read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "voice-calibration"]


def test_saved_only_with_microphone_consent(store, tmp_path):
    path = tmp_path / "cal.json"
    with pytest.raises(CalibrationError, match="consent"):
        save_calibration(stats(), MODEL, store, store.audit, path)
    assert not path.exists()
    store.grant(Modality.VOICE)
    save_calibration(stats(), MODEL, store, store.audit, path)
    shown = describe_calibration(path)
    assert shown is not None and shown["model_id"] == MODEL and shown["seconds"] == 2.0
    assert "no sound" in shown["holds"]
    back = load_calibration(MODEL, store, store.audit, path)
    assert back is not None and np.allclose(back.total, stats().total)
    assert [e["action"] for e in audit_events(store)] == ["saved"]
    assert "total" not in audit_events(store)[0]  # numbers never reach the audit log


def test_revoking_the_microphone_deletes_it(store, tmp_path):
    path = tmp_path / "cal.json"
    store.grant(Modality.VOICE)
    save_calibration(stats(), MODEL, store, store.audit, path)
    disconnect = delete_on_revoke(store, store.audit, path)
    store.revoke(Modality.VOICE)
    assert not path.exists()
    assert [e["action"] for e in audit_events(store)] == ["saved", "deleted"]
    assert audit_events(store)[1]["why"] == "microphone consent revoked"
    disconnect()


def test_without_consent_a_stored_calibration_is_not_used_and_is_removed(store, tmp_path):
    path = tmp_path / "cal.json"
    stats().save(path, MODEL)  # left over from an earlier grant
    assert load_calibration(MODEL, store, store.audit, path) is None
    assert not path.exists()


def test_delete_and_nothing_stored(store, tmp_path):
    path = tmp_path / "cal.json"
    assert describe_calibration(path) is None
    assert not delete_calibration(store.audit, path)
    store.grant(Modality.VOICE)
    save_calibration(stats(), MODEL, store, store.audit, path)
    assert delete_calibration(store.audit, path)
    assert load_calibration(MODEL, store, store.audit, path) is None


def test_the_command_line_shows_the_passage_and_deletes(tmp_path, monkeypatch, capsys):
    from emoapp.cli import main
    from emoapp.privacy.voice_calibration import CALIBRATION_PASSAGE, calibration_path

    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(tmp_path / "cfg"))
    assert main(["voice-calibration", "passage"]) == 0
    assert CALIBRATION_PASSAGE in capsys.readouterr().out
    assert main(["voice-calibration", "show"]) == 0
    assert "no voice calibration stored" in capsys.readouterr().out
    store = ConsentStore(tmp_path / "cfg")
    store.grant(Modality.VOICE)
    save_calibration(stats(), MODEL, store, store.audit)
    assert calibration_path() == tmp_path / "cfg" / "voice-calibration.json"
    assert main(["voice-calibration", "show"]) == 0
    assert MODEL in capsys.readouterr().out
    assert main(["voice-calibration", "delete"]) == 0
    assert "deleted" in capsys.readouterr().out
    assert not calibration_path().exists()
    assert main(["voice-calibration", "record"]) != 0  # needs --from FILE


RAVDESS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ravdess"
NEUTRAL = RAVDESS / "Actor_01" / "03-01-01-01-01-01-01.flac"


@pytest.mark.skipif(not NEUTRAL.is_file(), reason="../shared/data/ravdess is not here")
def test_calibrate_from_a_recording_with_the_shipped_model(store, tmp_path):
    from emoapp.privacy.voice_calibration import calibrate_from_file

    model = "embedded/voice-multicorpus"
    path = tmp_path / "cal.json"
    with pytest.raises(CalibrationError, match="consent"):
        calibrate_from_file(NEUTRAL, model, store, store.audit, path)
    store.grant(Modality.VOICE)
    with pytest.raises(CalibrationError, match="no such file"):
        calibrate_from_file(tmp_path / "nope.wav", model, store, store.audit, path)
    stats, written = calibrate_from_file(NEUTRAL, model, store, store.audit, path)
    assert written == path and stats.weight >= 1 and stats.extra["source_seconds"] > 2
    back = load_calibration(model, store, store.audit, path)
    assert back is not None and back.total_sq is not None
    assert np.allclose(back.total, stats.total)
