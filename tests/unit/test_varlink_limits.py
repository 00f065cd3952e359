"""The Varlink socket's bounds without a daemon: framing and admission."""

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyctrd.core.recovering import RecoveryGate
from pyctrd.ops.authority import Authority
from pyctrd.varlink import server
from pyctrd.varlink.framing import Framer, MessageTooLarge
from pyctrd.varlink.limits import IDLE_TIMEOUT_ENV, Limits, PendingBytes
from pyctrd.varlink.peer import Peer
from pyctrd.varlink.protocol import _interface_named


def test_messages_split_across_chunks_come_out_whole() -> None:
    framer = Framer(100)
    assert framer.feed(b'{"a":') == b""
    assert framer.feed(b"1}\0{") == b'{"a":1}\0'
    assert framer.feed(b"}\0{}\0[") == b"{}\0{}\0"
    assert framer.pending == 1
    assert framer.feed(b"]\0") == b"[]\0"
    assert framer.pending == 0


@pytest.mark.parametrize("chunks", [
    [b"x" * 101],  # unfinished, past the limit
    [b"x" * 60, b"x" * 41],  # the same, in two reads
    [b"x" * 60, b"x" * 41 + b"\0"],  # finished, but too long
    [b"{}\0" + b"x" * 101 + b"\0{}\0"],  # a long one between short ones
    [b"{}\0" + b"x" * 101],  # the unfinished tail of a chunk
])
def test_a_message_past_the_limit_is_refused(chunks: list[bytes]) -> None:
    framer = Framer(100)
    with pytest.raises(MessageTooLarge):
        for chunk in chunks:
            framer.feed(chunk)


def test_a_message_at_the_limit_passes() -> None:
    framer = Framer(100)
    assert framer.feed(b"x" * 50) == b""
    assert framer.feed(b"x" * 50 + b"\0") == b"x" * 100 + b"\0"


def test_reading_is_linear() -> None:
    """16 MiB in 4 KiB reads (asyncvarlink's size) takes about as long per byte as
    4 MiB does; asyncvarlink's own buffering takes 16 times as long for 4 times
    the bytes."""
    def feed(size: int) -> float:
        framer = Framer(64 * 1024 * 1024)
        chunk = b"x" * 4096
        start = time.perf_counter()
        for _ in range(size // len(chunk)):
            framer.feed(chunk)
        assert framer.feed(b"\0") and framer.pending == 0
        return time.perf_counter() - start

    small, large = min(feed(4 << 20) for _ in range(5)), min(feed(16 << 20) for _ in range(5))
    assert large < 0.5, f"16 MiB took {large:.3f} s"
    # Quadratic buffering copies ~32 GiB for 16 MiB (seconds); linear takes a few ms,
    # where a busy machine's noise (page faults of a fresh 16 MiB) is of the same
    # order: the floor keeps noise from failing it, and still catches the square.
    assert large < 8 * max(small, 5e-3), f"4 MiB {small:.4f} s, 16 MiB {large:.4f} s"


def test_each_uid_has_its_share_and_root_its_reserve() -> None:
    limits = Limits(max_connections=10, root_reserve=3, per_uid=4)
    assert limits.admits(1000, total=0, of_uid=3) == ""
    assert "uid 1000 has 4" in limits.admits(1000, total=4, of_uid=4)
    assert limits.admits(1001, total=6, of_uid=0) == ""
    assert "root's" in limits.admits(1001, total=7, of_uid=0)
    assert limits.admits(0, total=7, of_uid=7) == ""  # root: no per-uid share
    assert limits.admits(0, total=9, of_uid=9) == ""
    assert "10 clients" in limits.admits(0, total=10, of_uid=10)


def test_the_idle_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IDLE_TIMEOUT_ENV, raising=False)
    assert Limits.from_environment() == Limits()
    monkeypatch.setenv(IDLE_TIMEOUT_ENV, "1.5")
    assert Limits.from_environment().idle_timeout == 1.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv(IDLE_TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=IDLE_TIMEOUT_ENV):
            Limits.from_environment()


