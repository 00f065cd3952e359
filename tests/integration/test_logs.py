"""Container.OpenLog: the log as records through a pipe, whole or followed."""

import asyncio
import contextlib
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from conftest import Client, container_id

from integration.fdcall import call_for_fd

RFC3339 = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


class LogReader:
    """The read end of an OpenLog pipe, read without blocking the test's loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader = asyncio.StreamReader(limit=1 << 22)
        self.transport: asyncio.ReadTransport | None = None

    @classmethod
    async def open(cls, bus: Client, path: str, follow: bool) -> "LogReader":
        log = cls(await call_for_fd(bus, path, "OpenLog", "b", [follow]))
        loop = asyncio.get_running_loop()
        log.transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(log.reader), os.fdopen(log.fd, "rb", 0))
        return log

    async def record(self, timeout: float = 10.0) -> tuple[bytes, str, bytes]:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        assert line.endswith(b"\n"), f"EOF instead of a record: {line!r}"
        return parse(line)

    async def rest(self, timeout: float = 10.0) -> list[tuple[bytes, str, bytes]]:
        """Every record up to EOF."""
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return [parse(line + b"\n") for line in data.split(b"\n")[:-1]]

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()


def parse(line: bytes) -> tuple[bytes, str, bytes]:
    stamp, stream, text = line[:-1].split(b" ", 2)
    assert RFC3339.match(stamp), stamp
    assert stream in (b"stdout", b"stderr"), line
    return stamp, stream.decode(), text


def to_datetime(stamp: bytes) -> datetime:
    # fromisoformat wants at most microseconds
    text = re.sub(rb"(\.\d{6})\d+", rb"\1", stamp).decode().replace("Z", "+00:00")
    return datetime.fromisoformat(text)


async def whole_log(bus: Client, path: str) -> list[tuple[bytes, str, bytes]]:
    log = await LogReader.open(bus, path, follow=False)
    try:
        return await log.rest()
    finally:
        log.close()


def daemon_fds(pid: int) -> set[str]:
    return set(os.listdir(f"/proc/{pid}/fd"))


async def until_fds_back(pid: int, baseline: set[str], timeout: float = 10.0) -> None:
    """Wait for the daemon to be back at (or below) its descriptors of before.

    Nothing signals a stream's end to the test, so this looks at /proc.
    """
    deadline = time.monotonic() + timeout
    while (extra := daemon_fds(pid) - baseline) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not extra, f"the daemon still holds {sorted(extra)}"


async def test_stdout_and_stderr_records(bus):
    before = datetime.now(UTC)
    path = await bus.run(["sh", "-c", "echo out one; echo err one >&2; echo 'out  two '"])
    assert await bus.ctr(path, "Wait") == [0]
    records = await whole_log(bus, path)
    # conmon reads stdout and stderr apart: each stream keeps its order, not the mix
    assert [text for _, stream, text in records if stream == "stdout"] == [
        b"out one", b"out  two "]
    assert [text for _, stream, text in records if stream == "stderr"] == [b"err one"]
    stamps = [to_datetime(stamp) for stamp, _, _ in records]
    assert before.timestamp() - 1 <= stamps[0].timestamp() <= time.time() + 1


async def test_log_of_a_running_container_then_eof(bus):
    path = await bus.run(["sh", "-c", "echo ready; exec sleep 1000"])
    follow = await LogReader.open(bus, path, follow=True)
    try:
        assert (await follow.record())[1:] == ("stdout", b"ready")  # it has been written
        assert [r[1:] for r in await whole_log(bus, path)] == [("stdout", b"ready")]
    finally:
        follow.close()


async def test_follow_receives_new_output_and_ends_at_exit(bus):
    # The container waits for a file that the test creates through its mountpoint.
    path = await bus.run(["sh", "-c", "echo first; while [ ! -e /tmp/go ]; do usleep 5000; done;"
                                      " echo second; echo third >&2"])
    log = await LogReader.open(bus, path, follow=True)
    try:
        assert (await log.record())[1:] == ("stdout", b"first")
        mountpoint = Path(await bus.prop(path, "Mountpoint"))
        (mountpoint / "tmp" / "go").touch()
        assert (await log.record())[1:] == ("stdout", b"second")
        assert (await log.record())[1:] == ("stderr", b"third")
        assert await log.rest() == []  # EOF: the container exited
    finally:
        log.close()
    assert await bus.ctr(path, "Wait") == [0]


async def test_follow_of_an_exited_container_ends_at_once(bus):
    path = await bus.run(["echo", "done"])
    await bus.ctr(path, "Wait")
    log = await LogReader.open(bus, path, follow=True)
    try:
        assert [r[1:] for r in await log.rest()] == [("stdout", b"done")]
    finally:
        log.close()


async def test_a_follower_that_goes_away_is_let_go(bus, daemon):
    # Output beyond a pipe's capacity, so that the stream waits on the reader.
    path = await bus.run(["sh", "-c", "seq 1 30000; exec sleep 1000"])
    quiet = await bus.run(["sleep", "1000"])
    first = await LogReader.open(bus, path, follow=False)  # sync: the output is written
    try:
        records = await first.rest()
    finally:
        first.close()
    assert records[-1][2] == b"30000"
    baseline = daemon_fds(daemon.pid)
    readers = [await LogReader.open(bus, path, follow=True),
               await LogReader.open(bus, quiet, follow=True)]
    assert (await readers[0].record())[2] == b"1"
    # a reader that never reads does not stall the daemon
    assert (await bus.state(path)) == "running"
    inspected = await bus.ctr(path, "Inspect")
    assert container_id(path) in inspected[0]
    for reader in readers:
        reader.close()
    await until_fds_back(daemon.pid, baseline)
    assert (await bus.state(path)) == "running"


async def test_many_followers_one_container(bus, daemon):
    path = await bus.run(["sh", "-c", "echo hello; while [ ! -e /tmp/go ]; do usleep 5000; done"])
    logs = [await LogReader.open(bus, path, follow=True) for _ in range(20)]
    try:
        for log in logs:
            assert (await log.record())[1:] == ("stdout", b"hello")
        (Path(await bus.prop(path, "Mountpoint")) / "tmp" / "go").touch()
        for log in logs:
            assert await log.rest() == []
    finally:
        for log in logs:
            log.close()


async def test_long_line_is_one_record(bus):
    # conmon writes a line longer than its 8 KiB buffer as partial (P) lines
    path = await bus.run(["sh", "-c", "head -c 20000 /dev/zero | tr '\\0' a; echo;"
                                      " printf 'no newline'"])
    await bus.ctr(path, "Wait")
    records = await whole_log(bus, path)
    assert [(stream, len(text)) for _, stream, text in records] == [
        ("stdout", 20000), ("stdout", 10)]
    assert records[0][2] == b"a" * 20000
    assert records[1][2] == b"no newline"


async def test_never_started_container_has_an_empty_log(bus):
    path = await bus.create(["echo", "never"])
    assert await whole_log(bus, path) == []
    log = await LogReader.open(bus, path, follow=True)
    try:
        assert await log.rest() == []
    finally:
        log.close()


async def test_terminal_output_is_stdout(bus):
    path = await bus.run(["sh", "-c", "echo tty; echo also >&2"], terminal=True)
    await bus.ctr(path, "Wait")
    records = await whole_log(bus, path)
    # one terminal: one stream, in order, with the terminal's line endings
    assert [(s, t) for _, s, t in records] == [("stdout", b"tty\r"), ("stdout", b"also\r")]


async def test_follow_across_rotation(fresh_daemon, client_factory, tmp_path):
    config = tmp_path / "pyctrd.toml"
    config.write_text("log_size_max = 8192\n")
    d = fresh_daemon()
    assert d.sigterm() == 0
    d.extra_args = ["--config", str(config)]
    d.start()
    bus = await client_factory(d.bus_address)
    path = await bus.create(["sh", "-c", "i=0; while [ $i -lt 500 ]; do echo line$i;"
                                         " i=$((i+1)); usleep 2000; done"])
    await bus.ctr(path, "Init")
    log = await LogReader.open(bus, path, follow=True)  # created: follows to its exit
    try:
        await bus.ctr(path, "Start")
        records = await log.rest(timeout=60)
    finally:
        log.close()
    numbers = [int(text.removeprefix(b"line")) for _, _, text in records]
    log_file = Path(await bus.prop(path, "LogPath"))
    assert log_file.stat().st_size <= 8192  # conmon did rotate
    assert numbers == sorted(set(numbers)), "records repeated or out of order"
    assert numbers[-1] == 499
    # A follower that keeps up sees everything; a rotation while it lags a whole
    # file behind would lose that file's lines (conmon keeps no old files).
    assert len(numbers) == 500


async def test_removed_while_following(bus):
    path = await bus.run(["sh", "-c", "echo x; exec sleep 1000"])
    log = await LogReader.open(bus, path, follow=True)
    try:
        assert (await log.record())[2] == b"x"
        await bus.manager("RemoveContainer", "sb", [container_id(path), True])
        assert await log.rest() == []
    finally:
        log.close()
    with contextlib.suppress(ValueError):
        bus.created.remove(path)
