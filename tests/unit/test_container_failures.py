"""Unexpected failures at each step of Init, Start and Mount, and in start-up recovery.

The fake world raises what a test injects (OSError(EMFILE) as when the daemon
is out of descriptors, ValueError as a bug would) at the next call of one
verb. Whatever it is, the caller meets an error of the catalogue naming the
layer that failed, and the container is left whole: nothing mounted, no
runtime state, Mounted false on the object and in the store, and the next
call works.
"""

import asyncio
import errno

import pytest
from support.fake_runtime import FakeWorld, fake_engine

from pyctrd.core import container as container_mod
from pyctrd.core import engine as engine_mod
from pyctrd.core.container import Container
from pyctrd.core.engine import Engine
from pyctrd.core.state import State
from pyctrd.errors import Failed, PyctrdError, RuntimeFailed, StorageFailed


def emfile() -> OSError:
    return OSError(errno.EMFILE, "Too many open files")


FAULTS = {"EMFILE": emfile, "ValueError": lambda: ValueError("unexpected")}

# Init's steps through the adapters, and the error the caller meets at each.
ADAPTER_STEPS = {
    "mount_rootfs": StorageFailed,
    "mount_shm": StorageFailed,
    "clear_exit": RuntimeFailed,
    "launch": RuntimeFailed,
}


def stored_status(engine: Engine, container: Container) -> dict:
    for config, status in engine.store.containers():
        if config["id"] == container.id:
            return status
    raise AssertionError("not stored")


def assert_whole(engine: Engine, world: FakeWorld, c: Container, state: State) -> None:
    """Nothing of a failed Init or Start is left: no mount, no runtime container."""
    assert c.state == state
    assert world.storage.mounted == set()
    assert not c.status.mounted and c.status.mountpoint == ""
    assert c.id not in world.runtime.status
    stored = stored_status(engine, c)
    assert (stored["state"], stored["mounted"], stored["needs_cleanup"]) == (
        state.value, False, False)


async def bounded(coro, seconds: float = 5.0):
    return await asyncio.wait_for(coro, seconds)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("verb", "kind"), ADAPTER_STEPS.items())
@pytest.mark.parametrize("call", ["init", "start"])
async def test_adapter_failure_in_init_rolls_back(tmp_path, call, verb, kind, fault):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    world.inject(verb, FAULTS[fault]())

    with pytest.raises(kind) as caught:
        await bounded(getattr(c, call)())
    assert "failed" in str(caught.value) and "Traceback" not in str(caught.value)
    assert_whole(engine, world, c, State.CONFIGURED)

    await bounded(getattr(c, call)())  # nothing was left in the way
    assert c.state == (State.CREATED if call == "init" else State.RUNNING)
    assert c.status.mounted


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("step", "kind"), [("build_spec", Failed),
                                            ("_write_atomic", RuntimeFailed)])
async def test_spec_failure_in_start_rolls_back(tmp_path, monkeypatch, step, kind, fault):
    """Steps of Init's own (the spec, config.json): after the rootfs is mounted."""
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    real = getattr(container_mod, step)
    made = FAULTS[fault]()

    def failing(*args, **kwargs):
        raise made

    monkeypatch.setattr(container_mod, step, failing)
    with pytest.raises(kind):
        await bounded(c.start())
    assert_whole(engine, world, c, State.CONFIGURED)
    assert not world.runtime.calls.of("delete")  # conmon never ran: nothing to delete

    monkeypatch.setattr(container_mod, step, real)
    await bounded(c.start())
    assert c.state == State.RUNNING


@pytest.mark.parametrize("fault", FAULTS)
async def test_runtime_start_failure_kills_and_releases_everything(tmp_path, fault):
    world = FakeWorld.create(kill_exits=True)
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    world.inject("start", FAULTS[fault]())

    with pytest.raises(RuntimeFailed, match="start failed"):
        await bounded(c.start())
    await bounded(c._cleanup_task) if c._cleanup_task else None
    assert c.status.exit_code == 137
    assert_whole(engine, world, c, State.EXITED)

    await bounded(c.start())
    assert c.state == State.RUNNING


async def test_start_failure_while_runc_cannot_run_at_all_answers_at_once(tmp_path):
    """EMFILE for runc start, kill and state alike: no exit is coming, so Start does not
    wait for one; the container stays created (as runc has it) and starts later."""
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    await c.init()
    for verb in ("start", "kill", "state"):
        world.inject(verb, emfile())

    with pytest.raises(RuntimeFailed, match="Too many open files"):
        await bounded(c.start(), 2.0)
    assert c.state == State.CREATED and not c.lock.locked()

    await bounded(c.start())
    assert c.state == State.RUNNING


async def test_undo_that_fails_too_is_finished_by_the_next_init(tmp_path):
    """launch fails, and so does the runtime delete that undoes it: the mounts are
    released all the same, and the runtime state is deleted at the next Init."""
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    world.inject("launch", emfile())
    world.inject("delete", emfile())

    with pytest.raises(RuntimeFailed):
        await bounded(c.init())
    assert c.state == State.CONFIGURED
    assert world.storage.mounted == set() and not c.status.mounted
    assert c.status.needs_cleanup  # the delete is owed

    deletes = len(world.runtime.calls.of("delete"))
    await bounded(c.init())
    assert len(world.runtime.calls.of("delete")) == deletes + 1  # the owed delete
    assert c.state == State.CREATED