def test_limits_exceeded_names_the_interface_called() -> None:
    assert _interface_named(b'{"method":"io.pyctrd.Image.Import","parameters":{') == \
        "io.pyctrd.Image"
    assert _interface_named(b'{"parameters":{"x":"') == "io.pyctrd.Container"
    assert _interface_named(b'{"method": "org.varlink.service.GetInfo"') == \
        "io.pyctrd.Container"


def test_unfinished_bytes_are_bounded_per_uid_but_roots() -> None:
    pending = PendingBytes(100)
    assert pending.change(1000, 60) and pending.change(1000, 40)
    assert not pending.change(1000, 1) and pending.held(1000) == 100
    assert pending.change(1001, 100)  # another uid has its own share
    assert pending.change(0, 10_000)  # root is not bound
    assert pending.change(1000, -40) and pending.change(1000, 40)
    assert pending.change(1000, -100) and pending.held(1000) == 0


# --------------------------------------------------------------------------
# a server in this process, with small limits


class _Listener:
    def add(self, _: object) -> None: ...

    def remove(self, _: object) -> None: ...


@pytest.fixture
async def small_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                       ) -> AsyncIterator[tuple[Path, list[Peer]]]:
    """A public server (an Authority) whose clients are the next peers of the list."""
    peers = [Peer(pid=os.getpid(), uid=1000, gid=1000, start_time=1)]
    monkeypatch.setattr(server, "peer_of", lambda _sock: peers[0])
    ops = SimpleNamespace(version="0", engine=SimpleNamespace(listener=_Listener(),
                                                              recovering=RecoveryGate()))
    vl = server.VarlinkServer(ops, tmp_path / "io.pyctrd",  # type: ignore[arg-type]
                              Authority(None),  # type: ignore[arg-type]
                              Limits(max_message_size=1000, max_connections=6,
                                     root_reserve=2, per_uid=2, pending_per_uid=1500,
                                     idle_timeout=0.3))
    vl.start()
    try:
        yield vl.path, peers
    finally:
        vl.close()


async def _closed(reader: asyncio.StreamReader, timeout: float = 2.0) -> bytes:
    """What the server sent before it closed the connection."""
    return await asyncio.wait_for(reader.read(), timeout)


GET_INFO = b'{"method":"org.varlink.service.GetInfo","parameters":{}}\0'


async def test_a_uid_past_its_share_is_hung_up_on_and_root_is_not(
        small_server: tuple[Path, list[Peer]]) -> None:
    path, peers = small_server
    held = [await asyncio.open_unix_connection(str(path)) for _ in range(2)]
    extra_reader, _w = await asyncio.open_unix_connection(str(path))
    assert await _closed(extra_reader) == b""
    peers[0] = Peer(pid=os.getpid(), uid=1001, gid=1001, start_time=1)
    more = [await asyncio.open_unix_connection(str(path)) for _ in range(2)]  # 4 of 6
    peers[0] = Peer(pid=os.getpid(), uid=1002, gid=1002, start_time=1)
    reserved_reader, _w = await asyncio.open_unix_connection(str(path))
    assert await _closed(reserved_reader) == b""  # the last 2 are root's
    peers[0] = Peer(pid=os.getpid(), uid=0, gid=0, start_time=1)
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(GET_INFO)
    assert b'"vendor":"pyctrd"' in await reader.readuntil(b"\0")
    for _r, w in held + more + [(reader, writer)]:
        w.close()


async def test_a_message_past_the_limit_gets_limits_exceeded_and_a_hang_up(
        small_server: tuple[Path, list[Peer]]) -> None:
    path, _peers = small_server
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b'{"method":"io.pyctrd.Image.List","parameters":{"x":"' + b"a" * 2000)
    sent = await _closed(reader)
    reply = json.loads(sent[:-1])
    assert reply["error"] == "io.pyctrd.Image.LimitsExceeded"
    assert "at most 1000 bytes" in reply["parameters"]["message"]
    writer.close()


