"""The local stream of estimates, with a real WebSocket client on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from emoapp.core.messages import FusedEstimate, Modality, ModalityPrediction
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.privacy.audit import AuditLog
from emoapp.recorded.timeline import row_from_estimate
from emoapp.stream.server import (
    SCHEMA_VERSION,
    STOP_CODE,
    STOP_REASON,
    SUBPROTOCOL,
    EstimateStream,
    StreamAddress,
    StreamError,
    is_loopback,
    parse_address,
    schema_path,
)

LOOPBACK = StreamAddress("127.0.0.1", 0)
TIMEOUT = 5.0
TOKEN = "s3cret-token-0123"


def _row(t: float) -> dict:
    probs = np.full(len(CANONICAL_LABELS), 0.05)
    probs[1] = 0.7
    prediction = ModalityPrediction(
        modality=Modality.VOICE,
        t=t,
        probs=probs,
        mask=np.ones(len(CANONICAL_LABELS), dtype=bool),
        confidence=0.7,
        model_id="baseline/voice-prosody",
        baseline=True,
    )
    estimate = FusedEstimate(
        t=t,
        probs=probs,
        label="happy",
        confidence=float(probs.max()),
        valence=0.8,
        arousal=0.6,
        inputs={Modality.VOICE: prediction},
        weights={Modality.VOICE: 0.7},
        contributions={Modality.VOICE: 1.0},
        disagreement=0.0,
        rule="weighted",
    )
    return row_from_estimate(estimate)


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.jsonl")


@pytest.fixture
def stream(audit: AuditLog):
    s = EstimateStream(LOOPBACK, token=TOKEN, audit=audit, queue_size=8)
    s.start()
    yield s
    s.close()
    assert s.join(TIMEOUT)


def _wait_for(predicate, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.001)
    return predicate()


def _url(stream: EstimateStream, query: str = "") -> str:
    return f"ws://127.0.0.1:{stream.port}/{query}"


def test_a_client_with_the_token_receives_schema_valid_rows(stream, audit) -> None:
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    assert schema["version"] == SCHEMA_VERSION
    with connect(_url(stream, f"?token={TOKEN}"), open_timeout=TIMEOUT) as client:
        assert _wait_for(lambda: stream.stats().connected == 1)
        sent = [_row(0.1 * i) for i in range(5)]
        for row in sent:
            stream.write(row)
        received = [json.loads(client.recv(timeout=TIMEOUT)) for _ in sent]
    assert received == json.loads(json.dumps(sent))
    for message in received:
        jsonschema.validate(message, schema)
    assert _wait_for(lambda: stream.stats().connected == 0)
    stream.close()
    events = [(e.event, e.details.get("action")) for e in audit.entries()]
    assert events == [
        ("stream-started", None),
        ("stream-client", "connected"),
        ("stream-client", "left"),
        ("stream-stopped", None),
    ]
    text = audit.path.read_text()
    assert TOKEN not in text and "happy" not in text  # never the token or content


def test_the_bearer_header_works_and_pins_the_schema_version(stream) -> None:
    with connect(
        _url(stream),
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        open_timeout=TIMEOUT,
    ) as client:
        assert client.subprotocol == SUBPROTOCOL
        assert _wait_for(lambda: stream.stats().connected == 1)
        stream.write(_row(1.0))
        assert json.loads(client.recv(timeout=TIMEOUT))["t"] == 1.0


@pytest.mark.parametrize(
    ("query", "headers", "why"),
    [
        ("", {}, "no token"),
        ("?token=wrong", {}, "wrong token"),
        ("", {"Authorization": "Bearer nope"}, "wrong token"),
        ("", {"Authorization": f"Basic {TOKEN}"}, "no token"),
    ],
)
def test_a_client_without_the_right_token_is_refused(stream, audit, query, headers, why) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(_url(stream, query), additional_headers=headers, open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 401
    stream.write(_row(0.0))
    assert stream.stats().accepted == 0 and stream.stats().refused == 1
    stream.close()  # refusals are written as one line per peer and interval, and at the end
    refusal, stopped = audit.entries()[-2:]
    assert refusal.event == "stream-refused" and stopped.event == "stream-stopped"
    assert refusal.details["peer"] == "127.0.0.1"
    assert (refusal.details["count"], refusal.details["reasons"]) == (1, {why: 1})


def test_a_slow_client_loses_its_oldest_rows_and_stalls_nobody(stream) -> None:
    """A client that never reads: writes keep returning, a reading client gets every
    row, and the slow one's drops are counted."""
    with (
        connect(_url(stream, f"?token={TOKEN}"), open_timeout=TIMEOUT, close_timeout=0.5),
        connect(_url(stream, f"?token={TOKEN}"), open_timeout=TIMEOUT) as fast,
    ):
        assert _wait_for(lambda: stream.stats().connected == 2)
        big = _row(0.0)
        big["notes"] = {"text": "x" * 50_000}  # fills the slow one's socket buffers quickly
        got: list[float] = []
        total = 400

        def read_fast() -> None:
            while len(got) < total:
                got.append(json.loads(fast.recv(timeout=TIMEOUT))["t"])

        reader = threading.Thread(target=read_fast)
        reader.start()
        for i in range(total):
            big["t"] = float(i)
            stream.write(big)
            # rows come at a pace a reading client keeps up with (its queue holds 8)
            assert _wait_for(lambda i=i: len(got) >= i - 4)
        reader.join(TIMEOUT * 4)
        assert not reader.is_alive()
        assert got == [float(i) for i in range(total)]
        assert _wait_for(lambda: stream.stats().dropped > 0)
        stats = stream.stats()
        assert stats.rows == total
        assert stats.messages + stats.dropped <= 2 * total


