"""io.pyctrd.Container.Exec*: exec over Varlink, the stdio socket passed as a descriptor."""

from __future__ import annotations

import array
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_coro

from integration.test_logs import daemon_fds, until_fds_back
from integration.test_varlink import CONTAINER, RawClient, cli, create, sock  # noqa: F401

TIMEOUT = 30.0


class FdClient(RawClient):
    """RawClient that keeps the descriptors a reply carries."""

    def receive_with_fds(self) -> tuple[dict[str, Any], list[int]]:
        fds: list[int] = []
        while b"\0" not in self._buffer:
            data, ancdata, _flags, _addr = self.sock.recvmsg(
                1 << 16, socket.CMSG_SPACE(4 * array.array("i").itemsize))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    received = array.array("i")
                    received.frombytes(payload[:len(payload) - len(payload) % 4])
                    fds += list(received)
            assert data, "the daemon hung up"
            self._buffer += data
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message)), fds


@pytest.fixture
def running(sock: Path) -> Iterator[tuple[Path, str]]:  # noqa: F811 (fixture)
    cid = create(sock, "vl-exec", ["sleep", "1000"])
    assert cli(sock, f"{CONTAINER}.Start", {"name": cid}).ok()
    yield sock, cid


def read_all(conn: socket.socket) -> bytes:
    conn.settimeout(TIMEOUT)
    seen = b""
    while chunk := conn.recv(1 << 16):
        seen += chunk
    return seen


def test_exec_passes_stdio_and_reports_the_exit(running: tuple[Path, str]) -> None:
    path, cid = running
    client = FdClient(path)
    try:
        client.send(f"{CONTAINER}.Exec", {"name": cid, "command": ["sh", "-c", "cat; exit 6"],
                                          "options": {"stdin": True}})
        reply, fds = client.receive_with_fds()
        assert "error" not in reply, reply
        params = reply["parameters"]
        assert len(fds) == 1 and params["stdio"] == 0 and len(params["id"]) == 64
        conn = socket.socket(fileno=fds[0])
        try:
            conn.sendall(b"via varlink\n")
            conn.shutdown(socket.SHUT_WR)
            assert read_all(conn) == b"via varlink\n"
        finally:
            conn.close()
        number = params["session"]
        assert client.call(f"{CONTAINER}.ExecWait", {"name": cid, "session": number}
                           )["parameters"] == {"exit_code": 6}
        info = client.call(f"{CONTAINER}.ExecGet", {"name": cid, "session": number}
                           )["parameters"]["session"]
        assert info["state"] == "exited" and info["exit_code"] == 6 and info["pid"] == 0
        assert client.call(f"{CONTAINER}.ExecRemove", {"name": cid, "session": number}
                           ).get("error") is None
        gone = client.call(f"{CONTAINER}.ExecGet", {"name": cid, "session": number})
        assert gone["error"] == f"{CONTAINER}.InvalidArgument"
    finally:
        client.close()


def test_exec_watch_follows_a_session_to_its_exit(running: tuple[Path, str]) -> None:
    path, cid = running
    client = FdClient(path)
    try:
        client.send(f"{CONTAINER}.Exec", {"name": cid, "command": ["sleep", "1000"]})
        reply, fds = client.receive_with_fds()
        for fd in fds:
            socket.socket(fileno=fd).close()
        number = reply["parameters"]["session"]
        client.send(f"{CONTAINER}.ExecWatch", {"name": cid, "session": number}, more=True)
        first = client.receive()
        assert first is not None and first.get("continues") is True
        assert first["parameters"]["session"]["state"] == "running"
        other = RawClient(path)
        try:
            assert other.call(f"{CONTAINER}.ExecKill", {"name": cid, "session": number,
                                                        "signal": "TERM"}).get("error") is None
        finally:
            other.close()
        last = client.receive()
        assert last is not None and not last.get("continues")
        assert last["parameters"]["session"]["exit_code"] == 143
    finally:
        client.close()


def test_exec_in_a_created_container_is_invalid_state(sock: Path) -> None:  # noqa: F811
    cid = create(sock, "vl-exec-created", ["sleep", "1000"])
    result = cli(sock, f"{CONTAINER}.Exec", {"name": cid, "command": ["true"]})
    assert result.error_name() == "InvalidState"


def test_no_descriptor_left_behind(running: tuple[Path, str], daemon: Any) -> None:
    path, cid = running
    client = FdClient(path)
    try:
        def one() -> None:
            client.send(f"{CONTAINER}.Exec", {"name": cid, "command": ["echo", "x"]})
            reply, fds = client.receive_with_fds()
            conn = socket.socket(fileno=fds[0])
            try:
                assert read_all(conn) == b"x\n"
            finally:
                conn.close()
            params = {"name": cid, "session": reply["parameters"]["session"]}
            assert client.call(f"{CONTAINER}.ExecWait", params)["parameters"]["exit_code"] == 0
            assert client.call(f"{CONTAINER}.ExecRemove", params).get("error") is None

        one()
        baseline = daemon_fds(daemon.pid)
        for _ in range(5):
            one()
        run_coro(until_fds_back(daemon.pid, baseline))
    finally:
        client.close()


def test_exec_output_relays_stdio_as_replies(running: tuple[Path, str]) -> None:
    """ExecOutput: no descriptor; stdin given whole, the output as `more` replies, the
    exit code in the last, the session removed after."""
    path, cid = running
    client = FdClient(path)
    try:
        client.send(f"{CONTAINER}.ExecOutput",
                    {"name": cid, "command": ["sh", "-c", "cat; echo err >&2; exit 3"],
                     "stdin": "relayed\n"}, more=True)
        output = ""
        for _ in range(100):  # bounded: a reply per chunk of output
            reply, fds = client.receive_with_fds()
            assert "error" not in reply and not fds, reply
            params = reply["parameters"]
            output += params["data"]
            if not reply.get("continues"):
                break
            assert params["exit_code"] == -1
        assert not reply.get("continues") and params["exit_code"] == 3, reply
        assert output == "relayed\nerr\n"
        gone = client.call(f"{CONTAINER}.ExecGet", {"name": cid, "session": params["session"]})
        assert gone["error"] == f"{CONTAINER}.InvalidArgument"
        without_more = client.call(f"{CONTAINER}.ExecOutput", {"name": cid, "command": ["true"]})
        assert without_more["error"] == "org.varlink.service.ExpectedMore"
    finally:
        client.close()