async def test_unfinished_messages_of_a_uid_are_bounded_together(
        small_server: tuple[Path, list[Peer]]) -> None:
    path, _peers = small_server
    _first_reader, first = await asyncio.open_unix_connection(str(path))
    first.write(b"a" * 900)
    await first.drain()
    await asyncio.sleep(0.05)
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b"a" * 700)  # 1600 of 1500
    reply = json.loads((await _closed(reader))[:-1])
    assert reply["error"] == "io.pyctrd.Container.LimitsExceeded"
    assert "unfinished" in reply["parameters"]["message"]
    first.write(b"\0")  # finished (not JSON): its bytes are counted no more
    await asyncio.sleep(0.05)
    third_reader, third = await asyncio.open_unix_connection(str(path))
    third.write(b"a" * 999)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(third_reader.read(1), 0.1)  # accepted, still open
    for w in (first, writer, third):
        w.close()


async def test_idle_connections_close_and_busy_ones_do_not(
        small_server: tuple[Path, list[Peer]]) -> None:
    path, _peers = small_server
    loop = asyncio.get_running_loop()
    silent_reader, silent = await asyncio.open_unix_connection(str(path))
    reader, writer = await asyncio.open_unix_connection(str(path))
    start = loop.time()
    for _ in range(3):  # calls every 0.2 s keep it open past 0.3 s
        writer.write(GET_INFO)
        assert b"vendor" in await reader.readuntil(b"\0")
        await asyncio.sleep(0.2)
    assert await _closed(silent_reader) == b""
    assert loop.time() - start >= 0.3
    assert await _closed(reader) == b""  # then idle itself
    for w in (silent, writer):
        w.close()


def test_a_session_daemons_socket_has_no_per_uid_share(tmp_path: Path) -> None:
    ops = SimpleNamespace(version="0", engine=SimpleNamespace(listener=_Listener(),
                                                              recovering=RecoveryGate()))
    vl = server.VarlinkServer(ops, tmp_path / "io.pyctrd", None,  # type: ignore[arg-type]
                              Limits(max_connections=6, root_reserve=2, per_uid=2))
    assert vl.limits.admits(1000, total=5, of_uid=5) == ""
    assert vl.limits.admits(1000, total=6, of_uid=6) != ""


async def test_the_transport_reads_with_our_bounded_loop() -> None:
    """The override replaces a private method of asyncvarlink 0.3: if a new release
    renames it, this fails instead of the daemon silently reading unbounded."""
    from asyncvarlink import VarlinkProtocol

    ours, theirs = socket.socketpair()
    transport = server.Transport(asyncio.get_running_loop(), ours, ours, VarlinkProtocol())
    try:
        assert transport._handle_read.__func__ is server.Transport._handle_read_socket_peek
    finally:
        transport.abort()
        await transport.closed_future
        theirs.close()


async def test_a_large_reply_to_a_slow_reader_arrives_whole() -> None:
    """Partial writes go on from a memoryview of the rest (not from a copy, as
    asyncvarlink's bytes slicing makes); every byte arrives, in order."""
    from asyncvarlink import VarlinkProtocol

    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    big = bytes(range(256)) * (32 * 4096)  # 32 MiB
    received = bytearray()

    def read_slowly() -> None:
        while len(received) < len(big) + 6:
            data = theirs.recv(65536)
            if not data:
                return
            received.extend(data)
            time.sleep(0.0002)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    transport = server.Transport(asyncio.get_running_loop(), ours, ours, VarlinkProtocol())
    start = time.perf_counter()
    sent = [transport.send_message(m) for m in (b"one\0", big, b"two\0")]
    await asyncio.wait_for(asyncio.gather(*sent), 30)
    elapsed = time.perf_counter() - start
    reader.join(30)
    transport.abort()
    await transport.closed_future
    theirs.close()
    assert received == b"one\0" + big + b"two\0"
    assert elapsed < 5.0, f"32 MiB took {elapsed:.2f} s"
