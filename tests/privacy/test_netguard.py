"""The network guard: any connection or name lookup, in any thread, fails the test,
even when the code under test swallows the error."""

from __future__ import annotations

import _socket
import contextlib
import socket
import threading
import urllib.error
import urllib.request

import pytest

from emoapp.testing import guardedrun, netguard
from emoapp.testing.guardedrun import GUARD_EXIT_STATUS
from emoapp.testing.netguard import NetworkAccessError, NetworkGuard


@pytest.fixture
def local_server():
    """A listening TCP socket on loopback, made before any guard is active."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    yield server
    server.close()


def assert_nothing_arrived(server: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        server.accept()


def test_a_connection_even_to_loopback_is_refused(local_server):
    address = local_server.getsockname()
    with pytest.raises(NetworkAccessError, match=r"socket\.create_connection"), NetworkGuard():
        socket.create_connection(address, timeout=1)
    with (
        pytest.raises(NetworkAccessError, match=r"socket\.connect"),
        NetworkGuard(),
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
    ):
        sock.connect(address)
    with (
        pytest.raises(NetworkAccessError, match=r"socket\.connect_ex"),
        NetworkGuard(),
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
    ):
        sock.connect_ex(address)
    assert_nothing_arrived(local_server)


def test_name_lookups_and_udp_are_refused():
    for attempt in (
        lambda: socket.getaddrinfo("example.com", 443),
        lambda: socket.gethostbyname("example.com"),
        lambda: socket.gethostbyname_ex("example.com"),
        lambda: socket.gethostbyaddr("127.0.0.1"),
    ):
        guard = NetworkGuard()
        with pytest.raises(NetworkAccessError), guard:
            attempt()
        assert len(guard.attempts) == 1
    with (
        pytest.raises(NetworkAccessError, match="sendto"),
        NetworkGuard(),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        sock.sendto(b"x", ("127.0.0.1", 9))


def test_urllib_cannot_reach_the_hub():
    with pytest.raises(NetworkAccessError), NetworkGuard():
        urllib.request.urlopen("https://huggingface.co/api/models", timeout=1)


def test_a_swallowed_attempt_still_fails_the_block(local_server):
    """Libraries that retry or fall back to a cache on any error cannot hide an attempt."""
    guard = NetworkGuard()
    with (
        pytest.raises(NetworkAccessError, match=r"1 network attempt\(s\)"),
        guard,
        contextlib.suppress(Exception),  # the point: code that hides every error
    ):
        socket.create_connection(local_server.getsockname(), timeout=1)
    assert guard.attempts[0].call == "socket.create_connection"
    assert "test_netguard.py" in guard.attempts[0].where
    assert_nothing_arrived(local_server)


def test_attempts_from_other_threads_are_caught(local_server):
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            socket.create_connection(local_server.getsockname(), timeout=1)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    guard = NetworkGuard()
    with pytest.raises(NetworkAccessError), guard:
        thread = threading.Thread(target=worker, name="encoder-worker")
        thread.start()
        thread.join()
    assert isinstance(errors[0], NetworkAccessError)
    assert guard.attempts[0].thread == "encoder-worker"


def test_the_c_level_socket_module_is_caught_by_the_audit_hook(local_server):
    """Code holding the original functions (or using _socket) cannot slip past."""
    guard = NetworkGuard()
    with pytest.raises(NetworkAccessError), guard:
        raw = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            raw.connect(local_server.getsockname())
        finally:
            raw.close()
    assert guard.attempts[0].call.endswith("(audit)")
    guard = NetworkGuard()
    with pytest.raises(NetworkAccessError), guard:
        _socket.getaddrinfo("example.com", 80)
    assert_nothing_arrived(local_server)


def test_local_unix_sockets_are_not_network(tmp_path):
    with NetworkGuard() as guard:
        left, right = socket.socketpair()
        left.sendall(b"ok")
        assert right.recv(2) == b"ok"
        left.close()
        right.close()
    assert guard.attempts == []
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    try:
        with NetworkGuard(), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
        with (
            pytest.raises(NetworkAccessError),
            NetworkGuard(allow_unix=False),
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client,
        ):
            client.connect(path)
    finally:
        server.close()


def test_the_socket_module_is_restored_afterwards(local_server):
    originals = (socket.socket.connect, socket.getaddrinfo, socket.create_connection)
    with NetworkGuard(), NetworkGuard():  # nested guards
        assert socket.getaddrinfo is not originals[1]
    assert (socket.socket.connect, socket.getaddrinfo, socket.create_connection) == originals
    # and the audit hook stays quiet once no guard is active
    conn = socket.create_connection(local_server.getsockname(), timeout=1)
    accepted, _ = local_server.accept()
    accepted.close()
    conn.close()


def test_the_fixture_and_the_context_manager(no_network):
    assert isinstance(no_network, NetworkGuard)
    with netguard.no_network() as guard:
        pass
    assert guard.attempts == []


def test_the_guarded_command_runner_reports_attempts(monkeypatch, capsys, local_server):
    import emoapp.cli

    def sneaky_main(argv):
        # swallows everything, as a careless library might
        with contextlib.suppress(urllib.error.URLError, OSError, AssertionError):
            urllib.request.urlopen(f"http://127.0.0.1:{local_server.getsockname()[1]}/", timeout=1)
        return 0

    monkeypatch.setattr(emoapp.cli, "main", sneaky_main)
    assert guardedrun.main(["--", "analyze"]) == GUARD_EXIT_STATUS
    assert "emoapp-guardedrun: 1 network attempt(s)" in capsys.readouterr().err

    monkeypatch.setattr(emoapp.cli, "main", lambda argv: 3)
    assert guardedrun.main(["analyze"]) == 3
    assert_nothing_arrived(local_server)
