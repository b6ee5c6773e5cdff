"""The consent gate: no device source opens without consent; replayed files need none;
--allow-camera / --allow-mic count for one run only, audited, never saved."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from emoapp.capture.base import Source
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.privacy.consent import (
    ConsentGate,
    ConsentRequiredError,
    ConsentStore,
    add_consent_options,
    consent_from_args,
    load_consent_text,
)


class FakeDeviceSource:
    """Counts opens; a real device unless told otherwise (follows the Source protocol)."""

    def __init__(self, modality: Modality, is_device: bool = True) -> None:
        self.modality = modality
        self.is_device = is_device
        self.name = f"fake {modality.value}"
        self.opened = 0

    def open(self) -> None:
        self.opened += 1

    def start(self, callback, on_error=None, on_end=None) -> None:  # pragma: no cover
        raise AssertionError("not started in these tests")

    def close(self) -> None:  # pragma: no cover
        pass


@pytest.fixture
def store(tmp_path: Path) -> ConsentStore:
    return ConsentStore(tmp_path / "config")


def test_the_fake_follows_the_source_protocol():
    assert isinstance(FakeDeviceSource(Modality.FACE), Source)


def test_no_device_opens_without_a_grant(store: ConsentStore):
    gate = ConsentGate(store)
    camera = FakeDeviceSource(Modality.FACE)
    mic = FakeDeviceSource(Modality.VOICE)
    with pytest.raises(ConsentRequiredError) as caught:
        gate.open(camera)
    assert str(caught.value) == (
        "camera not opened: no consent given; grant it in the window or pass --allow-camera"
    )
    assert isinstance(caught.value, EmoappError) and caught.value.modality is Modality.FACE
    with pytest.raises(ConsentRequiredError, match=r"^microphone not opened: .*--allow-mic$"):
        gate.open(mic)
    assert camera.opened == 0 and mic.opened == 0

    store.grant(Modality.FACE)
    gate.open(camera)
    assert camera.opened == 1
    with pytest.raises(ConsentRequiredError):
        gate.require(Modality.VOICE, mic)


def test_after_revocation_the_device_does_not_reopen(store: ConsentStore):
    gate = ConsentGate(store)
    camera = FakeDeviceSource(Modality.FACE)
    store.grant(Modality.FACE)
    gate.open(camera)
    store.revoke(Modality.FACE)
    with pytest.raises(ConsentRequiredError, match="camera not opened: consent was revoked"):
        gate.open(camera)  # e.g. the runtime retrying a device
    assert camera.opened == 1


def test_a_new_consent_version_keeps_the_device_shut(tmp_path: Path):
    import shutil

    from emoapp.privacy.consent import consent_folder

    folder = tmp_path / "texts"
    shutil.copytree(consent_folder(), folder)
    text = (folder / "consent-v1.toml").read_text().replace('version = "1"', 'version = "2"', 1)
    (folder / "consent-v2.toml").write_text(text)
    ConsentStore(tmp_path / "config", text=load_consent_text("1", folder=folder)).grant("mic")
    store = ConsentStore(tmp_path / "config", text=load_consent_text(folder=folder))
    with pytest.raises(
        ConsentRequiredError, match=r"the consent text changed \(now version \d+\); grant it again"
    ):
        ConsentGate(store).require(Modality.VOICE, FakeDeviceSource(Modality.VOICE))


def test_replayed_files_need_no_consent(store: ConsentStore, samples: Path):
    from emoapp.capture.replay import AudioReplaySource, VideoReplaySource

    gate = ConsentGate(store)
    for source in (
        VideoReplaySource(samples / "face_only.mp4"),
        AudioReplaySource(samples / "speech.wav"),
    ):
        assert source.is_device is False
        gate.require(source.modality, source)  # no error
    fake = FakeDeviceSource(Modality.FACE, is_device=False)
    gate.open(fake)
    assert fake.opened == 1
    assert store.audit.entries() == []


def test_the_real_device_sources_are_gated(store: ConsentStore):
    from emoapp.capture.camera import CameraSource
    from emoapp.capture.microphone import MicrophoneSource

    gate = ConsentGate(store)
    with pytest.raises(ConsentRequiredError, match="camera not opened"):
        gate.open(CameraSource(0))
    with pytest.raises(ConsentRequiredError, match="microphone not opened"):
        gate.open(MicrophoneSource())


def test_a_source_that_does_not_say_counts_as_a_device(store: ConsentStore):
    class Unknown:
        modality = Modality.FACE

        def open(self) -> None:  # pragma: no cover - must not be reached
            raise AssertionError("opened without consent")

    with pytest.raises(ConsentRequiredError):
        ConsentGate(store).open(Unknown())


def test_typed_text_passes_the_gate(store: ConsentStore):
    ConsentGate(store).require(Modality.TEXT, FakeDeviceSource(Modality.TEXT))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="emoapp live")
    add_consent_options(parser)
    return parser.parse_args(argv)


def test_allow_flags_count_for_one_run_only_and_are_audited(store: ConsentStore, tmp_path):
    gate = consent_from_args(parse(["--allow-camera"]), store)
    camera = FakeDeviceSource(Modality.FACE)
    gate.open(camera)
    gate.open(camera)  # a retry after a failure: the same consent, audited once
    assert camera.opened == 2
    with pytest.raises(ConsentRequiredError, match="--allow-mic"):
        gate.open(FakeDeviceSource(Modality.VOICE))

    entries = store.audit.entries()
    assert [(e.event, e.details) for e in entries] == [
        (
            "consent-for-run",
            {"modality": "face", "version": store.text.version, "via": "--allow-camera"},
        )
    ]
    # Not saved: the next run (a new store and gate without the flag) is refused.
    assert not store.path.exists()
    later = consent_from_args(parse([]), ConsentStore(tmp_path / "config"))
    with pytest.raises(ConsentRequiredError):
        later.open(FakeDeviceSource(Modality.FACE))


def test_a_flag_for_a_replayed_file_records_nothing(store: ConsentStore):
    gate = consent_from_args(parse(["--allow-camera", "--allow-mic"]), store)
    assert gate.allowed_for_run == {Modality.FACE, Modality.VOICE}
    gate.open(FakeDeviceSource(Modality.FACE, is_device=False))
    assert store.audit.entries() == []
    assert gate.is_allowed("camera") and gate.is_allowed("mic")


def test_consent_options_show_in_help():
    parser = argparse.ArgumentParser(prog="emoapp live")
    add_consent_options(parser)
    text = parser.format_help()
    assert "--allow-camera" in text and "--allow-mic" in text and "this run only" in text
    assert parse([]).allow_camera is False and parse([]).allow_mic is False


def test_consent_from_args_uses_the_config_dir_by_default(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(tmp_path / "cfg"))
    gate = consent_from_args(parse(["--allow-mic"]))
    gate.open(FakeDeviceSource(Modality.VOICE))
    line = json.loads((tmp_path / "cfg" / "audit.jsonl").read_text())
    assert line["event"] == "consent-for-run" and line["modality"] == "voice"
    assert not (tmp_path / "cfg" / "consent.json").exists()


def test_a_flag_can_be_withdrawn_for_the_rest_of_the_run(store: ConsentStore):
    gate = consent_from_args(parse(["--allow-camera"]), store)
    assert gate.refusal(Modality.FACE) is None  # may open (and the flag's use is recorded)
    assert gate.withdraw_for_run(Modality.FACE) is True
    assert gate.withdraw_for_run(Modality.FACE) is False  # nothing left to withdraw
    assert gate.refusal(Modality.FACE) == (
        "camera not opened: no consent given; grant it in the window or pass --allow-camera"
    )
    with pytest.raises(ConsentRequiredError):
        gate.open(FakeDeviceSource(Modality.FACE))
    assert [(e.event, e.details["via"]) for e in store.audit.entries()] == [
        ("consent-for-run", "--allow-camera"),
        ("consent-revoked", "window"),
    ]
    assert not store.path.exists()