@pytest.mark.parametrize("fault", FAULTS)
async def test_mount_failure_leaves_it_unmounted(tmp_path, fault):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    world.inject("mount_rootfs", FAULTS[fault]())
    with pytest.raises(StorageFailed):
        await bounded(c.mount())
    assert not c.status.mounted and not c.status.user_mounted
    assert world.storage.mounted == set()
    assert await bounded(c.mount())


@pytest.mark.parametrize("fault", FAULTS)
async def test_kill_and_pause_failures_are_runtime_failed(tmp_path, fault):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["sleep", "9"], {})
    await c.start()
    for verb, call in (("kill", c.kill(15)), ("pause", c.pause())):
        world.inject(verb, FAULTS[fault]())
        with pytest.raises(RuntimeFailed):
            await bounded(call)
        assert c.state == State.RUNNING


async def restart(tmp_path, world: FakeWorld) -> Engine:
    engine = engine_mod.Engine(engine_mod.Layout(tmp_path / "root", tmp_path / "run"),
                               world.runtime, world.monitor, storage=world.storage)
    engine.load()
    await engine.recover()
    return engine


@pytest.mark.parametrize("fault", FAULTS)
async def test_one_containers_failed_recovery_marks_it_unknown_and_spares_the_rest(
        tmp_path, fault):
    world = FakeWorld.create()
    first = fake_engine(tmp_path, world)
    await first.recover()
    broken = first.create_container("busybox", ["sleep", "9"], {"name": "broken"})
    fine = first.create_container("busybox", ["sleep", "9"], {"name": "fine"})
    await broken.start()
    await fine.start()
    first.close()
    world.monitor.daemon_stopped()
    # Re-adoption asks runc for each container's state; the first such call fails
    # unexpectedly. Which container meets it depends on order: name the one that did.
    world.inject("state", FAULTS[fault]())

    second = await bounded(restart(tmp_path, world))
    states = {n: second.lookup_container(n).state for n in ("broken", "fine")}
    assert sorted(states.values()) == sorted([State.UNKNOWN, State.RUNNING]), states
    unknown = next(n for n, s in states.items() if s == State.UNKNOWN)
    # stored so, and the next start recovers it
    second.close()
    third = await bounded(restart(tmp_path, world))
    assert third.lookup_container(unknown).state == State.RUNNING
    assert third.lookup_container("fine").state == State.RUNNING


async def test_an_unreadable_container_record_is_skipped_not_fatal(tmp_path):
    world = FakeWorld.create()
    first = fake_engine(tmp_path, world)
    good = first.create_container("busybox", ["true"], {"name": "good"})
    first.store.add_container("ef" * 32, "bad", {"id": "ef" * 32, "name": "bad"},
                              {"state": "no-such-state"})
    first.close()

    second = await bounded(restart(tmp_path, world))
    assert second.lookup_container("good").id == good.id
    assert "ef" * 32 not in second.containers
    with pytest.raises(PyctrdError):  # its name stays taken in the store
        second.create_container("busybox", ["true"], {"name": "bad"})


async def test_import_out_of_fds_leaves_no_staging_once_fds_are_back(tmp_path, monkeypatch):
    """An import failing with EMFILE cannot delete its staging dir either: it is deleted
    as soon as that works again (here: the third attempt), not at the next start."""
    from pyctrd.core import stagingsweep

    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    engine._staging.retry = 0.01
    tmp = engine.layout.tmp

    async def failing_import(fd, reference):
        (tmp / "0123456789abcdef" / "blobs").mkdir(parents=True)
        raise emfile()

    real_remove = stagingsweep.remove_quietly
    attempts = []

    def remove_while_out_of_fds(path):
        attempts.append(path)
        return [emfile()] if len(attempts) < 3 else real_remove(path)

    monkeypatch.setattr(engine.catalogue, "import_image", failing_import)
    monkeypatch.setattr(stagingsweep, "remove_quietly", remove_while_out_of_fds)
    with pytest.raises(StorageFailed, match="Too many open files"):
        await engine.import_image(0, "x")
    await bounded(engine._staging.wait())
    assert len(attempts) == 3
    assert list(tmp.iterdir()) == []


async def test_sweep_never_touches_the_staging_dir_of_a_running_import(tmp_path):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    sweeper = engine._staging
    sweeper.retry = 0.01
    sweeper.attempts = 5
    with sweeper.importing():
        (engine.layout.tmp / "in-use").mkdir()
        sweeper.sweep_soon()
        await bounded(sweeper.wait())
        assert (engine.layout.tmp / "in-use").exists()
    await bounded(sweeper.wait())  # the import ended: now it is a leftover
    assert not (engine.layout.tmp / "in-use").exists()


@pytest.mark.parametrize("fault", FAULTS)
async def test_export_failure_is_storage_failed_and_unmounts(tmp_path, monkeypatch, fault):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    made = FAULTS[fault]()

    def failing(root, fd):
        raise made

    monkeypatch.setattr(container_mod.archive, "export_tree", failing)
    with pytest.raises(StorageFailed, match="exporting the root filesystem failed"):
        await bounded(c.export(1))
    assert world.storage.mounted == set() and not c.status.mounted


async def test_init_cancelled_during_launch_is_undone(tmp_path):
    """The daemon stopping (its tasks cancelled) mid-Init leaves nothing mounted."""
    world = FakeWorld.create(hold={"launch"})
    engine = fake_engine(tmp_path, world)
    c = engine.create_container("busybox", ["true"], {})
    initing = asyncio.create_task(c.init())
    await world.monitor.calls.next_call("launch")
    assert c.status.mounted
    initing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await bounded(initing)
    assert c.state == State.CONFIGURED
    assert world.storage.mounted == set() and not c.status.mounted
