"""io.pyctrd.Container.OpenLog and Attach: D-Bus's log and attach streams, passed
as descriptors over Varlink."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from conftest import Daemon, run_coro

from integration.test_logs import daemon_fds, until_fds_back
from integration.test_varlink import CONTAINER, cli, create, sock  # noqa: F401
from integration.test_varlink_exec import FdClient, read_all

TIMEOUT = 30.0


def read_pipe(fd: int) -> bytes:
    seen = b""
    with os.fdopen(fd, "rb", 0) as pipe:
        while chunk := pipe.read(1 << 16):
            seen += chunk
    return seen


def texts(log: bytes) -> list[tuple[bytes, bytes]]:
    """(stream, text) of each record."""
    return [tuple(line.split(b" ", 2)[1:]) for line in log.splitlines()]  # type: ignore[misc]


def call_for_fd(client: FdClient, method: str, params: dict[str, object]) -> int:
    client.send(f"{CONTAINER}.{method}", params)
    reply, fds = client.receive_with_fds()
    assert "error" not in reply, reply
    assert len(fds) == 1 and reply["parameters"] == {"fd": 0}, (reply, fds)
    return fds[0]


def test_openlog_passes_the_log_and_follows_it(sock: Path,  # noqa: F811 (fixture)
                                               daemon: Daemon) -> None:
    cid = create(sock, "vl-openlog", ["sh", "-c", "echo one; echo two >&2; sleep 0.3; "
                                      "printf 'three\\377\\n'"])
    client = FdClient(sock)
    try:
        assert cli(sock, f"{CONTAINER}.Start", {"name": cid}).ok()
        followed = call_for_fd(client, "OpenLog", {"name": cid, "follow": True})
        # it ends once the container has exited, with every record
        records = texts(read_pipe(followed))
        assert records == [(b"stdout", b"one"), (b"stderr", b"two"),
                           (b"stdout", b"three\xff")]
        assert cli(sock, f"{CONTAINER}.Wait", {"name": cid}).reply == {"exit_code": 0}
        # without follow: what is there now (absent follow is false)
        baseline = daemon_fds(daemon.pid)
        assert texts(read_pipe(call_for_fd(client, "OpenLog", {"name": cid}))) == records
        run_coro(until_fds_back(daemon.pid, baseline))
    finally:
        client.sock.close()


def test_openlog_of_no_such_container_is_the_varlink_error(
        sock: Path) -> None:  # noqa: F811 (fixture)
    client = FdClient(sock)
    try:
        client.send(f"{CONTAINER}.OpenLog", {"name": "vl-none-such", "follow": False})
        reply, fds = client.receive_with_fds()
        assert reply["error"] == f"{CONTAINER}.NoSuchContainer" and fds == []
    finally:
        client.sock.close()


def test_attach_joins_stdin_and_output(sock: Path) -> None:  # noqa: F811 (fixture)
    cid = create(sock, "vl-attach", ["sh", "-c", "read line; echo got $line; exit 5"],
                 stdin=True)
    client = FdClient(sock)
    try:
        # an initialized container may be attached before Start: output from its first byte
        assert cli(sock, f"{CONTAINER}.Init", {"name": cid}).ok()
        conn = socket.socket(fileno=call_for_fd(client, "Attach",
                                                {"name": cid, "detach_keys": ""}))
        try:
            assert cli(sock, f"{CONTAINER}.Start", {"name": cid}).ok()
            conn.sendall(b"over varlink\n")
            assert read_all(conn) == b"got over varlink\n"
        finally:
            conn.close()
        assert cli(sock, f"{CONTAINER}.Wait", {"name": cid}).reply == {"exit_code": 5}
        # exited: nothing to attach to, as over D-Bus
        client.send(f"{CONTAINER}.Attach", {"name": cid})
        reply, fds = client.receive_with_fds()
        assert reply["error"] == f"{CONTAINER}.InvalidState" and fds == []
    finally:
        client.sock.close()
