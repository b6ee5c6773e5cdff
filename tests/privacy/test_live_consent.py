"""Consent in `emoapp live` and the live session: no camera or microphone opens without
consent (a flag for the run, or a saved grant), the refused modality shows why while the
rest runs, replayed files need nothing, and a revoked grant closes the device and empties
its buffers at once.

The real CameraSource and MicrophoneSource are used, over a recording camera and
microphone (tests/privacy/fakedevices.py) that stand in for OpenCV and PortAudio."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emoapp.cli import main
from emoapp.core import clock
from emoapp.core.messages import Modality
from emoapp.privacy.consent import ConsentGate, ConsentStore

from .fakedevices import FakeDevices, install_fake_devices

FACE, VOICE = Modality.FACE, Modality.VOICE
CAMERA_REFUSED = (
    "camera not opened: no consent given; grant it in the window or pass --allow-camera"
)
MIC_REFUSED = "microphone not opened: no consent given; grant it in the window or pass --allow-mic"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def devices(monkeypatch: pytest.MonkeyPatch) -> FakeDevices:
    return install_fake_devices(monkeypatch)


def rows_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def audit_events(config: Path) -> list[tuple[str, str]]:
    path = config / "audit.jsonl"
    if not path.exists():
        return []
    return [
        (entry["event"], entry.get("modality", ""))
        for entry in map(json.loads, path.read_text().splitlines())
    ]


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {condition}")


# --- emoapp live --------------------------------------------------------------------------


def test_live_opens_no_device_without_consent(config: Path, devices: FakeDevices, capsys):
    assert main(["live", "--no-gui", "--camera", "0", "--profile", "baseline"]) == 2
    assert capsys.readouterr().err.strip() == f"emoapp: error: {CAMERA_REFUSED}"
    assert main(["live", "--no-gui", "--camera", "0", "--mic", "default"]) == 2
    assert capsys.readouterr().err.strip() == f"emoapp: error: {CAMERA_REFUSED}; {MIC_REFUSED}"
    assert devices.camera.log.opened == [] and devices.microphone.log.opened == []
    assert not config.exists()  # a refusal writes nothing


def test_a_refused_camera_shows_why_while_the_rest_runs(
    config: Path, devices: FakeDevices, samples: Path, capsys
):
    code = main([
        "live", "--no-gui", "--camera", "0", "--text-file", str(samples / "transcript.txt"),
        "--text-interval", "0.2", "--profile", "baseline", "--out", "-", "--status-every", "0",
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert devices.camera.log.opened == []
    assert f"emoapp live: {CAMERA_REFUSED}\n" in err
    assert f"face failed [{CAMERA_REFUSED}]" in err
    rows = rows_of(out)
    assert any(row["modalities"]["text"] for row in rows), "the replayed text must run"
    assert all(row["modalities"]["face"] is None for row in rows)
    assert rows[-1]["notes"]["face"] == CAMERA_REFUSED
    assert audit_events(config) == []  # a replayed file needs no consent, records nothing


def test_allow_flags_open_the_devices_for_this_run_only(config: Path, devices: FakeDevices, capsys):
    code = main([
        "live", "--no-gui", "--camera", "0", "--allow-camera", "--mic", "default",
        "--allow-mic", "--profile", "baseline", "--duration", "1.5", "--status-every", "0",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert devices.camera.log.opened == [0] and devices.microphone.log.opened == [None]
    assert devices.camera.log.open_now == 0 and devices.microphone.log.open_now == 0
    assert "face running" in err or "face starting" in err
    assert sorted(audit_events(config)) == [
        ("consent-for-run", "face"),
        ("consent-for-run", "voice"),
    ]
    assert not (config / "consent.json").exists()  # a flag is never saved as a grant


def test_list_devices_probes_cameras_only_with_consent(config: Path, devices, capsys):
    assert main(["live", "--list-devices"]) == 0
    out = capsys.readouterr().out
    assert "(not listed: finding cameras opens each one briefly; camera not opened" in out
    assert "fake mic" in out  # listing microphones opens none
    assert devices.camera.log.opened == []
    assert main(["live", "--list-devices", "--allow-camera"]) == 0
    assert "0: 64x48 @ 30 fps [fake]" in capsys.readouterr().out
    assert devices.camera.log.opened[0] == 0 and devices.camera.log.open_now == 0


def test_a_saved_grant_opens_the_camera_and_revoking_it_closes_it_at_once(
    config: Path, devices: FakeDevices, capsys
):
    ConsentStore(config).grant(FACE)
    revoked_at: list[float] = []

    def revoke_elsewhere() -> None:
        """Another emoapp (the window) revokes, through its own store on the same file."""
        wait_for(lambda: devices.camera.log.opened, 10)
        time.sleep(0.6)
        revoked_at.append(clock.now())
        ConsentStore(config).revoke(FACE)

    other = threading.Thread(target=revoke_elsewhere, name="test-revoker")
    other.start()
    try:
        code = main([
            "live", "--no-gui", "--camera", "0", "--profile", "baseline",
            "--duration", "2.5", "--out", "-", "--status-every", "0",
        ])  # fmt: skip
    finally:
        other.join()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert devices.camera.log.opened == [0], "opened once, and not again after revocation"
    closed = devices.camera.log.closed_at[0]
    print(f"revocation to camera closed: {1000 * (closed - revoked_at[0]):.0f} ms")
    assert closed - revoked_at[0] < 1.0  # well within the run; typically ~0.1 s
    assert "emoapp live: camera closed: consent was revoked" in err
    assert "face stopped" in err
    rows = rows_of(out)
    assert rows[-1]["modalities"]["face"] is None
    assert audit_events(config) == [("consent-granted", "face"), ("consent-revoked", "face")]


# --- the live session ---------------------------------------------------------------------


class SlowFace:
    """A face encoder slower than the camera (so a frame is always waiting) that sees a
    happy face in every frame."""

    modality = FACE
    model_id = "test/slow-face"
    baseline = False
    device = "cpu"

    def load(self) -> None:
        pass

    def encode(self, items):
        import numpy as np

        from emoapp.core.messages import ModalityPrediction
        from emoapp.core.taxonomy import NUM_LABELS

        time.sleep(0.1)
        probs = np.full(NUM_LABELS, 0.05)
        probs[1] = 1.0 - 0.05 * (NUM_LABELS - 1)
        mask = np.ones(NUM_LABELS, dtype=bool)
        return [
            ModalityPrediction(FACE, item.t, probs, mask, float(probs[1]), self.model_id)
            for item in items
        ]

    def info(self):
        from emoapp.encoders.base import EncoderInfo

        return EncoderInfo(FACE, self.model_id, "cpu", "float32", False)


@pytest.fixture
def session_parts(devices: FakeDevices, tmp_path: Path):
    from emoapp.capture.camera import CameraSource
    from emoapp.live.session import LiveSession

    store = ConsentStore(tmp_path / "config")
    gate = ConsentGate(store)
    made = []

    def make() -> LiveSession:
        session = LiveSession(
            {FACE: CameraSource(0, consent=gate)},
            {FACE: SlowFace()},
            retry_initial_s=0.05,
            retry_max_s=0.1,
        )
        made.append(session)
        return session

    yield store, gate, make
    for session in made:
        session.stop(timeout=3.0)


def test_the_session_keeps_the_camera_shut_without_consent(session_parts, devices):
    store, _gate, make = session_parts
    session = make()
    session.start()
    wait_for(lambda: session.status()[FACE].state == "failed")
    time.sleep(0.4)  # several retries: each asks the gate again, and is refused
    status = session.status()[FACE]
    assert status.message.startswith(CAMERA_REFUSED) and not status.source_open
    assert devices.camera.log.opened == []
    assert session.buffered()[FACE] == 0

    store.grant(FACE)  # granted meanwhile: the next retry opens it
    wait_for(lambda: session.status()[FACE].source_open)
    assert devices.camera.log.opened == [0]


def test_revocation_closes_the_camera_and_empties_its_buffers(session_parts, devices):
    store, _gate, make = session_parts
    store.grant(FACE)
    session = make()
    store.add_listener(lambda change: change.granted or session.stop_modality(change.modality))
    session.start()
    wait_for(lambda: (e := session.latest_estimate()) and FACE in e.inputs)
    wait_for(lambda: session.buffered()[FACE] > 0)  # a frame waits for the slow encoder

    store.revoke(FACE)  # the listener runs before revoke() returns
    assert devices.camera.log.open_now == 0, "the camera must be closed at once"
    assert session.buffered()[FACE] == 0
    status = session.status()[FACE]
    assert status.state == "stopped" and not status.source_open
    after = clock.now()
    wait_for(lambda: (e := session.latest_estimate()) and e.t > after)
    assert FACE not in session.latest_estimate().inputs

    session.start_modality(FACE)  # a restart without consent is refused by the gate
    wait_for(lambda: session.status()[FACE].state == "failed")
    assert session.status()[FACE].message.startswith("camera not opened: consent was revoked")
    assert devices.camera.log.opened == [0]
