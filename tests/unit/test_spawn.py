"""pyctrd.oci.spawn: children made without a thread each, seen exiting through pidfds."""

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from pyctrd.oci.spawn import Spawner, spawn

COUNT = 200


async def _watch_threads(stop: asyncio.Event, seen: list[int]) -> None:
    while not stop.is_set():
        seen.append(threading.active_count())
        await asyncio.sleep(0.002)


async def test_200_concurrent_spawns_start_no_thread() -> None:
    before = threading.active_count()
    seen: list[int] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_threads(stop, seen))
    # all alive at once: each sleeps until the last one has been spawned
    children = [spawn(["/bin/sleep", "0.3"]) for _ in range(COUNT)]
    seen.append(threading.active_count())
    codes = await asyncio.wait_for(asyncio.gather(*(c.wait() for c in children)), 20)
    stop.set()
    await watcher
    for child in children:
        await child.communicate()
        child.close()
    assert codes == [0] * COUNT
    assert max(seen) == before, f"threads rose from {before} to {max(seen)}"
    for child in children:  # reaped: no zombie left behind
        with pytest.raises(ChildProcessError):
            os.waitpid(child.pid, os.WNOHANG)


async def test_spawner_queue_bounds_work_in_flight_and_spawns_no_thread() -> None:
    spawner = Spawner(limit=8)
    before = threading.active_count()
    running = 0
    peak = 0

    async def one(i: int) -> bytes:
        nonlocal running, peak
        # count the ones holding a slot, as the runtime's callers do
        done = await spawner.run(["/bin/sh", "-c", f"echo {i}; echo err{i} >&2"], timeout=20)
        assert done.returncode == 0 and done.stderr == f"err{i}\n".encode()
        return done.stdout

    sem = spawner.slot()

    async def sample(stop: asyncio.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, spawner.limit - sem._value)  # slots taken
            assert threading.active_count() == before
            await asyncio.sleep(0.001)

    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(stop))
    outs = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(COUNT))), 60)
    stop.set()
    await sampler
    assert outs == [f"{i}\n".encode() for i in range(COUNT)]
    assert 1 <= peak <= 8
    assert running == 0


async def test_exit_status_and_signals() -> None:
    child = spawn(["/bin/sh", "-c", "exit 7"])
    assert (await child.communicate()).returncode == 7
    child.close()
    child = spawn(["/bin/sleep", "30"])
    child.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(child.wait(), 5) == -signal.SIGTERM
    child.close()


async def test_timeout_kills_the_child() -> None:
    spawner = Spawner(limit=1)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        await spawner.run(["/bin/sleep", "30"], timeout=0.2)
    assert time.monotonic() - start < 5
    # the slot came back
    assert (await spawner.run(["/bin/true"], timeout=5)).returncode == 0


async def test_only_passed_fds_are_inherited_and_cwd_is_set(tmp_path: Path) -> None:
    passed_r, passed_w = os.pipe2(os.O_CLOEXEC)
    other_r, other_w = os.pipe2(os.O_CLOEXEC)
    try:
        child = spawn(["/bin/sh", "-c",
                       f"pwd; ls -l /proc/self/fd/; echo hi >/proc/self/fd/{passed_w}"],
                      pass_fds=(passed_w,), cwd=tmp_path)
        done = await child.communicate()
        child.close()
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode()
        assert out.splitlines()[0] == str(tmp_path)
        assert f"pipe:[{os.fstat(passed_w).st_ino}]" in out
        assert f"pipe:[{os.fstat(other_w).st_ino}]" not in out
        assert os.read(passed_r, 10) == b"hi\n"
        # still close-on-exec in the daemon: a concurrent spawn does not get it
        assert not os.get_inheritable(passed_w)
    finally:
        for fd in (passed_r, passed_w, other_r, other_w):
            os.close(fd)


async def test_a_missing_binary_raises_and_leaks_nothing() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for missing in ("/nonexistent/runc", "no-such-runtime-here"):
        with pytest.raises(FileNotFoundError):
            spawn([missing, "state"])
    assert len(os.listdir("/proc/self/fd")) == before


async def test_a_bare_name_is_found_in_path() -> None:
    child = spawn(["true"])
    assert (await child.communicate()).returncode == 0
    child.close()
