"""The window's consent that expires: "Allow for 10 minutes" opens the camera for this
run only (audited, not saved); when the time is up the camera is withdrawn through the
same path as a revocation, and the expiry is in the audit log."""

from __future__ import annotations

from pathlib import Path

from emoapp.core import clock
from emoapp.privacy.consent import ConsentStatus, ConsentStore
from emoapp.ui.consent_dialog import ALLOW_FOR_S
from tests.privacy.fakedevices import FakeDevices
from tests.ui.test_privacy_ui import (  # noqa: F401 - fixtures used by name
    FACE,
    WAIT_MS,
    Prompt,
    audit,
    config,
    devices,
    privacy_window,
)


def test_allow_for_ten_minutes_expires_through_the_withdrawal_path(
    qtbot,
    window_args,
    privacy_window,  # noqa: F811 - the fixture imported above
    devices: FakeDevices,  # noqa: F811
    config: Path,  # noqa: F811
):
    prompt = Prompt(answer=True)
    prompt.answer = ALLOW_FOR_S  # type: ignore[assignment]  # "Allow for 10 minutes"
    window = privacy_window(window_args("--camera", "0", camera=False), prompt)
    qtbot.waitUntil(lambda: window.capture_indicators.indicator(FACE).capturing, timeout=WAIT_MS)
    assert prompt.asked and prompt.asked[0][0] is FACE
    gate = window.privacy.gate
    assert ConsentStore(config).status(FACE) is ConsentStatus.NEVER_ASKED  # not saved
    remaining = gate.expires_in(FACE)
    assert remaining is not None and 590 < remaining <= 600
    gate._now = lambda: clock.now() + ALLOW_FOR_S  # ten minutes later
    qtbot.waitUntil(lambda: devices.camera.log.open_now == 0, timeout=5000)
    qtbot.waitUntil(lambda: not window.capture_indicators.indicator(FACE).active, timeout=5000)
    assert FACE not in window.controller.wanted()
    assert window.controller.session.buffered()[FACE] == 0
    assert "camera consent expired" in window.message_label.text()
    assert [(e["event"], e["modality"], e["via"]) for e in audit(config)] == [
        ("consent-for-run", "face", "window, for 10m"),
        ("consent-expired", "face", "window, for 10m"),
    ]
