"""The one list of places emoapp may write."""

from __future__ import annotations

from pathlib import Path

from emoapp.privacy import paths
from emoapp.privacy.paths import (
    audit_path,
    config_dir,
    consent_path,
    format_stored_locations,
    is_allowed_write,
    stored_locations,
)


def test_config_dir_precedence(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("EMOAPP_CONFIG_DIR", raising=False)
    assert config_dir() == tmp_path / "home" / ".config" / "emoapp"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "emoapp"
    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(tmp_path / "mine"))
    assert config_dir() == tmp_path / "mine"
    assert consent_path() == tmp_path / "mine" / "consent.json"
    assert audit_path() == tmp_path / "mine" / "audit.jsonl"
    assert not (tmp_path / "mine").exists()  # naming a place creates nothing
    assert paths.ensure_config_dir().is_dir()
    assert (tmp_path / "mine").stat().st_mode & 0o777 == 0o700


def test_stored_locations_name_every_place(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EMOAPP_CONFIG_DIR", raising=False)
    monkeypatch.setenv("EMOAPP_MODELS_DIR", str(tmp_path / "models"))
    places = {p.name: p for p in stored_locations()}
    monkeypatch.setenv("EMOAPP_PRECISION_FILE", str(tmp_path / "precision.json"))
    places = {p.name: p for p in stored_locations()}
    assert set(places) == {
        "consent",
        "audit log",
        "window settings",
        "models",
        "precision measurements",
        "voice calibration",
        "exports",
        "terminal timelines",
    }
    assert (
        places["voice calibration"].path == tmp_path / "xdg" / "emoapp" / "voice-calibration.json"
    )
    assert "consent" in places["voice calibration"].written_when
    assert places["precision measurements"].path == tmp_path / "precision.json"
    assert "emoapp bench" in places["precision measurements"].written_when
    assert places["consent"].path == tmp_path / "xdg" / "emoapp" / "consent.json"
    assert places["audit log"].path == tmp_path / "xdg" / "emoapp" / "audit.jsonl"
    assert places["window settings"].path == tmp_path / "xdg" / "emoapp" / "emoapp.conf"
    assert "Qt decides" in places["window settings"].holds
    assert places["models"].path == tmp_path / "models"
    assert "models pull" in places["models"].written_when
    assert places["exports"].path is None
    # Only an explicit export can hold content.
    assert [p.name for p in places.values() if p.content] == ["exports"]
    given = {p.name: p for p in stored_locations(qsettings_file="/x/emoapp.ini")}
    assert given["window settings"].path == Path("/x/emoapp.ini")
    text = format_stored_locations()
    assert str(tmp_path / "xdg" / "emoapp" / "consent.json") in text
    assert "the path you choose" in text


def test_is_allowed_write(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(tmp_path / "cfg"))
    out = tmp_path / "run.csv"
    assert is_allowed_write(tmp_path / "cfg" / "consent.json")
    assert is_allowed_write(tmp_path / "cfg" / ".audit.jsonl.abc123.tmp")
    assert is_allowed_write(out, [out])
    assert is_allowed_write(tmp_path / ".run.csv.x.tmp", [out])
    assert not is_allowed_write(out)
    assert not is_allowed_write(tmp_path / "cfg" / "frames.npy")
    assert not is_allowed_write(tmp_path / "cfg" / ".frames.npy.tmp")
