"""A local WebSocket stream of estimates: the timeline rows, sent as they are made.

``emoapp live --no-gui --stream [HOST:]PORT`` and the window's File → Stream estimates…
start an :class:`EstimateStream`. It is a sink like the timeline writer: it takes the
very rows :func:`emoapp.recorded.timeline.row_from_estimate` builds (scores only: never a
frame, a sound or a text) and sends each one to every connected client as one JSON text
message. The row format is described by the JSON Schema ``resources/schema/
timeline-row.schema.json`` (:data:`SCHEMA_VERSION`); a client may ask for the
WebSocket subprotocol :data:`SUBPROTOCOL` to pin that version.

Privacy and safety (what a test checks is named in ``docs/guide/stream.md``):

* it listens on ``127.0.0.1`` unless another host is named (:func:`parse_address`
  reports that it is not loopback, for the caller to warn about);
* every client needs the token: ``?token=...`` in the URL or an ``Authorization:
  Bearer ...`` header; a client without it gets HTTP 401 and never a row. A generated
  token holds 192 random bits (:func:`new_token`); a given one must have at least
  :data:`MIN_TOKEN_CHARS` characters (:func:`check_token`), and may come from the
  environment (:data:`TOKEN_ENV`) or a file, so that it need not be on a command line;
* a handshake that carries an ``Origin`` header (what a browser sends for a web page's
  ``new WebSocket(...)``) is refused with HTTP 403 unless that origin was allowed, so a
  web page the person happens to open cannot try tokens against the stream;
* failed attempts are rate-limited per peer address (:class:`FailureLimiter`): past a
  small burst, a peer's handshakes are refused with HTTP 429, without looking at the
  token, until its allowance refills;
* start, stop and every client that connects or leaves go to the audit log: when, and
  from which address, never what was sent; refused handshakes are counted per peer
  address and written as one line per interval (``audit_every_s``). Every audit write
  happens on a thread of its own, never on the event loop that serves clients.

Stopping: :meth:`EstimateStream.stop` returns at once (it only asks the event loop to
shut down), so the window's thread never waits on a client. The loop then sends what
clients have queued (for at most ``flush_s``), closes every connection with code 1001
and the reason :data:`STOP_REASON`, aborts connections that have not closed after
``close_timeout_s``, and ends; :meth:`EstimateStream.join` waits for that, and for the
last audit lines.

Back-pressure: :meth:`EstimateStream.write` never waits. Each client has its own bounded
queue (``queue_size`` messages); when a client reads more slowly than rows come, the
oldest message in its queue is dropped and counted (:meth:`EstimateStream.stats`), so a
slow client sees the newest estimates and never slows the pipeline or the other clients.

The server runs the ``websockets`` asyncio server on its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from emoapp.core.errors import EmoappError

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

    from emoapp.privacy.audit import AuditLog

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
SCHEMA_VERSION = 1
"""The version of ``resources/schema/timeline-row.schema.json`` the rows follow."""
SUBPROTOCOL = f"emoapp.timeline.v{SCHEMA_VERSION}"
_MAX_CLIENTS = 32
TOKEN_BYTES = 24
"""A generated token holds this many random bytes (192 bits; 32 URL-safe characters)."""
MIN_TOKEN_CHARS = 16
"""A given token shorter than this is refused (a short token can be guessed)."""
TOKEN_ENV = "EMOAPP_STREAM_TOKEN"
"""The environment variable a token may come from (instead of ``--stream-token``)."""
STOP_CODE = 1001
STOP_REASON = "emoapp stream stopped"
"""The close code (1001, going away) and reason clients get when the stream stops."""
REFUSED = {
    "no token": HTTPStatus.UNAUTHORIZED,
    "wrong token": HTTPStatus.UNAUTHORIZED,
    "origin not allowed": HTTPStatus.FORBIDDEN,
    "rate limited": HTTPStatus.TOO_MANY_REQUESTS,
    "too many clients": HTTPStatus.SERVICE_UNAVAILABLE,
}
"""Why a handshake is refused, and the HTTP status it gets."""

log = logging.getLogger(__name__)


class StreamError(EmoappError):
    """The stream cannot start (bad address, port in use, websockets missing)."""


def schema_path() -> Path:
    """The JSON Schema of a timeline row (and of a stream message)."""
    from emoapp.registry import data_dir

    return data_dir("resources") / "schema" / "timeline-row.schema.json"


@dataclass(frozen=True)
class StreamAddress:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port if port is None else port}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text: str) -> StreamAddress:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> address; the host defaults to
    127.0.0.1. Port 0 picks a free port. Raises StreamError (one line)."""
    text = text.strip()
    host, port_text = DEFAULT_HOST, text
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        if not rest.startswith(":"):
            raise StreamError(f"--stream {text!r}: write an IPv6 host as [ADDRESS]:PORT")
        host, port_text = inside, rest[1:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    if not host:
        raise StreamError(f"--stream {text!r}: the host is empty")
    try:
        port = int(port_text)
    except ValueError as error:
        raise StreamError(f"--stream {text!r}: the port must be a number") from error
    if not 0 <= port <= 65535:
        raise StreamError(f"--stream {text!r}: the port must be between 0 and 65535")
    return StreamAddress(host, port)


def new_token() -> str:
    """A random token for one run: :data:`TOKEN_BYTES` random bytes (192 bits), as 32
    URL-safe characters."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def check_token(token: str, where: str = "--stream-token") -> str:
    """A given token, stripped; StreamError (one line) when it is empty, shorter than
    :data:`MIN_TOKEN_CHARS`, or holds spaces or control characters."""
    token = token.strip()
    if not token:
        raise StreamError(f"{where} must not be empty")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in token):
        raise StreamError(f"{where} must not hold spaces or control characters")
    if len(token) < MIN_TOKEN_CHARS:
        raise StreamError(
            f"{where} is {len(token)} characters long; a stream token needs at least "
            f"{MIN_TOKEN_CHARS} (leave it out and a random one is made)"
        )
    return token


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in a file (its first line, stripped), checked by :func:`check_token`."""
    where = f"--stream-token-file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise StreamError(f"{where}: cannot read: {why}") from error
    lines = text.splitlines()
    return check_token(lines[0] if lines else "", where)


def normalize_origin(text: str) -> str:
    """``scheme://host[:port]`` in lower case (``null`` stays ``null``); StreamError for
    anything else (a path, no scheme)."""
    origin = text.strip().rstrip("/").lower()
    if origin == "null":
        return origin
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise StreamError(
            f"--stream-allow-origin {text!r}: give an origin as SCHEME://HOST[:PORT] "
            "(e.g. http://localhost:3000)"
        )
    return f"{parts.scheme}://{parts.netloc}"


def token_of(request: Request) -> str | None:
    """The token a client sent: ``Authorization: Bearer T``, else ``?token=T``."""
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    values = parse_qs(urlsplit(request.path).query).get("token")
    return values[0] if values else None


class FailureLimiter:
    """Failed handshakes per peer address, as a token bucket: each address may fail
    ``burst`` times at once, then once every ``1 / per_s`` seconds. While an address has
    no allowance left its handshakes are refused without looking at the token, so
    guessing goes no faster than ``per_s`` tries a second. (Touched only on the event
    loop's thread.)"""

    def __init__(
        self,
        burst: int = 10,
        per_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_peers: int = 4096,
    ) -> None:
        if burst < 1 or per_s <= 0:
            raise ValueError("burst must be at least 1 and per_s positive")
        self.burst = burst
        self.per_s = per_s
        self._clock = clock
        self._max_peers = max_peers
        self._allowance: dict[str, tuple[float, float]] = {}

    def _level(self, peer: str, now: float) -> float:
        level, since = self._allowance.get(peer, (float(self.burst), now))
        return min(float(self.burst), level + (now - since) * self.per_s)

    def retry_after(self, peer: str) -> float:
        """0 when ``peer`` may try now, else the seconds until it may."""
        level = self._level(peer, self._clock())
        return 0.0 if level >= 1.0 else (1.0 - level) / self.per_s

    def failed(self, peer: str) -> None:
        """``peer`` failed once: it spends one of its allowance."""
        now = self._clock()
        self._allowance[peer] = (max(0.0, self._level(peer, now) - 1.0), now)
        if len(self._allowance) > self._max_peers:  # forget addresses that are whole again
            whole = [p for p in self._allowance if self._level(p, now) >= self.burst]
            for gone in whole:
                del self._allowance[gone]


@dataclass
class _Refusals:
    """Refused handshakes counted per peer address since the last audit line."""

    since: float = field(default_factory=time.monotonic)
    by_peer: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, peer: str, why: str) -> None:
        reasons = self.by_peer.setdefault(peer, {})
        reasons[why] = reasons.get(why, 0) + 1


