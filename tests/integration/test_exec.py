"""Container.Exec and ExecSession objects, with real runc and conmon (issue 14)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from typing import Any

from conftest import (
    BUS_NAME,
    CONTAINER,
    ERROR,
    MANAGER_PATH,
    Client,
    process_alive,
    wait_pid_gone,
)
from dbus_fast import DBusError, Message, MessageType, Variant

from integration.test_logs import daemon_fds, until_fds_back

EXEC_SESSION = "org.pyctrd1.ExecSession"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
SLEEPER = ["sleep", "1000"]
TIMEOUT = 30.0


def exec_options(**options: Any) -> dict[str, Variant]:
    kinds = {"terminal": "b", "stdin": "b", "env": "as", "workdir": "s", "user": "s",
             "detach_keys": "s"}
    return {k: Variant(kinds[k], v) for k, v in options.items()}


async def exec_in(bus: Client, path: str, command: list[str],
                  **options: Any) -> tuple[str, socket.socket]:
    """Container.Exec; (the session's path, our end of its stdio)."""
    reply = await asyncio.wait_for(bus.bus.call(Message(
        destination=BUS_NAME, path=path, interface=CONTAINER, member="Exec",
        signature="asa{sv}", body=[command, exec_options(**options)])), TIMEOUT)
    assert reply is not None
    if reply.message_type is MessageType.ERROR:
        for fd in reply.unix_fds:
            os.close(fd)
        raise DBusError(reply.error_name, reply.body[0] if reply.body else "", reply)
    assert reply.signature == "oh" and len(reply.unix_fds) == 1
    sock = socket.socket(fileno=reply.unix_fds[reply.body[1]])
    sock.setblocking(False)
    return reply.body[0], sock


async def read_all(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    loop = asyncio.get_running_loop()
    seen = bytearray()
    async with asyncio.timeout(timeout):
        while chunk := await loop.sock_recv(sock, 1 << 16):
            seen += chunk
    return bytes(seen)


async def read_until(sock: socket.socket, wanted: bytes, timeout: float = TIMEOUT) -> bytes:
    loop = asyncio.get_running_loop()
    seen = b""
    try:
        async with asyncio.timeout(timeout):
            while wanted not in seen:
                chunk = await loop.sock_recv(sock, 1 << 16)
                assert chunk, f"EOF before {wanted!r}; got {seen!r}"
                seen += chunk
    except TimeoutError:
        raise AssertionError(f"no {wanted!r} within {timeout} s; got {seen!r}") from None
    return seen


async def session_call(bus: Client, path: str, member: str, signature: str = "",
                       body: list | None = None) -> list:
    return await asyncio.wait_for(bus.call(path, EXEC_SESSION, member, signature, body),
                                  TIMEOUT)


async def session_prop(bus: Client, path: str, name: str) -> Any:
    return await bus.get_property(path, EXEC_SESSION, name)


async def managed_sessions(bus: Client) -> dict[str, dict[str, Any]]:
    (objects,) = await bus.call(MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects")
    return {path: {k: v.value for k, v in ifaces[EXEC_SESSION].items()}
            for path, ifaces in objects.items() if EXEC_SESSION in ifaces}


async def test_output_and_exit_code(bus: Client) -> None:
    path = await bus.run(SLEEPER)
    recorder = await bus.recorder()
    session, sock = await exec_in(bus, path, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    try:
        assert session.startswith(path + "/exec/")
        output = await read_all(sock)
    finally:
        sock.close()
    assert output.count(b"out\n") == 1 and output.count(b"err\n") == 1
    assert await session_call(bus, session, "Wait") == [3]
    props = await bus.get_all(session, EXEC_SESSION)
    assert props["State"] == "exited" and props["ExitCode"] == 3 and props["PID"] == 0
    assert props["Command"] == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert props["FinishedTimestamp"] >= props["CreatedTimestamp"] > 0
    await recorder.wait_for(lambda m: m.member == "PropertiesChanged" and m.path == session
                            and m.body[1].get("ExitCode") is not None
                            and m.body[1]["ExitCode"].value == 3)
    added = recorder.select("InterfacesAdded")
    assert any(m.body[0] == session and EXEC_SESSION in m.body[1] for m in added)
    # introspection leads to it, as busctl tree shows
    (xml,) = await bus.call(path, "org.freedesktop.DBus.Introspectable", "Introspect")
    assert '<node name="exec"' in xml
    (xml,) = await bus.call(path + "/exec", "org.freedesktop.DBus.Introspectable",
                            "Introspect")
    assert f'<node name="{session.rsplit("/", 1)[1]}"' in xml
    # Inspect lists it, as podman's ExecIDs
    (text,) = await bus.ctr(path, "Inspect")
    assert props["Id"] in json.loads(text)["ExecIDs"]
    # Remove: the object goes
    await session_call(bus, session, "Remove")
    assert session not in await managed_sessions(bus)
    await recorder.wait_for(lambda m: m.member == "InterfacesRemoved" and m.body[0] == session)


async def test_stdin_piped_then_eof(bus: Client) -> None:
    path = await bus.run(SLEEPER)
    session, sock = await exec_in(bus, path, ["sh", "-c", "cat; echo done"], stdin=True)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, b"hello\nworld\n")
        sock.shutdown(socket.SHUT_WR)  # EOF for cat; the output still comes
        output = await read_all(sock)
    finally:
        sock.close()
    assert output == b"hello\nworld\ndone\n"
    assert await session_call(bus, session, "Wait") == [0]


async def test_terminal_resize_seen_by_stty(bus: Client) -> None:
    path = await bus.run(SLEEPER)
    session, sock = await exec_in(bus, path, ["sh"], terminal=True, stdin=True)
    loop = asyncio.get_running_loop()
    try:
        await session_call(bus, session, "ResizeTerminal", "qq", [33, 77])
        await loop.sock_sendall(sock, b"stty size\n")
        await read_until(sock, b"33 77")
        await session_call(bus, session, "ResizeTerminal", "qq", [40, 120])
        await loop.sock_sendall(sock, b"stty size; exit 5\n")
        await read_until(sock, b"40 120")
        assert await session_call(bus, session, "Wait") == [5]
    finally:
        sock.close()
    assert await session_prop(bus, session, "Terminal") is True


async def test_ten_megabytes_read_completely(bus: Client) -> None:
    path = await bus.run(SLEEPER)
    size = 10 * 1024 * 1024
    session, sock = await exec_in(bus, path, ["head", "-c", str(size), "/dev/urandom"])
    try:
        output = await read_all(sock, timeout=60)
    finally:
        sock.close()
    assert len(output) == size
    assert await session_call(bus, session, "Wait") == [0]


async def test_not_found_and_not_executable(bus: Client) -> None:
    path = await bus.run(SLEEPER)
    session, sock = await exec_in(bus, path, ["no-such-command"])
    try:
        message = await read_all(sock)
    finally:
        sock.close()
    assert b"not found" in message
    assert await session_call(bus, session, "Wait") == [127]
    session, sock = await exec_in(bus, path, ["/etc/passwd"])
    sock.close()
    assert await session_call(bus, session, "Wait") == [126]


async def test_options_env_workdir_user(bus: Client) -> None:
    path = await bus.run(SLEEPER)
    session, sock = await exec_in(bus, path, ["sh", "-c", "echo $GREETING; pwd; id -u"],
                                  env=["GREETING=hi there"], workdir="/tmp", user="65534")
    try:
        assert await read_all(sock) == b"hi there\n/tmp\n65534\n"
    finally:
        sock.close()
    assert await session_call(bus, session, "Wait") == [0]
    err = await bus.fails(exec_in(bus, path, ["true"], workdir="relative"))
    assert err.type == ERROR + "InvalidArgument"


async def test_paused_and_exited_refused(bus: Client) -> None:
    path = await bus.run(SLEEPER)
    await bus.ctr(path, "Pause")
    err = await bus.fails(exec_in(bus, path, ["true"]))
    assert err.type == ERROR + "InvalidState", err
    await bus.ctr(path, "Unpause")
    exited = await bus.run(["true"])
    assert await bus.ctr(exited, "Wait") == [0]
    err = await bus.fails(exec_in(bus, exited, ["true"]))
    assert err.type == ERROR + "InvalidState", err
    created = await bus.create(SLEEPER)
    err = await bus.fails(exec_in(bus, created, ["true"]))
    assert err.type == ERROR + "InvalidState", err
    assert not [p for p in await managed_sessions(bus) if p.startswith((path, exited))]


async def test_twenty_concurrent(bus: Client) -> None:
    path = await bus.run(SLEEPER)

    async def one(n: int) -> tuple[bytes, int]:
        session, sock = await exec_in(bus, path, ["sh", "-c", f"echo {n}; exit {n}"])
        try:
            output = await read_all(sock)
        finally:
            sock.close()
        (code,) = await session_call(bus, session, "Wait")
        return output, code

    results = await asyncio.gather(*(one(n) for n in range(20)))
    assert results == [(f"{n}\n".encode(), n) for n in range(20)]


async def test_kill_and_stop_ends_sessions(bus: Client) -> None:
    path = await bus.run(SLEEPER)
    session, sock = await exec_in(bus, path, SLEEPER)
    sock.close()  # closing the stdio does not kill the process
    await asyncio.sleep(0.2)
    assert await session_prop(bus, session, "State") == "running"
    pid = await session_prop(bus, session, "PID")
    assert pid > 0 and process_alive(pid)
    err = await bus.fails(session_call(bus, session, "Remove"))
    assert err.type == ERROR + "InvalidState"
    await session_call(bus, session, "Kill", "s", ["SIGTERM"])
    assert await session_call(bus, session, "Wait") == [128 + 15]
    # A second one ends with its container, and its object goes.
    recorder = await bus.recorder()
    second, sock = await exec_in(bus, path, SLEEPER)
    sock.close()
    waiter = asyncio.ensure_future(session_call(bus, second, "Wait"))
    await bus.ctr(path, "Stop", "u", [0])
    assert await waiter == [137]
    await recorder.wait_for(lambda m: m.member == "InterfacesRemoved" and m.body[0] == second)
    assert not [p for p in await managed_sessions(bus) if p.startswith(path)]


async def test_exec_outlives_daemon_kill9(fresh_daemon: Any, client_factory: Any) -> None:
    daemon = fresh_daemon()
    bus = await client_factory(daemon.bus_address)
    path = await bus.run(SLEEPER)
    quick, sock = await exec_in(bus, path, ["sh", "-c", "sleep 1; exit 7"])
    sock.close()
    slow, sock = await exec_in(bus, path, SLEEPER)
    sock.close()
    slow_id = await session_prop(bus, slow, "Id")
    quick_pid = await session_prop(bus, quick, "PID")
    daemon.kill9()  # (the client stays: it removes its container at the end)
    # the quick one exits while no daemon runs
    assert await asyncio.to_thread(wait_pid_gone, quick_pid, TIMEOUT)
    daemon.start()
    sessions = await managed_sessions(bus)
    assert sessions[quick]["State"] == "exited" and sessions[quick]["ExitCode"] == 7
    assert sessions[slow]["State"] == "running" and sessions[slow]["Id"] == slow_id
    assert await session_call(bus, quick, "Wait") == [7]
    await session_call(bus, slow, "Kill", "s", ["KILL"])
    assert await session_call(bus, slow, "Wait") == [137]


async def test_closing_stdio_leaves_it_running_and_time_bounded(bus: Client) -> None:
    """The stdio closed at once (pyctr exec -d): the process runs to its end."""
    path = await bus.run(SLEEPER)
    started = time.monotonic()
    session, sock = await exec_in(bus, path, ["sh", "-c", "sleep 0.3; exit 4"])
    sock.close()
    assert await session_call(bus, session, "Wait") == [4]
    assert time.monotonic() - started < TIMEOUT


async def test_no_descriptor_left_behind(bus: Client, daemon: Any) -> None:
    path = await bus.run(SLEEPER)
    warm, sock = await exec_in(bus, path, ["true"])  # first use: lazy imports, pidfds
    await read_all(sock)
    sock.close()
    await session_call(bus, warm, "Wait")
    baseline = daemon_fds(daemon.pid)
    for _ in range(5):
        session, sock = await exec_in(bus, path, ["sh", "-c", "echo x"], stdin=True)
        assert await read_all(sock) == b"x\n"
        sock.close()
        await session_call(bus, session, "Wait")
        await session_call(bus, session, "Remove")
    await until_fds_back(daemon.pid, baseline)
