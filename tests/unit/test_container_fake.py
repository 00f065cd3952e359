"""The core on a fake runtime: lifecycle, the PID rule, Inspect, and start-up recovery."""

import asyncio

import pytest
from support.fake_runtime import KILL, FakeWorld, fake_engine

from pyctrd.core import engine as engine_mod
from pyctrd.core.container import ContainerStatus
from pyctrd.core.state import State
from pyctrd.errors import NoSuchContainer


async def test_lifecycle_and_pid_is_zero_unless_running_or_paused(tmp_path):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    changes: list[dict] = []

    class Recorder:
        def container_added(self, c): ...
        def container_removed(self, c): ...
        def container_changed(self, c, changed): changes.append(dict(changed))
        def image_added(self, i): ...
        def image_removed(self, i): ...
        def image_changed(self, i, names): ...

    engine.listener.add(Recorder())
    c = engine.create_container("busybox", ["sleep", "1000"], {"name": "web"})
    assert (c.state, c.status.pid) == (State.CONFIGURED, 0)

    await c.init()
    assert c.state == State.CREATED
    assert c.status.pid == 0 and c.status.init_pid > 0  # API.md: 0 unless running/paused
    assert c.inspect()["State"]["Pid"] == 0
    assert c.paths.merged in world.storage.mounted and c.paths.shm_dir in world.storage.mounted
    assert (c.bundle / "config.json").exists()

    await c.start()
    assert c.status.pid == c.status.init_pid > 0
    assert {"state": State.RUNNING, "pid": c.status.pid}.items() <= changes[-1].items()
    await c.pause()
    assert (c.state, c.status.pid) == (State.PAUSED, c.status.init_pid)
    await c.unpause()

    inspected = c.inspect()
    assert inspected["State"]["Pid"] == c.status.pid and inspected["OCIRuntime"] == "fake-runc"
    assert inspected["Name"] == "web" and inspected["State"]["Running"] is True

    stopping = asyncio.create_task(c.stop(0))
    await asyncio.sleep(0)  # let Stop send its SIGKILL (one loop turn, not a delay)
    while not world.runtime.signals(c.id):
        await asyncio.sleep(0)
    world.monitor.exit(c.id, 137, oom=True)
    await stopping
    assert (c.state, c.status.pid, c.status.init_pid, c.status.conmon_pid) == (
        State.EXITED, 0, 0, 0)
    assert c.status.oom_killed and changes[-1] == {"needs_cleanup": False}
    assert world.storage.mounted == set()
    assert await c.wait() == 137

    await engine.remove_container(c, force=False)
    with pytest.raises(NoSuchContainer, match="has been removed"):
        c.inspect()
    assert not c.bundle.exists()


def test_status_saved_before_init_pid_existed_shows_no_pid_when_created():
    created = ContainerStatus.from_record({"state": "created", "pid": 42, "conmon_pid": 41})
    assert (created.pid, created.init_pid) == (0, 42)
    running = ContainerStatus.from_record({"state": "running", "pid": 42})
    assert (running.pid, running.init_pid) == (42, 42)
    assert "init_pid" in running.to_record()


async def restart(tmp_path, world: FakeWorld) -> engine_mod.Engine:
    """A new daemon on the same store and the same (fake) world."""
    engine = engine_mod.Engine(engine_mod.Layout(tmp_path / "root", tmp_path / "run"),
                               world.runtime, world.monitor, storage=world.storage)
    engine.load()
    await engine.recover()
    return engine


async def test_restart_readopts_running_and_created_and_records_exits_meanwhile(tmp_path):
    world = FakeWorld.create()
    first = fake_engine(tmp_path, world)
    await first.recover()
    run = first.create_container("busybox", ["sleep", "1"], {"name": "run"})
    await run.start()
    made = first.create_container("busybox", ["sleep", "1"], {"name": "made"})
    await made.init()
    gone = first.create_container("busybox", ["sleep", "1"], {"name": "gone"})
    await gone.start()
    pid, made_init = run.status.pid, made.status.init_pid
    first.close()
    world.monitor.daemon_stopped()
    world.monitor.exit(gone.id, 9)  # while no daemon watches: conmon still writes it

    second = await restart(tmp_path, world)
    run2, made2, gone2 = (second.lookup_container(n) for n in ("run", "made", "gone"))
    assert (run2.state, run2.status.pid) == (State.RUNNING, pid)
    assert (made2.state, made2.status.pid, made2.status.init_pid) == (
        State.CREATED, 0, made_init)
    assert (gone2.state, gone2.status.exit_code, gone2.status.pid) == (State.EXITED, 9, 0)
    # the re-adopted one is watched again
    world.monitor.exit(run2.id, 0)
    assert run2.state == State.EXITED and await run2.wait() == 0


async def test_new_boot_turns_active_containers_exited(tmp_path, monkeypatch):
    world = FakeWorld.create()
    first = fake_engine(tmp_path, world)
    await first.recover()
    c = first.create_container("busybox", ["sleep", "1"], {})
    await c.start()
    first.close()
    world.monitor.daemon_stopped()
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("another-boot\n")
    monkeypatch.setattr(engine_mod, "BOOT_ID_PATH", boot_id)
    world.storage.mounted.clear()  # a reboot unmounts everything

    second = await restart(tmp_path, world)
    c2 = second.lookup_container(c.id)
    assert (c2.state, c2.status.exit_code, c2.status.pid, c2.status.init_pid) == (
        State.EXITED, -1, 0, 0)
    assert not c2.status.mounted


async def test_remove_image_named_untags_then_removes_with_its_containers(tmp_path):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    image = engine.lookup_image("busybox")
    image.references.append("other:1")
    c = engine.create_container("busybox", ["true"], {})
    await engine.remove_image_named("other:1", force=False)
    assert engine.lookup_image("busybox").references == ["busybox:latest"]
    await engine.remove_image_named("busybox", force=True)
    assert engine.images == {} and c.removed and engine.containers == {}


async def test_engine_surface_for_front_ends(tmp_path):
    engine = fake_engine(tmp_path, FakeWorld.create())
    from pyctrd import __version__
    assert engine.version == __version__
    assert engine.oci_runtime_path == "/usr/bin/fake-runc"


async def test_kill_of_a_process_that_just_exited_reports_its_state(tmp_path):
    world = FakeWorld.create(hold={"kill"})
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    await c.start()
    killing = asyncio.create_task(c.kill(KILL))
    kill = await world.runtime.next_call("kill")
    world.runtime.status[c.id] = "stopped"  # died just before: runc says so
    kill.fail("container not running")
    while not (not c.lock.locked() and world.runtime.calls.of("state")):
        await asyncio.sleep(0)
    world.monitor.exit(c.id, 0)
    with pytest.raises(Exception, match="it is exited"):
        await killing