class _AuditWriter:
    """Runs the stream's audit writes on a thread of its own, in order, so that the
    event loop never waits on the disk."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._queue: queue.SimpleQueue[Callable[[AuditLog], object] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="emoapp-stream-audit", daemon=True)
        self._thread.start()

    def put(self, write: Callable[[AuditLog], object]) -> None:
        self._queue.put(write)

    def close(self) -> None:
        """No more writes: the thread ends once the queued ones are done."""
        self._queue.put(None)

    def join(self, timeout_s: float) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (write := self._queue.get()) is not None:
            try:
                write(self.audit)
            except Exception:  # an audit write must never stop the stream (it says why)
                log.exception("stream audit write failed")


def _refusal_lines(refusals: _Refusals, now: float) -> Callable[[AuditLog], object]:
    seconds = max(0.0, now - refusals.since)

    def write(audit: AuditLog) -> None:
        for peer, reasons in refusals.by_peer.items():
            audit.stream_refused(peer, sum(reasons.values()), reasons, seconds)

    return write


@dataclass
class ClientStats:
    peer: str
    sent: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class StreamStats:
    """What the stream did so far."""

    connected: int
    """Clients connected now."""
    accepted: int
    refused: int
    messages: int
    """Messages sent, summed over clients."""
    dropped: int
    """Messages dropped for clients that read too slowly, summed over clients."""
    rows: int
    """Rows handed to :meth:`EstimateStream.write`."""


class _Client:
    """One connection's bounded queue (touched only on the event loop's thread)."""

    def __init__(self, peer: str, queue_size: int) -> None:
        self.stats = ClientStats(peer)
        self.queue: deque[str] = deque(maxlen=queue_size)
        self.ready = asyncio.Event()

    def push(self, message: str) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.stats.dropped += 1
        self.queue.append(message)
        self.ready.set()


class EstimateStream:
    """A WebSocket server sending each timeline row to every client (see the module).

    ``start()`` binds and returns once listening (raising :class:`StreamError` if it
    cannot); ``write(row)`` is thread-safe and never blocks; ``stop()`` asks the server
    to close every connection (code 1001, :data:`STOP_REASON`) and returns at once;
    ``join()`` waits until it has, and the audit lines are written; ``close()`` does
    both.
    """

    def __init__(
        self,
        address: StreamAddress | None = None,
        token: str | None = None,
        audit: AuditLog | None = None,
        queue_size: int = 64,
        allowed_origins: Iterable[str] = (),
        token_source: str = "given",
        limiter: FailureLimiter | None = None,
        audit_every_s: float = 10.0,
        close_timeout_s: float = 1.0,
    ) -> None:
        """``token``: the token clients must send (None: a random one); it must have at
        least :data:`MIN_TOKEN_CHARS` characters. ``token_source``: where a given token
        came from, for the audit log (``given``, ``environment``, ``file``).
        ``allowed_origins``: the ``Origin`` values a handshake may carry (none: a
        handshake with an ``Origin`` header is refused). ``audit_every_s``: how often
        refused handshakes are written to the audit log (one line per peer address)."""
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if audit_every_s <= 0 or close_timeout_s <= 0:
            raise ValueError("audit_every_s and close_timeout_s must be positive")
        self.address = address or StreamAddress(DEFAULT_HOST, DEFAULT_PORT)
        self.token_given = token is not None
        self.token = check_token(token) if token is not None else new_token()
        self.token_source = token_source if token is not None else "generated"
        self.allowed_origins = frozenset(normalize_origin(o) for o in allowed_origins)
        self.audit = audit
        self.queue_size = queue_size
        self.limiter = limiter or FailureLimiter()
        self.audit_every_s = audit_every_s
        self.close_timeout_s = close_timeout_s
        self.port: int | None = None
        """The port listened on (the chosen one when the address says 0)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._auditor: _AuditWriter | None = None
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._accepted = 0
        self._refused = 0
        self._rows = 0
        self._gone: list[ClientStats] = []
        self._refusals = _Refusals()
        self._stopping: asyncio.Event | None = None
        self._flush_s = 0.0
        self._stop_asked = False
        self._stopped = threading.Event()

    # -- life cycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.address.url(self.port)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop_asked and not self._stopped.is_set()

    def start(self, timeout_s: float = 10.0) -> None:
        try:
            from websockets.asyncio.server import serve
        except ImportError as error:  # pragma: no cover - a declared dependency
            raise StreamError(
                "the stream needs the websockets package: pip install websockets"
            ) from error
        if self._thread is not None:
            raise StreamError("the stream is already running")
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._stopping = asyncio.Event()
            try:
                self._server = await serve(
                    self._handle,
                    self.address.host,
                    self.address.port,
                    process_request=self._check_handshake,
                    subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                    select_subprotocol=_select_subprotocol,
                    max_size=4096,  # clients have nothing to say; keep what they send small
                    compression=None,
                    close_timeout=self.close_timeout_s,
                )
            except OSError as error:
                failure.append(error)
                started.set()
                return
            sockets = self._server.sockets
            self.port = int(sockets[0].getsockname()[1]) if sockets else self.address.port
            started.set()
            audit_lines = asyncio.ensure_future(self._audit_refusals_every(self.audit_every_s))
            try:
                await self._stopping.wait()
                await self._shut_down(self._server)
            finally:
                audit_lines.cancel()
                self._audit_refusals()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(main())
            finally:
                # Whatever a cut connection left (a close that never finished) ends here.
                left = asyncio.all_tasks(loop)
                for task in left:
                    task.cancel()
                with contextlib.suppress(RuntimeError):
                    loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
                self._stopped.set()
                self._finish_audit()

        if self.audit is not None:
            self._auditor = _AuditWriter(self.audit)
        self._thread = threading.Thread(target=run, name="emoapp-stream", daemon=True)
        self._thread.start()
        if not started.wait(timeout_s):
            raise StreamError(f"the stream did not start within {timeout_s:g} s")
        if failure:
            self._thread.join(timeout_s)
            self._thread = None
            if self._auditor is not None:
                self._auditor.close()
                self._auditor.join(timeout_s)
                self._auditor = None
            problem = failure[0]
            why = (
                problem.strerror
                if isinstance(problem, OSError) and problem.strerror
                else str(problem)
            )
            raise StreamError(f"cannot listen on {self.address.url()}: {why}")
        if self._auditor is not None:
            url, loopback, source = self.url, self.address.loopback, self.token_source
            self._auditor.put(lambda audit: audit.stream_started(url, loopback, source))

    def stop(self, flush_s: float = 0.0) -> StreamStats:
        """Ask the server to stop and return at once (it never waits on a client): the
        server sends what clients have queued for at most ``flush_s``, closes every
        connection (code 1001, :data:`STOP_REASON`; one that has not closed within
        ``close_timeout_s`` is cut) and ends. Returns the figures so far; :meth:`join`
        waits for the end (and the final figures, also in :meth:`stats`)."""
        loop, stopping = self._loop, self._stopping
        if self._thread is None or self._stop_asked:
            return self.stats()
        self._stop_asked = True
        self._flush_s = max(0.0, float(flush_s))
        if loop is not None and stopping is not None and not self._stopped.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stopping.set)
        return self.stats()

    def join(self, timeout_s: float = 10.0) -> bool:
        """Wait (at most ``timeout_s``) until the server thread has ended and the audit
        lines are written; True when they have."""
        deadline = time.monotonic() + timeout_s
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
        auditor = self._auditor
        return auditor is None or auditor.join(max(0.0, deadline - time.monotonic()))

    def close(self, flush_s: float = 1.0, timeout_s: float = 10.0) -> StreamStats:
        """Stop (sending what is queued for at most ``flush_s``) and wait for the end."""
        self.stop(flush_s)
        self.join(timeout_s)
        return self.stats()

    def __enter__(self) -> EstimateStream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _finish_audit(self) -> None:
        """On the server thread, after its loop has closed: the last audit line, then the
        audit thread ends."""
        auditor = self._auditor
        if auditor is None:
            return
        stats = self.stats()
        url = self.url
        auditor.put(
            lambda audit: audit.stream_stopped(
                url, stats.accepted, stats.refused, stats.messages, stats.dropped
            )
        )
        auditor.close()

    # -- rows in ----------------------------------------------------------------------

    def write(self, row: Mapping[str, Any]) -> None:
        """Queue one row for every client; never blocks (a slow client loses its oldest
        queued message instead)."""
        loop = self._loop
        if loop is None or self._stop_asked or self._stopped.is_set():
            return
        message = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._rows += 1
        try:
            loop.call_soon_threadsafe(self._broadcast, message)
        except RuntimeError:  # the loop closed meanwhile: the stream is stopping
            return

    def stats(self) -> StreamStats:
        with self._lock:
            every = [c.stats for c in self._clients] + self._gone
            return StreamStats(
                connected=len(self._clients),
                accepted=self._accepted,
                refused=self._refused,
                messages=sum(s.sent for s in every),
                dropped=sum(s.dropped for s in every),
                rows=self._rows,
            )

    # -- on the event loop ------------------------------------------------------------

    async def _shut_down(self, server: Server) -> None:
        """Flush for at most ``_flush_s``, then close every connection (cutting those
        that do not close in time) and the server."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._flush_s
        while any(c.queue for c in self._clients) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        server.close(close_connections=True, code=STOP_CODE, reason=STOP_REASON)
        try:
            await asyncio.wait_for(server.wait_closed(), self.close_timeout_s + 0.5)
        except TimeoutError:
            for connection in list(server.connections):
                connection.transport.abort()  # a client that neither reads nor closes
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def _broadcast(self, message: str) -> None:
        for client in list(self._clients):
            client.push(message)

    def _audit(self, write: Callable[[AuditLog], object]) -> None:
        if self._auditor is not None:
            self._auditor.put(write)

    def _audit_refusals(self) -> None:
        """Hand the refusals counted so far to the audit thread (one line per peer)."""
        refusals, self._refusals = self._refusals, _Refusals()
        if refusals.by_peer:
            self._audit(_refusal_lines(refusals, time.monotonic()))

    async def _audit_refusals_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self._audit_refusals()

    def _why_refused(self, host: str, request: Request) -> str:
        origin = request.headers.get("Origin")
        if origin is not None:
            try:
                allowed = normalize_origin(origin) in self.allowed_origins
            except StreamError:
                allowed = False
            if not allowed:
                return "origin not allowed"  # not counted against the peer: see the guide
        if self.limiter.retry_after(host) > 0:
            return "rate limited"
        given = token_of(request)
        if given is None:
            self.limiter.failed(host)
            return "no token"
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            self.limiter.failed(host)
            return "wrong token"
        if len(self._clients) >= _MAX_CLIENTS:
            return "too many clients"
        return ""

    def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        host = _peer_host(connection)
        why = self._why_refused(host, request)
        if not why:
            return None
        with self._lock:
            self._refused += 1
        self._refusals.add(host, why)
        status = REFUSED[why]
        response = connection.respond(status, f"emoapp stream: {why}\n")
        if status is HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="emoapp"'
        elif status is HTTPStatus.TOO_MANY_REQUESTS:
            wait = self.limiter.retry_after(host)
            response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        client = _Client(_peer(connection), self.queue_size)
        with self._lock:
            self._clients.add(client)
            self._accepted += 1
        peer = client.stats.peer
        self._audit(lambda audit: audit.stream_client("connected", peer))

        async def drain_incoming() -> None:
            async for _ in connection:  # clients have nothing to say; read and forget
                pass

        reader = asyncio.ensure_future(drain_incoming())
        try:
            while not reader.done():
                ready = asyncio.ensure_future(client.ready.wait())
                await asyncio.wait({ready, reader}, return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                client.ready.clear()
                while client.queue:
                    message = client.queue.popleft()
                    await connection.send(message)
                    client.stats.sent += 1
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            with self._lock:
                self._clients.discard(client)
                self._gone.append(client.stats)
            self._audit(lambda audit: audit.stream_client("left", peer))


def _select_subprotocol(connection: ServerConnection, offered: Any) -> Any:
    """Pick :data:`SUBPROTOCOL` when offered; a client offering none gets none (and the
    same rows); a client offering only others is refused by websockets."""
    if not offered:
        return None
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def _peer_host(connection: ServerConnection) -> str:
    """The peer's address without its port (what refusals are counted and limited by)."""
    address = connection.remote_address
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address)


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


class RowSinks:
    """Several row sinks behind one ``write`` (a timeline file and a stream)."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def write(self, row: Mapping[str, Any]) -> None:
        for sink in self.sinks:
            sink.write(row)
