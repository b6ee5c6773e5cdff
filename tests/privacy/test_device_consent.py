"""Consent by construction: every path that can open a camera or microphone refuses
without a grant for that modality and opens with one, whoever the caller.

The paths: ``CameraSource.open``, ``MicrophoneSource.open``, ``list_cameras`` (probing),
``emoapp live`` (and its ``--list-devices``), the live session (which now simply calls
``source.open()``: there is no ungated way round), and the window's session controller.
Each runs over the recording camera and microphone of tests/privacy/fakedevices.py, so
"refused" means the device layer below the real sources was never touched."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emoapp.capture.camera import CameraSource, list_cameras
from emoapp.capture.microphone import MicrophoneSource
from emoapp.cli import main
from emoapp.core.errors import ConsentRequiredError
from emoapp.core.messages import Modality
from emoapp.privacy.consent import ConsentGate, ConsentStore

from .fakedevices import FakeDevices, install_fake_devices

FACE, VOICE = Modality.FACE, Modality.VOICE
NO_CONSENT = "not opened: no consent given"


@pytest.fixture
def devices(monkeypatch: pytest.MonkeyPatch) -> FakeDevices:
    return install_fake_devices(monkeypatch)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConsentStore:
    folder = tmp_path / "config"
    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(folder))
    return ConsentStore(folder)


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {condition}")


# --- the sources themselves ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("modality", "make", "log_of"),
    [
        (FACE, lambda consent: CameraSource(0, consent=consent), lambda d: d.camera.log),
        (
            VOICE,
            lambda consent: MicrophoneSource(None, consent=consent),
            lambda d: d.microphone.log,
        ),
    ],
    ids=["camera", "microphone"],
)
def test_a_device_source_opens_only_with_a_grant_for_its_modality(
    devices: FakeDevices, store: ConsentStore, modality: Modality, make, log_of
) -> None:
    log = log_of(devices)
    device = "camera" if modality is FACE else "microphone"
    other = VOICE if modality is FACE else FACE

    # No consent check at all: a caller that forgets the gate gets no device.
    with pytest.raises(ConsentRequiredError, match=f"^{device} {NO_CONSENT}") as caught:
        make(None).open()
    assert caught.value.modality is modality
    # A gate, but no grant; a grant for the other modality does not count.
    gate = ConsentGate(store)
    store.grant(other)
    with pytest.raises(ConsentRequiredError, match=f"^{device} {NO_CONSENT}"):
        make(gate).open()
    assert log.opened == []

    # Granted: it opens, through the very same call.
    store.grant(modality)
    source = make(gate)
    source.open()
    source.close()
    assert len(log.opened) == 1 and log.open_now == 0

    # Revoked: the next open (a retry, a restart) is refused again.
    store.revoke(modality)
    with pytest.raises(ConsentRequiredError, match=f"^{device} not opened: consent was revoked"):
        source.open()
    assert len(log.opened) == 1

    # A flag for this run (--allow-camera / --allow-mic) is a grant too.
    flagged = make(ConsentGate(store, [modality]))
    flagged.open()
    flagged.close()
    assert len(log.opened) == 2


def test_gate_open_hands_its_grant_to_a_source_built_without_one(
    devices: FakeDevices, store: ConsentStore
) -> None:
    source = CameraSource(0)
    with pytest.raises(ConsentRequiredError):
        ConsentGate(store).open(source)
    assert devices.camera.log.opened == []
    store.grant(FACE)
    ConsentGate(store).open(source)
    source.close()
    assert devices.camera.log.opened == [0]


def test_probing_cameras_needs_camera_consent(devices: FakeDevices, store: ConsentStore) -> None:
    with pytest.raises(ConsentRequiredError, match=f"^camera {NO_CONSENT}"):
        list_cameras(consent=None)
    store.grant(VOICE)  # a microphone grant does not let cameras be probed
    with pytest.raises(ConsentRequiredError):
        list_cameras(consent=ConsentGate(store))
    assert devices.camera.log.opened == []

    store.grant(FACE)
    found = list_cameras(consent=ConsentGate(store), max_index=3)
    assert [c.index for c in found] == [0, 1, 2]
    assert devices.camera.log.opened == [0, 1, 2] and devices.camera.log.open_now == 0


# --- emoapp live -----------------------------------------------------------------------------


def test_live_cli_opens_devices_only_with_consent(
    devices: FakeDevices, store: ConsentStore, capsys
) -> None:
    run = ["live", "--no-gui", "--camera", "0", "--mic", "default", "--profile", "baseline"]
    assert main(run) == 2
    assert "camera not opened" in capsys.readouterr().err
    assert main(["live", "--list-devices"]) == 0
    assert "(not listed: finding cameras opens each one briefly; camera not opened" in (
        capsys.readouterr().out
    )
    assert devices.camera.log.opened == [] and devices.microphone.log.opened == []

    code = main([*run, "--allow-camera", "--allow-mic", "--duration", "0.5", "--status-every", "0"])
    assert code == 0, capsys.readouterr().err
    assert devices.camera.log.opened == [0] and devices.microphone.log.opened == [None]
    assert devices.camera.log.open_now == 0 and devices.microphone.log.open_now == 0


# --- the live session ------------------------------------------------------------------------


class StillFace:
    """A face encoder that sees nothing in particular (the session needs one)."""

    modality = FACE
    model_id = "test/still-face"
    baseline = False
    device = "cpu"

    def load(self) -> None:
        pass

    def encode(self, items: Any) -> list[Any]:
        from emoapp.core.messages import NoPrediction

        return [NoPrediction(FACE, item.t, "no face", self.model_id) for item in items]

    def info(self) -> Any:
        from emoapp.encoders.base import EncoderInfo

        return EncoderInfo(FACE, self.model_id, "cpu", "float32", False)


def test_the_session_has_no_ungated_way_to_open_a_device(
    devices: FakeDevices, store: ConsentStore
) -> None:
    import inspect

    from emoapp.live.session import LiveSession

    assert "open_source" not in inspect.signature(LiveSession).parameters

    ungated = LiveSession(
        {FACE: CameraSource(0)}, {FACE: StillFace()}, retry_initial_s=0.05, retry_max_s=0.1
    )
    ungated.start()
    try:
        wait_for(lambda: ungated.status()[FACE].state == "failed")
        time.sleep(0.3)  # several retries, each refused by the camera itself
        assert ungated.status()[FACE].message.startswith(f"camera {NO_CONSENT}")
        assert devices.camera.log.opened == []
    finally:
        ungated.stop(timeout=3.0)

    store.grant(FACE)
    gated = LiveSession(
        {FACE: CameraSource(0, consent=ConsentGate(store))},
        {FACE: StillFace()},
        retry_initial_s=0.05,
        retry_max_s=0.1,
    )
    gated.start()
    try:
        wait_for(lambda: gated.status()[FACE].source_open)
        assert devices.camera.log.opened == [0]
        store.revoke(FACE)
        gated.stop_modality(FACE)  # what the revocation listeners do
        assert devices.camera.log.open_now == 0
        gated.start_modality(FACE)  # a restart without consent: refused by the camera
        wait_for(lambda: gated.status()[FACE].state == "failed")
        assert "consent was revoked" in gated.status()[FACE].message
        assert devices.camera.log.opened == [0]
    finally:
        gated.stop(timeout=3.0)


# --- the window's session controller ---------------------------------------------------------


class StillPlan:
    """An EncoderPlan whose profile runs StillFace for the face and nothing else."""

    def choose(self, profile: str) -> tuple[dict[Modality, Any], list[str]]:
        from emoapp.registry import ModelSpec

        return {m: ModelSpec(FACE, StillFace.model_id) if m is FACE else None for m in Modality}, []

    def fusion_base(self, profile: str) -> Any:
        from emoapp.core.fusion import FusionConfig

        return FusionConfig()

    def load(self, spec: Any) -> StillFace:
        return StillFace()


@pytest.mark.parametrize("granted", [False, True], ids=["no-grant", "granted"])
@pytest.mark.parametrize("with_gate", [False, True], ids=["no-gate", "gate"])
def test_the_window_controller_opens_a_camera_only_with_a_grant(
    qtbot, devices: FakeDevices, store: ConsentStore, with_gate: bool, granted: bool
) -> None:
    pytest.importorskip("PySide6")
    from emoapp.ui.bridge import SessionBridge
    from emoapp.ui.controller import SessionController

    if granted:
        store.grant(FACE)
    controller = SessionController(SessionBridge(), StillPlan())  # type: ignore[arg-type]
    controller.consent_gate = ConsentGate(store) if with_gate else None
    listed: list[Any] = []
    problems: list[str] = []
    controller.devices_listed.connect(lambda cameras, mics: listed.append(cameras))
    controller.problem.connect(problems.append)
    controller.choose_source(FACE, "camera:0")
    controller.start({FACE}, "still")
    try:
        wait_for(lambda: controller.session is not None)
        session = controller.session
        if with_gate and granted:
            wait_for(lambda: session.status()[FACE].source_open)
            assert devices.camera.log.opened[:1] == [0]
        else:
            wait_for(lambda: session.status()[FACE].state == "failed")
            assert session.status()[FACE].message.startswith("camera not opened")
            assert devices.camera.log.opened == []
        controller.list_devices()
        qtbot.waitUntil(lambda: bool(listed), timeout=10_000)
        if with_gate and granted:
            assert listed[0] and listed[0][0][1] == "camera:0"
        else:
            assert listed[0] == []
            assert any(p.startswith("cameras not listed") for p in problems)
            assert devices.camera.log.opened == []
    finally:
        done: list[bool] = []
        controller.shut_down.connect(lambda: done.append(True))
        controller.shutdown()
        qtbot.waitUntil(lambda: bool(done), timeout=10_000)
        controller.join()
    assert devices.camera.log.open_now == 0
