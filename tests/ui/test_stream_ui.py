"""File → Stream estimates… on the real window: the streaming indicator lights beside the
capture indicators, a client with the token receives the rows an export would write, and
stopping (or Revoke all and stop) puts the indicator out and is audited."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from emoapp.core.messages import Modality
from emoapp.ui.stream_controller import StreamRequest
from tests.ui.test_privacy_ui import (  # noqa: F401 - fixtures
    WAIT_MS,
    Prompt,
    audit,
    config,
    privacy_window,
)

TOKEN = "ui-token-123"


def test_streaming_from_the_window(qtbot, window_args, privacy_window, config: Path):  # noqa: F811
    window = privacy_window(window_args(), Prompt(answer=False), {Modality.VOICE})
    streaming = window.streaming
    shown: list[str] = []
    streaming.ask = lambda parent: StreamRequest("127.0.0.1", 0, TOKEN)
    streaming.show_started = lambda parent, stream: shown.append(stream.url)
    bar = window.statusBar()
    assert streaming.indicator.parent() is window.capture_indicators.parent() is not None
    assert streaming.indicator.isVisible() and not streaming.indicator.active
    assert streaming.indicator.text.text() == "Stream: off"
    assert streaming.action in window.file_menu.actions()

    streaming.action.trigger()
    assert streaming.running and shown == [streaming.stream.url]
    assert streaming.indicator.active and streaming.indicator.text.text().startswith(
        "Streaming to 0 clients (ws://127.0.0.1:"
    )
    assert bar.isVisible()

    received: list[dict] = []
    done = threading.Event()

    def read() -> None:
        url = f"{streaming.stream.url}/?token={TOKEN}"
        try:
            with connect(url, open_timeout=5) as client:
                while len(received) < 3:
                    received.append(json.loads(client.recv(timeout=15)))
        except (ConnectionClosed, TimeoutError, OSError):
            pass
        finally:
            done.set()

    reader = threading.Thread(target=read)
    reader.start()
    qtbot.waitUntil(done.is_set, timeout=WAIT_MS)
    reader.join(5)
    assert len(received) == 3
    assert all(set(r) >= {"t", "fused", "modalities", "notes"} for r in received)
    kept = [r["t"] for r in window.privacy.memory.rows()]
    assert all(r["t"] in kept for r in received)  # the very rows an export writes

    streaming.action.trigger()  # now "Stop streaming estimates"
    assert not streaming.running and not streaming.indicator.active
    assert "stream stopped: 1 client(s)" in window.message_label.text()
    events = [(e["event"], e.get("action")) for e in audit(config) if "stream" in e["event"]]
    assert events == [
        ("stream-started", None),
        ("stream-client", "connected"),
        ("stream-client", "left"),
        ("stream-stopped", None),
    ]
    assert TOKEN not in (config / "audit.jsonl").read_text()

    streaming.action.trigger()  # start again, then Revoke all and stop ends it
    assert streaming.running
    window.privacy.revoke_all_and_stop()
    assert not streaming.running and not streaming.indicator.active