def test_stop_closes_clients_and_writes_the_figures(audit) -> None:
    stream = EstimateStream(LOOPBACK, audit=audit)
    stream.start()
    assert len(stream.token) >= 32 and stream.token_given is False
    with connect(_url(stream, f"?token={stream.token}"), open_timeout=TIMEOUT) as client:
        assert _wait_for(lambda: stream.stats().connected == 1)
        stream.write(_row(0.0))
        assert json.loads(client.recv(timeout=TIMEOUT))["t"] == 0.0
        stats = stream.close()
        assert not stream.running
        assert (stats.accepted, stats.messages) == (1, 1)
        with pytest.raises(ConnectionClosed) as closed:  # the server closed the connection
            client.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None  # and said why
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (STOP_CODE, STOP_REASON)
    last = audit.entries()[-1]
    assert last.event == "stream-stopped"
    assert (last.details["clients"], last.details["messages"]) == (1, 1)
    assert stream.token not in audit.path.read_text()
    stream.write(_row(1.0))  # after stop: ignored, never raises


def test_a_port_in_use_gives_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StreamError, match=r"cannot listen on ws://127\.0\.0\.1:"):
            EstimateStream(StreamAddress("127.0.0.1", port)).start()


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("8765", "127.0.0.1", 8765, True),
        ("localhost:9000", "localhost", 9000, True),
        ("0.0.0.0:8765", "0.0.0.0", 8765, False),
        ("[::1]:8765", "::1", 8765, True),
        ("192.168.1.5:0", "192.168.1.5", 0, False),
    ],
)
def test_addresses(text, host, port, loopback) -> None:
    address = parse_address(text)
    assert (address.host, address.port, address.loopback) == (host, port, loopback)
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("text", ["", "abc", ":80", "host:99999", "[::1]8765", "-1"])
def test_bad_addresses_are_refused(text) -> None:
    with pytest.raises(StreamError):
        parse_address(text)


def test_emoapp_live_streams_the_rows_it_writes(samples: Path, tmp_path: Path, capsys) -> None:
    """`emoapp live --no-gui --stream`: a client with the token receives the very rows
    written to --out; the run says where and how, and the audit log has start and stop.
    The token comes from a file: it is on no command line and never printed."""
    import os

    from emoapp.cli import main

    secret = "tok-from-a-file-0123456789"
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    token_file.chmod(0o600)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "live.jsonl"
    codes: list[int] = []
    argv = [
        "live", "--no-gui", "--mic", str(samples / "speech.wav"), "--profile", "baseline",
        "--duration", "4", "--out", str(out), "--status-every", "0",
        "--stream", f"127.0.0.1:{port}", "--stream-token-file", str(token_file),
    ]  # fmt: skip
    run = threading.Thread(target=lambda: codes.append(main(argv)))
    run.start()
    received: list[dict] = []
    try:
        deadline = time.monotonic() + 60
        client = None
        while client is None and time.monotonic() < deadline and run.is_alive():
            try:
                client = connect(f"ws://127.0.0.1:{port}/?token={secret}", open_timeout=TIMEOUT)
            except OSError:
                time.sleep(0.05)
        assert client is not None, "the stream never came up"
        with client:
            while True:
                try:
                    received.append(json.loads(client.recv(timeout=TIMEOUT)))
                except (ConnectionClosed, TimeoutError):
                    break
    finally:
        run.join(60)
    assert codes == [0]
    err = capsys.readouterr().err
    assert f"streaming estimates at ws://127.0.0.1:{port} (the token in {token_file}" in err
    assert secret not in err and secret not in " ".join(argv)
    assert "stream stopped; 1 client(s), 0 refused" in err
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert received and len(received) <= len(written)
    assert received == written[len(written) - len(received) :]
    audit = AuditLog(Path(os.environ["EMOAPP_CONFIG_DIR"]) / "audit.jsonl")
    events = [e.event for e in audit.entries()]
    assert events[0] == "stream-started" and "stream-stopped" in events
    assert audit.entries()[0].details["token"] == "file"
    assert secret not in audit.path.read_text()


def test_the_documented_example_client_works(stream) -> None:
    """docs/examples/stream_client.py, run as a person would, prints the rows it gets."""
    import subprocess
    import sys

    client = Path(__file__).resolve().parents[2] / "docs" / "examples" / "stream_client.py"
    process = subprocess.Popen(
        [sys.executable, str(client), f"ws://127.0.0.1:{stream.port}", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(lambda: stream.stats().connected == 1, timeout=30)
        for i in range(3):
            stream.write(_row(float(i)))
        assert _wait_for(lambda: stream.stats().messages == 3)
        stream.stop()
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.splitlines() == [
        f"{i:6.1f} s  valence 0.80  happy 70%, neutral 5%" for i in range(3)
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--stream-token", "x"], "--stream-token needs --stream [HOST:]PORT"),
        (["--stream", "localhost:http"], "the port must be a number"),
        (["--stream", "8765", "--stream-token", " "], "--stream-token must not be empty"),
    ],
)
def test_live_stream_options_that_do_not_fit(samples: Path, capsys, extra, message) -> None:
    from emoapp.cli import main

    code = main(["live", "--no-gui", "--mic", str(samples / "speech.wav"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
