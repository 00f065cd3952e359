"""Restart policies and auto-remove (core/restart.py) on the fake runtime: the
decisions, the back-off, a daemon restart during a back-off, a new boot."""

import asyncio
import time
from types import SimpleNamespace

import pytest
from support.fake_runtime import FakeWorld, fake_engine

from pyctrd.core import engine as engine_mod
from pyctrd.core import restart
from pyctrd.core.container import Container
from pyctrd.core.state import State
from pyctrd.errors import InvalidArgument, NoSuchContainer
from pyctrd.ops.operations import Operations

NO_NET = {"network": "none"}  # the fake world has no netavark


async def until(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


@pytest.fixture
def quick(monkeypatch):
    """A back-off of 1 ms doubling: the same rules, quicker."""
    monkeypatch.setattr(restart, "BACKOFF_MIN", 0.001)


def _status(**kw):
    base = dict(stopped_by_user=False, exit_code=1, restart_count=0, restart_streak=0,
                started=0, finished=0)
    return SimpleNamespace(**{**base, **kw})


def _config(policy, retries=0):
    return SimpleNamespace(restart_policy=policy, restart_retries=retries)


def test_decisions_as_podman():
    should = restart.should_restart
    assert not should(_config("no"), _status())
    assert should(_config("on-failure"), _status(exit_code=1))
    assert not should(_config("on-failure"), _status(exit_code=0))
    assert should(_config("on-failure", 3), _status(restart_count=2))
    assert not should(_config("on-failure", 3), _status(restart_count=3))
    assert should(_config("on-failure", 0), _status(restart_count=1000))
    for policy in ("always", "unless-stopped"):
        assert should(_config(policy), _status(exit_code=0))
        assert not should(_config(policy), _status(stopped_by_user=True))
    boot = restart.starts_at_boot
    assert boot(_config("always"), _status(stopped_by_user=True))
    assert boot(_config("unless-stopped"), _status())
    assert not boot(_config("unless-stopped"), _status(stopped_by_user=True))
    assert not boot(_config("on-failure"), _status())


def test_backoff_doubles_from_100ms_to_a_minute_and_resets_after_10s():
    assert [restart.backoff(n) for n in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert restart.backoff(9) == 51.2 and restart.backoff(10) == 60.0
    assert restart.backoff(10_000) == 60.0
    quick_run = _status(started=1_000_000, finished=5_000_000, restart_streak=4)
    long_run = _status(started=1_000_000, finished=11_000_000, restart_streak=4)
    assert restart.next_streak(quick_run) == 4
    assert restart.next_streak(long_run) == 0


def test_options_are_checked_at_create(tmp_path):
    engine = fake_engine(tmp_path, FakeWorld.create())
    bad = [{"restart_policy": "sometimes"},
           {"restart_policy": "always", "auto_remove": True},
           {"restart_policy": "always", "restart_retries": 3},
           {"health_cmd": ["true"], "health_retries": 0},
           {"health_cmd": ["true"], "health_timeout": 0}]
    for options in bad:
        with pytest.raises(InvalidArgument):
            engine.create_container("busybox", ["true"], {**NO_NET, **options})
    c = engine.create_container("busybox", ["true"], {**NO_NET, "restart_policy": "on-failure",
                                                      "restart_retries": 3})
    assert (c.config.restart_policy, c.config.restart_retries) == ("on-failure", 3)


async def _running(engine, world, container: Container, launches: int) -> None:
    """Wait until ``container`` runs its ``launches``-th run."""
    await until(lambda: len([c for c in world.monitor.calls.of("launch")
                             if c.cid == container.id]) >= launches
                and container.state == State.RUNNING)


async def test_on_failure_restarts_up_to_its_retries_then_stays_exited(tmp_path, quick):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    await engine.recover()
    c = engine.create_container("busybox", ["false"], {**NO_NET, "restart_policy": "on-failure",
                                                       "restart_retries": 3})
    await c.start()
    for run in range(1, 5):
        await _running(engine, world, c, run)
        world.monitor.exit(c.id, 1)
    await asyncio.sleep(0.05)  # a fourth restart would be due by now
    assert c.state == State.EXITED and c.status.restart_count == 3
    assert c.status.restart_at == 0 and not engine.restarts.pending(c)
    assert len(world.monitor.calls.of("launch")) == 4
    # exit 0 is no failure
    await c.start()
    assert c.status.restart_count == 0  # a caller's Start begins afresh
    world.monitor.exit(c.id, 0)
    await asyncio.sleep(0.02)
    assert c.state == State.EXITED and c.status.restart_count == 0
    engine.close()


async def test_always_restarts_after_any_exit_but_not_after_a_callers_stop_or_kill(
        tmp_path, quick):
    world = FakeWorld.create(kill_exits=True)
    engine = fake_engine(tmp_path, world)
    await engine.recover()
    c = engine.create_container("busybox", ["true"], {**NO_NET, "restart_policy": "always"})
    await c.start()
    world.monitor.exit(c.id, 0)
    await _running(engine, world, c, 2)
    world.monitor.exit(c.id, 137)  # killed from outside the daemon
    await _running(engine, world, c, 3)
    assert c.status.restart_count == 2

    await c.stop(0)
    await asyncio.sleep(0.02)
    assert c.state == State.EXITED and c.status.stopped_by_user
    assert not engine.restarts.pending(c)

    await c.start()
    assert not c.status.stopped_by_user
    await c.kill(9)
    await until(lambda: c.state == State.EXITED)
    await asyncio.sleep(0.02)
    assert c.state == State.EXITED and len(world.monitor.calls.of("launch")) == 4
    engine.close()


async def test_the_backoff_grows_while_it_crash_loops_and_a_stop_cancels_it(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr(restart, "BACKOFF_MIN", 0.01)
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    await engine.recover()
    c = engine.create_container("busybox", ["false"], {**NO_NET, "restart_policy": "always"})
    await c.start()
    delays = []
    for run in range(1, 5):
        await _running(engine, world, c, run)
        world.monitor.exit(c.id, 1)
        await until(lambda: c.status.restart_at != 0)
        delays.append((c.status.restart_at - c.status.finished) / 1e6)
    assert [round(d, 2) for d in delays] == [0.01, 0.02, 0.04, 0.08]
    assert c.status.restart_streak == 4

    # Stop while it waits: it stays exited, and no restart comes
    await Operations(engine).stop(c, None)
    assert c.status.stopped_by_user and c.status.restart_at == 0
    await asyncio.sleep(0.15)
    assert c.state == State.EXITED and len(world.monitor.calls.of("launch")) == 4
    engine.close()


async def _restart_daemon(tmp_path, world):
    engine = engine_mod.Engine(engine_mod.Layout(tmp_path / "root", tmp_path / "run"),
                               world.runtime, world.monitor, storage=world.storage)
    engine.load()
    await engine.recover()
    engine.restarts.begin()
    return engine


async def test_a_daemon_killed_during_the_backoff_restarts_it_when_back(tmp_path,
                                                                      monkeypatch):
    monkeypatch.setattr(restart, "BACKOFF_MIN", 0.3)
    world = FakeWorld.create()
    first = fake_engine(tmp_path, world)
    await first.recover()
    c = first.create_container("busybox", ["false"], {**NO_NET, "restart_policy": "on-failure"})
    gone = first.create_container("busybox", ["false"], {**NO_NET, "restart_policy": "always"})
    await c.start()
    await gone.start()
    world.monitor.exit(c.id, 2)
    await until(lambda: c.status.restart_at != 0)
    first.close()  # the daemon dies with the timer armed (kill -9: nothing runs)
    world.monitor.daemon_stopped()
    world.monitor.exit(gone.id, 0)  # exits while no daemon watches

    second = await _restart_daemon(tmp_path, world)
    c2, gone2 = second.lookup_container(c.id), second.lookup_container(gone.id)
    assert c2.state == State.EXITED and second.restarts.pending(c2)
    await until(lambda: c2.state == State.RUNNING and gone2.state == State.RUNNING)
    assert c2.status.restart_count == 1 and gone2.status.restart_count == 1
    second.close()


async def test_a_new_boot_starts_always_and_unless_stopped_not_stopped(tmp_path,
                                                                     monkeypatch):
    world = FakeWorld.create(kill_exits=True)
    first = fake_engine(tmp_path, world)
    await first.recover()
    made = {}
    for name, policy in (("always", "always"), ("always-stopped", "always"),
                         ("unless", "unless-stopped"), ("unless-stopped", "unless-stopped"),
                         ("failure", "on-failure"), ("no", "no")):
        made[name] = first.create_container("busybox", ["sleep", "9"],
                                            {**NO_NET, "name": name, "restart_policy": policy})
        await made[name].start()
    for name in ("always-stopped", "unless-stopped"):
        await made[name].stop(0)
    first.close()
    world.monitor.daemon_stopped()
    world.monitor.conmon_pids.clear()  # a reboot: nothing runs, nothing is mounted
    world.runtime.status.clear()
    world.storage.mounted.clear()
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("another-boot\n")
    monkeypatch.setattr(engine_mod, "BOOT_ID_PATH", boot_id)

    second = await _restart_daemon(tmp_path, world)
    started = {"always", "always-stopped", "unless"}
    await until(lambda: all(second.lookup_container(n).state == State.RUNNING
                            for n in started))
    await asyncio.sleep(0.02)
    for name in made:
        expected = State.RUNNING if name in started else State.EXITED
        assert second.lookup_container(name).state == expected, name
    second.close()
    # a plain restart on the same boot starts nothing again
    third = await _restart_daemon(tmp_path, world)
    await asyncio.sleep(0.02)
    for name in ("unless-stopped", "failure", "no"):  # the reboot was no failure
        assert third.lookup_container(name).state == State.EXITED, name
    third.close()


async def test_auto_remove_answers_the_wait_then_the_container_goes(tmp_path):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    await engine.recover()
    removed = []
    events = []

    class Recorder:
        def container_added(self, c): ...
        def container_removed(self, c): removed.append(c.id)
        def container_changed(self, c, changes):
            if "exit_code" in changes:
                events.append(("exit", changes["exit_code"]))
        def image_added(self, i): ...
        def image_removed(self, i): ...
        def image_changed(self, i, names): ...

    engine.listener.add(Recorder())
    c = engine.create_container("busybox", ["sh", "-c", "exit 3"], {**NO_NET, "auto_remove": True})
    await c.start()
    waiting = asyncio.create_task(c.wait())
    await asyncio.sleep(0)
    world.monitor.exit(c.id, 3)
    assert await waiting == 3
    await until(lambda: removed == [c.id])
    assert events == [("exit", 3)]
    with pytest.raises(NoSuchContainer):
        engine.lookup_container(c.id)
    engine.close()


async def test_a_callers_start_during_the_backoff_replaces_the_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(restart, "BACKOFF_MIN", 0.2)
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    await engine.recover()
    c = engine.create_container("busybox", ["false"], {**NO_NET, "restart_policy": "always"})
    await c.start()
    world.monitor.exit(c.id, 1)
    await until(lambda: engine.restarts.pending(c))
    await c.start()  # the caller's
    assert not engine.restarts.pending(c) and c.status.restart_at == 0
    await asyncio.sleep(0.3)
    assert len(world.monitor.calls.of("launch")) == 2 and c.status.restart_count == 0
    engine.close()


async def test_auto_remove_of_an_exit_while_the_daemon_was_away(tmp_path):
    world = FakeWorld.create()
    first = fake_engine(tmp_path, world)
    await first.recover()
    c = first.create_container("busybox", ["true"], {**NO_NET, "auto_remove": True})
    await c.start()
    first.close()
    world.monitor.daemon_stopped()
    world.monitor.exit(c.id, 0)
    second = await _restart_daemon(tmp_path, world)
    await until(lambda: c.id not in second.containers)
    second.close()
