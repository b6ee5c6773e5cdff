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

TOKEN = "ui-token-0123456789"


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

    stream = streaming.stream
    streaming.action.trigger()  # now "Stop streaming estimates"
    assert not streaming.running and not streaming.indicator.active
    assert "stream stopped: 1 client(s)" in window.message_label.text()
    assert stream.join(5)  # the server ends on its own thread; the window did not wait
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
    stream = streaming.stream
    window.privacy.revoke_all_and_stop()
    assert not streaming.running and not streaming.indicator.active
    assert stream.join(5)

    streaming.ask = lambda parent: StreamRequest("127.0.0.1", 0, "short")
    streaming.action.trigger()  # a token that can be guessed is refused, and said why
    assert not streaming.running
    assert "a stream token needs at least 16" in window.message_label.text()


def test_stopping_from_the_window_never_waits_on_a_client(
    qtbot,
    window_args,
    privacy_window,  # noqa: F811
    config: Path,  # noqa: F811
):
    """A client that never reads while rows pile up: File → Stop streaming returns on the
    Qt thread well before a generous bound, and the server thread still ends."""
    import time

    window = privacy_window(window_args(), Prompt(answer=False), {Modality.VOICE})
    streaming = window.streaming
    streaming.ask = lambda parent: StreamRequest("127.0.0.1", 0, TOKEN)
    streaming.show_started = lambda parent, stream: None
    streaming.action.trigger()
    stream = streaming.stream
    with connect(f"{stream.url}/?token={TOKEN}", open_timeout=5, close_timeout=0.5) as stuck:
        qtbot.waitUntil(lambda: stream.stats().connected == 1, timeout=WAIT_MS)
        big = {"t": 0.0, "notes": {"text": "x" * 200_000}}
        for _ in range(stream.queue_size + 100):  # more than its queue and socket take
            stream.write(big)
        qtbot.waitUntil(lambda: stream.stats().dropped > 0, timeout=WAIT_MS)
        started = time.perf_counter()
        streaming.action.trigger()  # Stop streaming estimates
        took = time.perf_counter() - started
        assert not streaming.running
        assert took < 0.5, f"the window waited {took:.3f} s"
        assert stream.join(10)
        stuck.close_socket()
