"""Container.Attach and ResizeTerminal: a socket joined to the container's stdio."""

import asyncio
import socket

import pytest
from conftest import BUS_NAME, CONTAINER, ERROR, Client
from dbus_fast import Message, MessageFlag

from integration.fdcall import call_for_fd
from integration.test_logs import daemon_fds, until_fds_back

CTRL_P_CTRL_Q = b"\x10\x11"

class Attached:
    """The client end of an Attach, read and written without blocking the loop."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.seen = b""

    @classmethod
    async def open(cls, bus: Client, path: str, keys: str = "") -> "Attached":
        fd = await call_for_fd(bus, path, "Attach", "s", [keys])
        return cls(socket.socket(fileno=fd))

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def expect(self, wanted: bytes, timeout: float = 10.0) -> bytes:
        """Read until ``wanted`` has been seen; everything read so far."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while wanted not in self.seen:
                    chunk = await loop.sock_recv(self.sock, 65536)
                    assert chunk, f"EOF before {wanted!r}; got {self.seen!r}"
                    self.seen += chunk
        except TimeoutError:
            raise AssertionError(f"no {wanted!r} within {timeout} s; got {self.seen!r}") from None
        return self.seen

    async def eof(self, timeout: float = 10.0) -> bytes:
        """Read to EOF (the daemon closed its end); what came before it."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while chunk := await loop.sock_recv(self.sock, 65536):
                self.seen += chunk
        return self.seen

    def close(self) -> None:
        self.sock.close()


async def shell(bus: Client) -> str:
    """A running interactive shell on a terminal."""
    return await bus.run(["sh"], terminal=True, stdin=True)


async def test_terminal_shell(bus):
    path = await shell(bus)
    tty = await Attached.open(bus, path)
    try:
        await tty.send(b"echo h''i\n")  # the terminal echoes the input; only the output is "hi"
        await tty.expect(b"\r\nhi\r\n")
    finally:
        tty.close()


async def test_plain_container_with_stdin(bus):
    path = await bus.run(["sh", "-c", "read line; echo out $line; echo err $line >&2"],
                         stdin=True)
    attached = await Attached.open(bus, path)
    try:
        await attached.send(b"hello\n")
        output = await attached.eof()  # the container exited: conmon closed, so do we
    finally:
        attached.close()
    assert b"out hello\n" in output and b"err hello\n" in output
    assert await bus.ctr(path, "Wait") == [0]


async def test_cat_echoes(bus):
    path = await bus.run(["cat"], stdin=True)
    attached = await Attached.open(bus, path)
    try:
        for word in (b"one\n", b"two\n", b"x" * 20000 + b"\n"):
            await attached.send(word)
            await attached.expect(word)
            attached.seen = b""
    finally:
        attached.close()


async def test_detach_keys_leave_it_running(bus):
    path = await shell(bus)
    tty = await Attached.open(bus, path)
    try:
        await tty.send(b"echo before\n")
        await tty.expect(b"\r\nbefore\r\n")
        await tty.send(CTRL_P_CTRL_Q)
        await tty.eof()
    finally:
        tty.close()
    assert await bus.state(path) == "running"


async def test_own_detach_keys(bus):
    path = await shell(bus)
    tty = await Attached.open(bus, path, "ctrl-a,d")
    try:
        await tty.send(CTRL_P_CTRL_Q + b"echo still\n")  # not ours: passed on
        await tty.expect(b"\r\nstill\r\n")
        await tty.send(b"\x01d")
        await tty.eof()
    finally:
        tty.close()
    assert await bus.state(path) == "running"


async def test_closing_the_socket_leaves_it_running(bus):
    path = await shell(bus)
    tty = await Attached.open(bus, path)
    await tty.send(b"echo x\n")
    await tty.expect(b"\r\nx\r\n")
    tty.close()
    # the relay's end is closed too; then the shell still runs
    second = await Attached.open(bus, path)
    second.close()
    assert await bus.state(path) == "running"


async def test_attach_again_after_detaching(bus):
    path = await shell(bus)
    first = await Attached.open(bus, path)
    await first.send(CTRL_P_CTRL_Q)
    await first.eof()
    first.close()
    assert await bus.state(path) == "running"
    second = await Attached.open(bus, path)
    try:
        await second.send(b"echo again\n")
        await second.expect(b"again", timeout=3)
    finally:
        second.close()


async def test_detaching_from_plain_stdin_ends_the_input(bus):
    # Not a terminal: stdin is a pipe, and the client's end of input is its end.
    path = await bus.run(["sh", "-c", "cat; echo after-eof"], stdin=True)
    client = await Attached.open(bus, path)
    await client.send(b"one\n")
    await client.expect(b"one\n")
    await client.send(CTRL_P_CTRL_Q)
    await client.eof()
    client.close()
    (code,) = await bus.ctr(path, "Wait", timeout=10)
    assert code == 0


async def test_two_clients_at_once(bus):
    path = await bus.run(["sh", "-c", "read line; echo got $line; exec sleep 1000"],
                         stdin=True)
    one, two = await Attached.open(bus, path), await Attached.open(bus, path)
    try:
        await one.send(b"x\n")
        await one.expect(b"got x\n")
        await two.expect(b"got x\n")
    finally:
        one.close()
        two.close()


async def test_exit_ends_the_attach(bus):
    path = await shell(bus)
    tty = await Attached.open(bus, path)
    try:
        await tty.send(b"exit 3\n")
        await tty.eof()
    finally:
        tty.close()
    assert await bus.ctr(path, "Wait") == [3]


@pytest.mark.parametrize("state", ["configured", "exited"])
async def test_attach_needs_a_created_or_running_container(bus, state):
    path = await bus.create(["cat"], stdin=True)
    if state == "exited":
        await bus.ctr(path, "Start")
        await bus.ctr(path, "Kill", "s", ["KILL"])
        await bus.ctr(path, "Wait")
    err = await bus.fails(call_for_fd(bus, path, "Attach", "s", [""]))
    assert err.type == ERROR + "InvalidState"
    assert f"it is {state}" in err.text and "running" in err.text


async def test_attach_before_start_sees_the_first_output(bus):
    path = await bus.create(["sh", "-c", "echo first-line; read x; echo got-$x"], stdin=True)
    await bus.ctr(path, "Init")
    client = await Attached.open(bus, path)
    try:
        await bus.ctr(path, "Start")
        await client.expect(b"first-line\n")
        await client.send(b"y\n")
        await client.expect(b"got-y\n")
    finally:
        client.close()
    assert await bus.ctr(path, "Wait") == [0]


async def test_attach_to_a_paused_container_is_refused(bus):
    path = await bus.run(["sleep", "1000"])
    await bus.ctr(path, "Pause")
    err = await bus.fails(call_for_fd(bus, path, "Attach", "s", [""]))
    assert err.type == ERROR + "InvalidState" and "paused" in err.text


@pytest.mark.parametrize("keys", ["ctrl-", "ctrl-1", "ab", "a,,b", "ctrl-p,"])
async def test_bad_detach_keys(bus, keys):
    path = await bus.run(["sleep", "1000"])
    err = await bus.fails(call_for_fd(bus, path, "Attach", "s", [keys]))
    assert err.type == ERROR + "InvalidArgument"
    assert repr(keys) in err.text


async def test_resize_terminal(bus):
    path = await shell(bus)
    await bus.ctr(path, "ResizeTerminal", "qq", [33, 101])
    tty = await Attached.open(bus, path)
    try:
        await tty.send(b"stty size\n")
        await tty.expect(b"\r\n33 101\r\n")
        await bus.ctr(path, "ResizeTerminal", "qq", [12, 40])
        await tty.send(b"stty size\n")
        await tty.expect(b"\r\n12 40\r\n")
    finally:
        tty.close()


async def test_resize_needs_a_terminal(bus):
    path = await bus.run(["sleep", "1000"])
    err = await bus.fails(bus.ctr(path, "ResizeTerminal", "qq", [24, 80]))
    assert err.type == ERROR + "InvalidArgument" and "terminal" in err.text


async def test_resize_needs_a_live_container(bus):
    path = await bus.create(["sh"], terminal=True)
    err = await bus.fails(bus.ctr(path, "ResizeTerminal", "qq", [24, 80]))
    assert err.type == ERROR + "InvalidState" and "configured" in err.text


async def test_resize_to_nothing_is_refused(bus):
    path = await shell(bus)
    err = await bus.fails(bus.ctr(path, "ResizeTerminal", "qq", [0, 80]))
    assert err.type == ERROR + "InvalidArgument"


async def test_no_descriptor_leaks(bus, daemon):
    path = await shell(bus)
    await bus.ctr(path, "Inspect")  # the object is exported, its first-call costs paid
    baseline = daemon_fds(daemon.pid)
    for _ in range(5):
        tty = await Attached.open(bus, path)
        await tty.send(CTRL_P_CTRL_Q)
        await tty.eof()
        tty.close()
    closed = await Attached.open(bus, path)
    closed.close()
    # A call that wants no reply would leave its descriptor with nobody: refused.
    for member, signature, body in (("Attach", "s", [""]), ("OpenLog", "b", [True])):
        await bus.bus.send(Message(destination=BUS_NAME, path=path, interface=CONTAINER,
                                   member=member, signature=signature, body=body,
                                   flags=MessageFlag.NO_REPLY_EXPECTED))
    await bus.ctr(path, "Inspect")  # handled after those
    await until_fds_back(daemon.pid, baseline)
    assert await bus.state(path) == "running"
