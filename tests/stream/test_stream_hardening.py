"""The stream only the intended program can read, and an audit log nobody can flush.

Real WebSocket handshakes on 127.0.0.1: a foreign ``Origin`` is refused even with the
right token; tokens are long (generated: 192 bits; given: at least 16 characters) and can
come from a file or the environment instead of the command line; failed attempts are
rate-limited per peer; ``stop()`` returns at once with a client that does not read, the
server thread ends soon after and clients are told why; 3,000 handshakes without a token
add a handful of audit lines and push no consent record out; no audit write runs on the
stream's event loop.
"""

from __future__ import annotations

import socket
import string
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from emoapp.core.messages import Modality
from emoapp.privacy.audit import AuditLog
from emoapp.stream.server import (
    MIN_TOKEN_CHARS,
    STOP_CODE,
    STOP_REASON,
    TOKEN_ENV,
    EstimateStream,
    FailureLimiter,
    StreamAddress,
    StreamError,
    new_token,
)
from tests.stream.test_stream import _row, _wait_for

LOOPBACK = StreamAddress("127.0.0.1", 0)
TIMEOUT = 5.0
TOKEN = "a-long-enough-token-42"


def handshake(port: int, *headers: str, path: str = "/") -> int:
    """One raw WebSocket opening handshake; the HTTP status the server answers."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request.encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(1024)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


class ThreadRecordingAudit(AuditLog):
    """An audit log that notes the thread each record was written on."""

    def __init__(self, path: Path, **kwargs) -> None:
        super().__init__(path, **kwargs)
        self.threads: list[str] = []

    def _record(self, event: str, **details) -> bool:
        self.threads.append(threading.current_thread().name)
        return super()._record(event, **details)


@pytest.fixture
def stream(tmp_path: Path):
    audit = ThreadRecordingAudit(tmp_path / "audit.jsonl")
    s = EstimateStream(
        LOOPBACK,
        token=TOKEN,
        audit=audit,
        allowed_origins=["http://localhost:3000"],
        limiter=FailureLimiter(burst=1000, per_s=1000.0),
    )
    s.start()
    yield s
    s.close()
    assert s.join(TIMEOUT)


# --- tokens --------------------------------------------------------------------------------


def test_generated_tokens_hold_at_least_128_random_bits(tmp_path: Path) -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    alphabet = set(string.ascii_letters + string.digits + "-_")  # 6 bits a character
    assert all(set(t) <= alphabet and len(t) * 6 >= 128 for t in tokens)
    stream = EstimateStream(LOOPBACK)
    assert len(stream.token) * 6 >= 128 and stream.token_source == "generated"


@pytest.mark.parametrize("short", ["abcd", "x" * (MIN_TOKEN_CHARS - 1)])
def test_a_short_token_is_refused_with_a_clear_error(short: str, samples: Path, capsys) -> None:
    with pytest.raises(StreamError, match=rf"at least {MIN_TOKEN_CHARS}"):
        EstimateStream(LOOPBACK, token=short)
    from emoapp.cli import main

    argv = ["live", "--no-gui", "--mic", str(samples / "speech.wav"), "--stream", "0"]
    assert main([*argv, "--stream-token", short]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        f"emoapp: error: --stream-token is {len(short)} characters long; a stream token "
        f"needs at least {MIN_TOKEN_CHARS} (leave it out and a random one is made)"
    ]
    EstimateStream(LOOPBACK, token="x" * MIN_TOKEN_CHARS)  # long enough


def _live_args(*extra: str):
    from emoapp.cli import build_parser

    return build_parser().parse_args(["live", "--no-gui", "--stream", "0", *extra])


def test_the_token_can_come_from_a_file_or_the_environment(tmp_path: Path, monkeypatch) -> None:
    """So that it need not be on a command line (where `ps` shows it to every user)."""
    from emoapp.commands.live import _stream_token

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert _stream_token(_live_args()) is None  # a random one
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment-1")
    assert _stream_token(_live_args()) == ("from-the-environment-1", "environment")
    secret = tmp_path / "token"
    secret.write_text("from-a-file-0123456789\nignored second line\n")
    assert _stream_token(_live_args("--stream-token-file", str(secret))) == (
        "from-a-file-0123456789",
        "file",
    )
    assert _stream_token(_live_args("--stream-token", "on-the-command-line")) == (
        "on-the-command-line",
        "given",
    )
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(StreamError, match=f"{TOKEN_ENV} is 5 characters long"):
        _stream_token(_live_args())
    with pytest.raises(StreamError, match="cannot read"):
        _stream_token(_live_args("--stream-token-file", str(tmp_path / "missing")))
    with pytest.raises(StreamError, match="not both"):
        _stream_token(_live_args("--stream-token-file", str(secret), "--stream-token", "x" * 20))


def test_a_token_from_the_environment_lets_a_client_in(tmp_path: Path, monkeypatch) -> None:
    from emoapp.commands.live import _stream_token

    monkeypatch.setenv(TOKEN_ENV, "environment-token-0123")
    token, source = _stream_token(_live_args())
    audit = AuditLog(tmp_path / "audit.jsonl")
    stream = EstimateStream(LOOPBACK, token=token, token_source=source, audit=audit)
    stream.start()
    try:
        assert handshake(stream.port, "Authorization: Bearer environment-token-0123") == 101
    finally:
        stream.close()
    assert audit.entries()[0].details["token"] == "environment"
    assert "environment-token-0123" not in audit.path.read_text()


# --- origins -------------------------------------------------------------------------------


def test_a_handshake_from_a_foreign_origin_is_refused_even_with_the_token(stream) -> None:
    bearer = f"Authorization: Bearer {TOKEN}"
    assert handshake(stream.port, bearer, "Origin: http://evil.example") == 403
    assert handshake(stream.port, bearer, "Origin: null") == 403  # a file:// page, a sandbox
    assert handshake(stream.port, bearer, "Origin: http://localhost:3000.evil.example") == 403
    assert handshake(stream.port, bearer, "Origin: HTTP://LOCALHOST:3000") == 101  # allowed
    assert handshake(stream.port, bearer) == 101  # not a browser: no Origin header
    with pytest.raises(InvalidStatus) as refused:  # a real client, as a web page's would be
        connect(
            f"ws://127.0.0.1:{stream.port}/?token={TOKEN}",
            origin="http://evil.example",  # type: ignore[arg-type]
            open_timeout=TIMEOUT,
        )
    assert refused.value.response.status_code == 403
    with connect(
        f"ws://127.0.0.1:{stream.port}/?token={TOKEN}",
        origin="http://localhost:3000",  # type: ignore[arg-type]
        open_timeout=TIMEOUT,
    ) as client:
        assert _wait_for(lambda: stream.stats().connected == 1)
        stream.write(_row(2.0))
        assert '"t":2.0' in client.recv(timeout=TIMEOUT)
    stream.close()
    refusals = [e for e in stream.audit.entries() if e.event == "stream-refused"]
    assert refusals and refusals[-1].details["reasons"] == {"origin not allowed": 4}


def test_an_allowed_origin_must_be_an_origin() -> None:
    with pytest.raises(StreamError, match="SCHEME://HOST"):
        EstimateStream(LOOPBACK, allowed_origins=["localhost:3000/app"])


def test_live_refuses_origin_and_token_file_options_without_a_stream(samples, capsys) -> None:
    from emoapp.cli import main

    base = ["live", "--no-gui", "--mic", str(samples / "speech.wav")]
    assert main([*base, "--stream-allow-origin", "http://localhost:3000"]) == 2
    assert "--stream-allow-origin needs --stream" in capsys.readouterr().err
    assert main([*base, "--stream-token-file", "t"]) == 2
    assert "--stream-token-file needs --stream" in capsys.readouterr().err


# --- rate limit ----------------------------------------------------------------------------


def test_failed_attempts_are_rate_limited_per_peer(tmp_path: Path) -> None:
    """Past the burst, a peer is refused with 429 without its token being looked at (so
    guessing is slow), until its allowance refills; then the right token works again."""
    # The limiter's clock moves only when the test moves it: on the wall clock a slow
    # machine could take the 1/5 s that refills an allowance between two handshakes.
    now = [0.0]
    limiter = FailureLimiter(burst=3, per_s=5.0, clock=lambda: now[0])
    stream = EstimateStream(LOOPBACK, token=TOKEN, limiter=limiter)
    stream.start()
    try:
        port = stream.port
        assert port is not None
        bearer = f"Authorization: Bearer {TOKEN}"
        wrong = "Authorization: Bearer wrong-guess-0000"
        assert [handshake(port, wrong) for _ in range(3)] == [401] * 3
        assert handshake(port, "Authorization: Bearer wrong-guess-0001") == 429
        assert handshake(port, bearer) == 429  # even the right token: no oracle
        now[0] = 0.19
        assert handshake(port, bearer) == 429  # not refilled before 1/5 s
        now[0] = 0.25
        assert handshake(port, bearer) == 101  # 1/5 s later the allowance is back
    finally:
        stream.close()
    assert stream.stats().refused >= 5


@settings(max_examples=60, deadline=None)
@given(
    burst=st.integers(1, 20),
    per_s=st.floats(0.1, 50.0),
    gaps=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=200),
)
def test_the_limiter_never_lets_more_failures_through_than_its_allowance(burst, per_s, gaps):
    """Whatever the timing, the failures let through by time T are at most
    burst + T * per_s (a token bucket), and a peer never blocks another."""
    now = [0.0]
    limiter = FailureLimiter(burst=burst, per_s=per_s, clock=lambda: now[0])
    let_through = 0
    for gap in gaps:
        now[0] += gap
        if limiter.retry_after("attacker") == 0:
            limiter.failed("attacker")
            let_through += 1
        else:
            assert limiter.retry_after("attacker") <= 1.0 / per_s + 1e-9
        assert let_through <= burst + now[0] * per_s + 1e-6
        assert limiter.retry_after("someone else") == 0


# --- stopping ------------------------------------------------------------------------------


def test_stop_returns_at_once_with_a_client_that_does_not_read(tmp_path: Path) -> None:
    """A client that never reads (its socket buffers full) and one that reads: stop()
    returns well before a generous bound (the window calls it on the Qt thread), the server
    thread is gone soon after, and the reading client is told why."""
    audit = AuditLog(tmp_path / "audit.jsonl")
    stream = EstimateStream(LOOPBACK, token=TOKEN, audit=audit, queue_size=4)
    stream.start()
    url = f"ws://127.0.0.1:{stream.port}/?token={TOKEN}"
    closed: list[ConnectionClosed] = []
    with (
        connect(url, open_timeout=TIMEOUT, close_timeout=0.5) as stuck,
        connect(url, open_timeout=TIMEOUT, close_timeout=0.5) as reader,
    ):

        def read() -> None:
            try:
                while True:
                    reader.recv(timeout=30)
            except ConnectionClosed as error:
                closed.append(error)

        reading = threading.Thread(target=read)
        reading.start()
        try:
            assert _wait_for(lambda: stream.stats().connected == 2)
            big = _row(0.0)
            big["notes"] = {"text": "x" * 200_000}
            for i in range(60):  # megabytes the stuck client never takes
                big["t"] = float(i)
                stream.write(big)
            assert _wait_for(lambda: stream.stats().dropped > 0)
            started = time.perf_counter()
            stream.stop(flush_s=1.0)  # even asked to flush: stop() itself does not wait
            took = time.perf_counter() - started
            assert took < 0.5, f"stop() took {took:.3f} s"
            assert not stream.running
            assert stream.join(10.0), "the server thread outlived its bound"
            reading.join(TIMEOUT)
            assert closed and closed[0].rcvd is not None
            assert (closed[0].rcvd.code, closed[0].rcvd.reason) == (STOP_CODE, STOP_REASON)
        finally:
            stuck.close_socket()
            reader.close_socket()
            reading.join(TIMEOUT)
    assert audit.entries()[-1].event == "stream-stopped"


# --- the audit log -------------------------------------------------------------------------


def test_a_flood_of_refused_handshakes_flushes_no_consent_record(tmp_path: Path) -> None:
    """3,000 handshakes without a token against a stream whose audit log is capped at
    16 kB: every consent record written before survives, the flood adds a few lines (one
    per peer and interval), every refusal is counted, and no audit write runs on the
    event loop."""
    audit = ThreadRecordingAudit(tmp_path / "audit.jsonl", max_bytes=16_384)
    for modality in (Modality.FACE, Modality.VOICE):
        audit.consent_granted(modality, "2")
        audit.consent_for_run(modality, "2", "--allow-camera")
    audit.consent_revoked(Modality.FACE, "2")
    consent_before = [e for e in audit.entries() if e.event.startswith("consent-")]
    lines_before = len(audit.path.read_text().splitlines())

    stream = EstimateStream(LOOPBACK, token=TOKEN, audit=audit, audit_every_s=0.5)
    stream.start()
    try:
        started = time.perf_counter()
        statuses = {handshake(stream.port) for _ in range(3000)}
        flood_s = time.perf_counter() - started
    finally:
        stream.close()
    assert statuses == {401, 429}  # no token, then rate-limited
    assert stream.stats().refused == 3000

    entries = audit.entries()
    consent_after = [e for e in entries if e.event.startswith("consent-")]
    assert consent_after == consent_before
    added = len(audit.path.read_text().splitlines()) - lines_before
    refusals = [e for e in entries if e.event == "stream-refused"]
    assert sum(e.details["count"] for e in refusals) == 3000
    assert all(e.details["peer"] == "127.0.0.1" for e in refusals)
    # start, stop, and one refusal line per interval of the flood
    assert added <= 2 + int(flood_s / 0.5) + 2 <= 40, (added, flood_s)
    assert "emoapp-stream" not in audit.threads  # never written on the event loop


def test_client_lines_are_written_off_the_event_loop(stream) -> None:
    with connect(f"ws://127.0.0.1:{stream.port}/?token={TOKEN}", open_timeout=TIMEOUT):
        assert _wait_for(lambda: stream.stats().connected == 1)
    assert handshake(stream.port) == 401
    stream.close()
    events = [e.event for e in stream.audit.entries()]
    assert events == [
        "stream-started",
        "stream-client",
        "stream-client",
        "stream-refused",
        "stream-stopped",
    ]
    assert "emoapp-stream" not in stream.audit.threads
