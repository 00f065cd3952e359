"""oci/execfifo against real processes on a plain fifo, in the roles runc's init
plays: it writes "0" and closes as it execs; it dies before opening its end; it
closes without a word; it never comes. Each ends as runc start would end."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyctrd.errors import RuntimeFailed
from pyctrd.oci import execfifo
from pyctrd.oci.execfifo import release_init


def init_like(fifo: Path, script: str) -> subprocess.Popen[bytes]:
    """A process standing in for runc's init: ``script`` runs with ``fifo`` bound."""
    return subprocess.Popen([sys.executable, "-c", script, str(fifo)])


async def release(fifo: Path, pid: int, timeout: float = 10) -> None:
    # as runcstate.open_exec_fifo: the pidfd first, then the fifo (which lets it go)
    pidfd = os.pidfd_open(pid)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    await release_init(fd, pidfd, timeout)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "exec.fifo"
    os.mkfifo(path, 0o622)
    return path


def test_the_init_is_released_and_read_to_its_close(fifo: Path) -> None:
    # It waits a moment after writing: release returns only at the close.
    proc = init_like(fifo, "import sys, os, time\n"
                           "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
                           "os.write(fd, b'0'); time.sleep(0.2); os.close(fd)\n"
                           "time.sleep(30)")
    try:
        elapsed = asyncio.run(_timed(release(fifo, proc.pid)))
        assert elapsed >= 0.15
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_an_init_that_writes_and_exits_between_a_read_and_the_exit_check_started(
        fifo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race seen once in 8,000 Starts under load: a read finds nothing yet; the
    init then writes "0", execs and exits before the daemon looks whether it is
    alive. It ran: Start must not say it died."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, os\n"
         "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
         "sys.stdin.read(1); os.write(fd, b'0'); os.close(fd)", str(fifo)],
        stdin=subprocess.PIPE)
    assert proc.stdin is not None
    real_read = os.read
    reads = 0

    def read_then_let_it_run(fd: int, n: int) -> bytes:
        nonlocal reads
        reads += 1
        result = real_read(fd, n)  # nothing yet: the init waits for "go"
        if reads == 1:
            proc.stdin.write(b"g")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            proc.wait(10)  # wrote, closed, exited: all before the exit check
        return result

    monkeypatch.setattr(execfifo.os, "read", read_then_let_it_run)
    asyncio.run(release(fifo, proc.pid))
    assert proc.returncode == 0


def test_an_init_that_dies_first_fails_at_once(fifo: Path) -> None:
    proc = init_like(fifo, "import time; time.sleep(0.1)")
    with pytest.raises(RuntimeFailed, match="container process is already dead"):
        asyncio.run(release(fifo, proc.pid))
    proc.wait()


def test_an_init_whose_exec_is_slow_past_the_timeout_has_started(fifo: Path) -> None:
    """Its "0" read, the init runs its command; only the close (at its exec) is late:
    Start succeeds, as runc start's read to the end would."""
    proc = init_like(fifo, "import sys, os, time\n"
                           "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
                           "os.write(fd, b'0'); time.sleep(30)")
    try:
        asyncio.run(release(fifo, proc.pid, timeout=0.3))
    finally:
        proc.kill()
        proc.wait()


def test_an_init_that_closes_without_a_word_is_refused(fifo: Path) -> None:
    proc = init_like(fifo, "import sys, os, time\n"
                           "os.close(os.open(sys.argv[1], os.O_WRONLY)); time.sleep(30)")
    try:
        with pytest.raises(RuntimeFailed, match="cannot start an already running"):
            asyncio.run(release(fifo, proc.pid))
    finally:
        proc.kill()
        proc.wait()


def test_an_init_that_never_comes_times_out(fifo: Path) -> None:
    proc = init_like(fifo, "import time; time.sleep(30)")
    try:
        with pytest.raises(RuntimeFailed, match="did not take the exec fifo"):
            asyncio.run(release(fifo, proc.pid, timeout=0.2))
    finally:
        proc.kill()
        proc.wait()


async def _timed(coro: object) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await coro  # type: ignore[misc]
    return loop.time() - start
