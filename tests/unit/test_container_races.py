"""Races of the container state machine, driven deterministically with a fake runtime.

Each test holds the runtime calls it cares about (tests/support/fake_runtime.py)
and delivers conmon's exit report at the moment it chooses. Nothing sleeps:
``until`` only lets the event loop run the tasks that are ready.
"""

import asyncio
from collections.abc import Callable

import pytest
from support.fake_runtime import KILL, TERM, FakeWorld, fake_engine

from pyctrd.core.container import Container
from pyctrd.core.engine import Engine
from pyctrd.core.state import State
from pyctrd.errors import InvalidState, NoSuchContainer, RuntimeFailed


async def until(condition: Callable[[], bool], turns: int = 1000,
                thread_wait: float = 5.0) -> None:
    """Let ready tasks run until ``condition`` holds (loop turns, not time). The
    cleanup after an exit unmounts in a worker thread: that hop may take real
    time, up to ``thread_wait`` s."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    deadline = asyncio.get_running_loop().time() + thread_wait
    while asyncio.get_running_loop().time() < deadline:
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never came true")


def stored_status(engine: Engine, container: Container) -> dict:
    for config, status in engine.store.containers():
        if config["id"] == container.id:
            return status
    raise AssertionError("not stored")


async def running(engine: Engine, world: FakeWorld, **options) -> Container:
    container = engine.create_container("busybox", ["sleep", "1000"], options)
    starting = asyncio.create_task(container.start())
    if "start" in world.runtime.calls.hold:
        (await world.runtime.next_call("start")).release()
    await starting
    assert container.state == State.RUNNING
    return container


async def waiting_unlocked(container: Container) -> None:
    """Until the operation that holds the lock lets go of it to wait for the exit."""
    await until(lambda: not container.lock.locked())


async def test_exit_while_start_is_running_ends_exited_with_that_code(tmp_path):
    world = FakeWorld.create(hold={"start"})
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    starting = asyncio.create_task(c.start())
    start = await world.runtime.next_call("start")
    waiter = asyncio.create_task(c.wait())
    await until(lambda: bool(c._exit_waiters))

    world.monitor.exit(c.id, 7)  # the process is done before runc start returns
    assert c.state == State.CREATED  # set aside, not recorded under a Start
    assert not waiter.done()
    start.release()
    await starting

    assert (c.state, c.status.exit_code, c.status.pid) == (State.EXITED, 7, 0)
    assert c.status.finished >= c.status.started > 0
    assert await waiter == 7
    await until(lambda: not c.status.needs_cleanup)
    assert world.storage.mounted == set()
    assert stored_status(engine, c)["state"] == "exited"


async def test_start_aborted_half_way_is_killed_and_cleaned_up(tmp_path):
    world = FakeWorld.create(hold={"start", "kill"})
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    starting = asyncio.create_task(c.start())
    (await world.runtime.next_call("start")).fail("exec: no such file")

    kill = await world.runtime.next_call("kill")
    assert kill.args == (KILL,)
    kill.release()
    await waiting_unlocked(c)  # Start waits for the exit without the lock
    assert not starting.done()
    world.monitor.exit(c.id, 137)
    with pytest.raises(RuntimeFailed, match="no such file"):
        await starting

    await until(lambda: not c.status.needs_cleanup)
    assert c.state == State.EXITED
    assert (c.status.exit_code, c.status.pid, c.status.init_pid) == (137, 0, 0)
    assert world.storage.mounted == set()
    assert not c.status.mounted and c.status.mountpoint == ""
    assert c.id not in world.runtime.status  # runtime container deleted
    stored = stored_status(engine, c)
    assert (stored["state"], stored["mounted"], stored["needs_cleanup"]) == (
        "exited", False, False)


async def test_exit_during_stop_grace_period_returns_at_once_without_sigkill(tmp_path):
    world = FakeWorld.create(hold={"kill"})
    engine = fake_engine(tmp_path, world)
    c = await running(engine, world)
    stopping = asyncio.create_task(c.stop(3600))
    term = await world.runtime.next_call("kill")
    assert term.args == (TERM,)
    term.release()
    await waiting_unlocked(c)

    world.monitor.exit(c.id, 143)
    await stopping  # an hour of grace, and yet it returns now

    assert (c.state, c.status.exit_code) == (State.EXITED, 143)
    assert world.runtime.signals(c.id) == [TERM]  # no SIGKILL
    # Stop returns once cleaned up, as before
    assert not c.status.needs_cleanup and world.storage.mounted == set()


async def test_kill_during_stop_grace_period_acts_at_once(tmp_path):
    world = FakeWorld.create(hold={"kill"})
    engine = fake_engine(tmp_path, world)
    c = await running(engine, world)
    stopping = asyncio.create_task(c.stop(3600))
    (await world.runtime.next_call("kill")).release()  # SIGTERM, ignored
    await waiting_unlocked(c)

    killing = asyncio.create_task(c.kill(KILL))
    kill = await world.runtime.next_call("kill")  # sent while Stop still waits
    assert kill.args == (KILL,) and not stopping.done()
    kill.release()
    await killing
    assert not stopping.done()  # Stop returns with the exit, not with the Kill

    world.monitor.exit(c.id, 137)
    await stopping
    assert (c.state, c.status.exit_code) == (State.EXITED, 137)
    assert world.runtime.signals(c.id) == [TERM, KILL]  # Stop sent no SIGKILL of its own


async def test_remove_force_during_stop_acts_at_once(tmp_path):
    world = FakeWorld.create(hold={"kill"})
    engine = fake_engine(tmp_path, world)
    c = await running(engine, world)
    waiter = asyncio.create_task(c.wait())
    stopping = asyncio.create_task(c.stop(3600))
    (await world.runtime.next_call("kill")).release()  # SIGTERM, ignored
    await waiting_unlocked(c)

    removing = asyncio.create_task(engine.remove_container(c, force=True))
    kill = await world.runtime.next_call("kill")  # no waiting for the grace period
    assert kill.args == (KILL,) and kill.kwargs == {"all_processes": True}
    assert not stopping.done()
    kill.release()
    await waiting_unlocked(c)
    world.monitor.exit(c.id, 137)
    await removing

    assert await stopping is None  # stopped: the container is gone
    assert await waiter == 137  # a waiter hears the exit, not the removal
    assert c.removed and c.id not in engine.containers
    with pytest.raises(NoSuchContainer):
        engine.lookup_container(c.name)
    assert list(engine.store.containers()) == []
    assert world.storage.mounted == set()
    assert world.runtime.signals(c.id) == [TERM, KILL]


async def test_stop_without_timeout_uses_the_containers_stop_timeout(tmp_path):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    c = await running(engine, world, stop_timeout=0)
    stopping = asyncio.create_task(c.stop())
    await until(lambda: len(world.runtime.signals(c.id)) == 1)
    assert world.runtime.signals(c.id) == [KILL]  # 0 s: straight to SIGKILL
    world.monitor.exit(c.id, 137)
    await stopping


async def test_start_of_a_created_container_being_stopped_is_refused(tmp_path):
    world = FakeWorld.create(hold={"kill"})
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    await c.init()
    stopping = asyncio.create_task(c.stop(3600))
    (await world.runtime.next_call("kill")).release()
    await waiting_unlocked(c)
    with pytest.raises(InvalidState, match="being stopped"):
        await c.start()
    world.monitor.exit(c.id, 143)
    await stopping
    await c.start()  # a new run
    assert c.state == State.RUNNING


async def test_a_cancelled_stop_lets_go_of_the_lock(tmp_path):
    world = FakeWorld.create(hold={"kill"})
    engine = fake_engine(tmp_path, world)
    c = await running(engine, world)
    stopping = asyncio.create_task(c.stop(3600))
    (await world.runtime.next_call("kill")).release()
    await waiting_unlocked(c)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert not c.lock.locked() and c._exit_waiters == []
    assert c.state == State.RUNNING
    # and the container is still driven normally
    killing = asyncio.create_task(c.kill(KILL))
    (await world.runtime.next_call("kill")).release()
    await killing


async def test_exit_during_pause_is_not_overwritten(tmp_path):
    world = FakeWorld.create(hold={"pause"})
    engine = fake_engine(tmp_path, world)
    c = await running(engine, world)
    pausing = asyncio.create_task(c.pause())
    call = await world.runtime.next_call("pause")
    world.monitor.exit(c.id, 1)
    call.release()
    with pytest.raises(InvalidState, match="it is exited"):
        await pausing
    assert c.state == State.EXITED


async def test_mount_during_stop_grace_period_acts_at_once(tmp_path):
    world = FakeWorld.create(hold={"kill"})
    engine = fake_engine(tmp_path, world)
    c = await running(engine, world)
    stopping = asyncio.create_task(c.stop(3600))
    (await world.runtime.next_call("kill")).release()
    await waiting_unlocked(c)
    assert await c.mount() == str(c.paths.merged)  # no waiting for the Stop
    world.monitor.exit(c.id, 143)
    await stopping
    # held by Mount: the exit's cleanup leaves it mounted
    assert c.status.user_mounted and c.paths.merged in world.storage.mounted
