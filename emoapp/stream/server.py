"""A local WebSocket stream of estimates: the timeline rows, sent as they are made.

``emoapp live --no-gui --stream [HOST:]PORT`` and the window's File → Stream estimates…
start an :class:`EstimateStream`. It is a sink like the timeline writer: it takes the
very rows :func:`emoapp.recorded.timeline.row_from_estimate` builds (scores only: never a
frame, a sound or a text) and sends each one to every connected client as one JSON text
message. The row format is described by the JSON Schema ``resources/schema/
timeline-row.schema.json`` (:data:`SCHEMA_VERSION`); a client may ask for the
WebSocket subprotocol :data:`SUBPROTOCOL` to pin that version.

Privacy and safety:

* it listens on ``127.0.0.1`` unless another host is named (:func:`parse_address`
  reports that it is not loopback, for the caller to warn about);
* every client needs the token (random per run, or given): ``?token=...`` in the URL or
  an ``Authorization: Bearer ...`` header; a client without it gets HTTP 401 and never
  a row;
* start, stop and every client connection (accepted, refused, left) go to the audit log:
  when, and from which address, never what was sent.

Back-pressure: :meth:`EstimateStream.write` never waits. Each client has its own bounded
queue (``queue_size`` messages); when a client reads more slowly than rows come, the
oldest message in its queue is dropped and counted (:meth:`EstimateStream.stats`), so a
slow client sees the newest estimates and never slows the pipeline or the other clients.

The server runs the ``websockets`` asyncio server on its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import ipaddress
import json
import secrets
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
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
    """A random token for one run (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def token_of(request: Request) -> str | None:
    """The token a client sent: ``Authorization: Bearer T``, else ``?token=T``."""
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    values = parse_qs(urlsplit(request.path).query).get("token")
    return values[0] if values else None


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
    cannot); ``write(row)`` is thread-safe and never blocks; ``stop()`` closes every
    connection and the server, and writes the audit line.
    """

    def __init__(
        self,
        address: StreamAddress | None = None,
        token: str | None = None,
        audit: AuditLog | None = None,
        queue_size: int = 64,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if token is not None and not token.strip():
            raise StreamError("--stream-token must not be empty")
        self.address = address or StreamAddress(DEFAULT_HOST, DEFAULT_PORT)
        self.token_given = token is not None
        self.token = token.strip() if token is not None else new_token()
        self.audit = audit
        self.queue_size = queue_size
        self.port: int | None = None
        """The port listened on (the chosen one when the address says 0)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._accepted = 0
        self._refused = 0
        self._rows = 0
        self._gone: list[ClientStats] = []
        self._stopped = threading.Event()

    # -- life cycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.address.url(self.port)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopped.is_set()

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
            try:
                self._server = await serve(
                    self._handle,
                    self.address.host,
                    self.address.port,
                    process_request=self._check_token,
                    subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                    select_subprotocol=_select_subprotocol,
                    max_size=4096,  # clients have nothing to say; keep what they send small
                    compression=None,
                    close_timeout=2,
                )
            except OSError as error:
                failure.append(error)
                started.set()
                return
            sockets = self._server.sockets
            self.port = int(sockets[0].getsockname()[1]) if sockets else self.address.port
            started.set()
            await self._server.wait_closed()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(main())
            finally:
                loop.close()
                self._stopped.set()

        self._thread = threading.Thread(target=run, name="emoapp-stream", daemon=True)
        self._thread.start()
        if not started.wait(timeout_s):
            raise StreamError(f"the stream did not start within {timeout_s:g} s")
        if failure:
            self._thread.join(timeout_s)
            self._thread = None
            problem = failure[0]
            why = (
                problem.strerror
                if isinstance(problem, OSError) and problem.strerror
                else str(problem)
            )
            raise StreamError(f"cannot listen on {self.address.url()}: {why}")
        if self.audit is not None:
            self.audit.stream_started(
                self.url, self.address.loopback, "given" if self.token_given else "generated"
            )

    def stop(self, timeout_s: float = 5.0, flush_s: float = 1.0) -> StreamStats:
        """Send what clients have queued (for at most ``flush_s``), then close every
        connection and the server; returns the final figures."""
        thread, loop, server = self._thread, self._loop, self._server
        if thread is None:
            return self.stats()
        if loop is not None and server is not None and not self._stopped.is_set():
            try:
                flushed = asyncio.run_coroutine_threadsafe(self._flush(flush_s), loop)
                flushed.result(flush_s + 1.0)
            except (RuntimeError, TimeoutError, concurrent.futures.TimeoutError):
                pass  # a client that does not read keeps what it has not got
            loop.call_soon_threadsafe(server.close)
        thread.join(timeout_s)
        self._thread = None
        stats = self.stats()
        if self.audit is not None:
            self.audit.stream_stopped(
                self.url, stats.accepted, stats.refused, stats.messages, stats.dropped
            )
        return stats

    def __enter__(self) -> EstimateStream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- rows in ----------------------------------------------------------------------

    def write(self, row: Mapping[str, Any]) -> None:
        """Queue one row for every client; never blocks (a slow client loses its oldest
        queued message instead)."""
        loop = self._loop
        if loop is None or self._stopped.is_set():
            return
        message = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._rows += 1
        try:
            loop.call_soon_threadsafe(self._broadcast, message)
        except RuntimeError:  # the loop closed meanwhile: the stream is stopping
            return

    def close(self) -> None:
        """Alias of :meth:`stop` (the timeline writer's name)."""
        self.stop()

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

    async def _flush(self, within_s: float) -> None:
        """Wait until every client's queue is sent, for at most ``within_s``."""
        deadline = asyncio.get_running_loop().time() + within_s
        while any(c.queue for c in self._clients):
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.01)

    def _broadcast(self, message: str) -> None:
        for client in list(self._clients):
            client.push(message)

    def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        peer = _peer(connection)
        given = token_of(request)
        why = ""
        if given is None:
            why = "no token"
        elif not hmac.compare_digest(given.encode(), self.token.encode()):
            why = "wrong token"
        elif len(self._clients) >= _MAX_CLIENTS:
            why = "too many clients"
        if not why:
            return None
        with self._lock:
            self._refused += 1
        if self.audit is not None:
            self.audit.stream_client("refused", peer, why)
        status = (
            HTTPStatus.SERVICE_UNAVAILABLE if why == "too many clients" else HTTPStatus.UNAUTHORIZED
        )
        response = connection.respond(status, f"emoapp stream: {why}\n")
        if status is HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="emoapp"'
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        client = _Client(_peer(connection), self.queue_size)
        with self._lock:
            self._clients.add(client)
            self._accepted += 1
        if self.audit is not None:
            self.audit.stream_client("connected", client.stats.peer)

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
            if self.audit is not None:
                self.audit.stream_client("left", client.stats.peer)


def _select_subprotocol(connection: ServerConnection, offered: Any) -> Any:
    """Pick :data:`SUBPROTOCOL` when offered; a client offering none gets none (and the
    same rows); a client offering only others is refused by websockets."""
    if not offered:
        return None
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


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
