"""Prove that a run sends nothing: fail on any network connection or name lookup.

:class:`NetworkGuard` is a context manager (and the core of the ``no_network`` test
fixture). While it is active, in every thread of the process:

- ``socket.socket.connect`` / ``connect_ex`` / ``sendto`` / ``sendmsg`` / ``bind`` on any
  socket but a Unix-domain one (IPv4 and IPv6, loopback included), ``socket.create_connection``,
  ``socket.getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``, ``gethostbyaddr`` and
  ``getnameinfo`` are replaced by functions that record the attempt and raise
  :class:`NetworkAccessError`;
- a :func:`sys.addaudithook` hook sees the same operations on the C level (the
  ``socket.*`` audit events), so code that kept a reference to the original functions,
  or used ``_socket`` directly, is caught too.

Code may swallow the exception (a library that retries, or falls back to a cache, on any
error), so every attempt is also recorded, and leaving the ``with`` block raises
:class:`NetworkAccessError` listing them all. Local sockets (``AF_UNIX``, e.g. a
``socketpair`` or D-Bus) are not network and are allowed unless ``allow_unix=False``.

What it cannot see: connections made by native code that does not go through Python's
socket module (Qt's own network stack, libcurl, a subprocess). emoapp uses none of
these for its own work; a test of the whole window should also run under a network
namespace where one is available.

:mod:`emoapp.testing.guardedrun` runs a whole ``emoapp`` command under a guard in a fresh
process.
"""

from __future__ import annotations

import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_METHODS = ("connect", "connect_ex", "sendto", "sendmsg", "bind")
_FUNCTIONS = (
    "create_connection",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_ex",
    "gethostbyaddr",
    "getnameinfo",
)
_SOCKET_EVENTS = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind"}
"""Audit events whose first argument is the socket."""
_AUDIT_EVENTS = {
    "socket.connect",
    "socket.sendto",
    "socket.sendmsg",
    "socket.bind",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
}


class NetworkAccessError(AssertionError):
    """Something tried to use the network while a NetworkGuard was active.

    An AssertionError, so that ``except OSError`` (how network code handles an offline
    machine) does not swallow it and pytest reports it as a failure."""


@dataclass(frozen=True)
class NetworkAttempt:
    """One blocked attempt."""

    call: str
    target: str
    thread: str
    where: str
    """The innermost frames of the caller, outside this module."""

    def describe(self) -> str:
        return f"{self.call}({self.target}) in thread {self.thread!r} at {self.where}"


class NetworkGuard:
    """Record and refuse every network operation while active (see the module docstring)."""

    def __init__(self, allow_unix: bool = True) -> None:
        self.allow_unix = allow_unix
        self.attempts: list[NetworkAttempt] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Begin refusing (what ``with`` does on entry)."""
        _activate(self)

    def stop(self) -> None:
        """Stop refusing, without checking (``with`` also calls :meth:`check`)."""
        _deactivate(self)

    def __enter__(self) -> NetworkGuard:
        self.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop()
        if exc_type is None:
            self.check()

    def check(self) -> None:
        """Raise NetworkAccessError when any attempt was recorded."""
        with self._lock:
            attempts = list(self.attempts)
        if attempts:
            lines = "\n  ".join(a.describe() for a in attempts[:20])
            more = f"\n  ... and {len(attempts) - 20} more" if len(attempts) > 20 else ""
            raise NetworkAccessError(
                f"{len(attempts)} network attempt(s) while none was allowed:\n  {lines}{more}"
            )

    def _record(self, call: str, target: str) -> NetworkAttempt:
        attempt = NetworkAttempt(call, target, threading.current_thread().name, _caller())
        with self._lock:
            self.attempts.append(attempt)
        return attempt


# --- process-wide patching ----------------------------------------------------------------

_state_lock = threading.RLock()
_active: list[NetworkGuard] = []
_originals: dict[tuple[Any, str], Any] = {}
_hook_installed = False
_in_wrapper = threading.local()


def _is_local(sock: Any) -> bool:
    """A Unix-domain socket: local IPC, not network. Every other family (IPv4, IPv6,
    raw packet, Bluetooth...) counts as network."""
    unix = getattr(socket, "AF_UNIX", None)  # absent on some Windows builds
    return unix is not None and getattr(sock, "family", None) == unix


def _refuse(call: str, target: Any, sock: Any = None) -> bool:
    """Record ``call`` on every active guard; True when it must be refused."""
    with _state_lock:
        guards = list(_active)
    refused = False
    for guard in guards:
        if sock is not None and _is_local(sock) and guard.allow_unix:
            continue
        guard._record(call, _target_text(target))
        refused = True
    return refused


def _target_text(target: Any) -> str:
    text = repr(target)
    return text if len(text) <= 120 else text[:117] + "..."


def _method_wrapper(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        target = (
            (args[0] if name in ("connect", "connect_ex", "bind") else args[-1]) if args else ""
        )
        if _refuse(f"socket.{name}", target, self):
            raise NetworkAccessError(f"network access blocked: socket.{name}({target!r})")
        _in_wrapper.active = True
        try:
            return original(self, *args, **kwargs)
        finally:
            _in_wrapper.active = False

    guarded.__name__ = name
    guarded.__wrapped__ = original  # type: ignore[attr-defined]
    return guarded


def _function_wrapper(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        target = args[0] if args else kwargs
        if _refuse(f"socket.{name}", target):
            raise NetworkAccessError(f"network access blocked: socket.{name}({target!r})")
        return original(*args, **kwargs)

    guarded.__name__ = name
    guarded.__wrapped__ = original  # type: ignore[attr-defined]
    return guarded


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _AUDIT_EVENTS or not _active or getattr(_in_wrapper, "active", False):
        return
    sock = (
        args[0]
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind")
        else None
    )
    target = args[1] if sock is not None and len(args) > 1 else (args[0] if args else "")
    if _refuse(f"{event} (audit)", target, sock):
        raise NetworkAccessError(f"network access blocked: {event}({target!r})")


def _activate(guard: NetworkGuard) -> None:
    global _hook_installed
    with _state_lock:
        if not _active:
            for name in _METHODS:
                original = getattr(socket.socket, name)
                _originals[(socket.socket, name)] = original
                setattr(socket.socket, name, _method_wrapper(name, original))
            for name in _FUNCTIONS:
                original = getattr(socket, name)
                _originals[(socket, name)] = original
                setattr(socket, name, _function_wrapper(name, original))
        if not _hook_installed:
            # Audit hooks cannot be removed; this one does nothing while no guard is active.
            sys.addaudithook(_audit_hook)
            _hook_installed = True
        _active.append(guard)


def _deactivate(guard: NetworkGuard) -> None:
    with _state_lock:
        if guard in _active:
            _active.remove(guard)
        if not _active:
            for (owner, name), original in _originals.items():
                setattr(owner, name, original)
            _originals.clear()


def _caller() -> str:
    frames = [f for f in traceback.extract_stack()[:-1] if f.filename != __file__]
    return " <- ".join(f"{f.filename}:{f.lineno} {f.name}" for f in reversed(frames[-3:]))


@contextmanager
def no_network(allow_unix: bool = True) -> Iterator[NetworkGuard]:
    """``with no_network() as guard:`` fails on any network use inside the block."""
    with NetworkGuard(allow_unix=allow_unix) as guard:
        yield guard
