"""core/records.py: stored containers decoded at start-up, alike ones once.

Whatever the decoder shares, each container must come back exactly as it was
stored, whether its record is alike others or not.
"""

import asyncio
import json
from dataclasses import asdict
from pathlib import Path

from support.fake_runtime import KILL, FakeWorld, fake_engine

from pyctrd.core import engine as engine_mod
from pyctrd.core.config import ContainerConfig
from pyctrd.core.container import ContainerStatus
from pyctrd.core.records import RecordDecoder
from pyctrd.core.state import State
from pyctrd.database import _dump


def reloaded(tmp_path: Path, world: FakeWorld) -> engine_mod.Engine:
    engine = engine_mod.Engine(engine_mod.Layout(tmp_path / "root", tmp_path / "run"),
                               world.runtime, world.monitor, storage=world.storage)
    engine.load()
    return engine


async def test_every_container_comes_back_as_stored_alike_or_not(tmp_path: Path) -> None:
    world = FakeWorld.create()
    first = fake_engine(tmp_path, world)
    await first.recover()
    made = [first.create_container("busybox", ["true"], {}) for _ in range(5)]
    # Records that differ from the rest, or hold the unique values elsewhere too.
    made.append(first.create_container("busybox", ["echo", "other"], {"name": "odd"}))
    made.append(first.create_container("busybox", ["true"], {"hostname": "own-host"}))
    made.append(first.create_container("busybox", ["true"], {
        "name": "labelled", "labels": {"name": "labelled", "id": "x", "created": "1"}}))
    twin = first.create_container("busybox", ["true"], {
        "name": "twin", "labels": {"name": "twin"}})
    made.append(twin)
    made.append(first.create_container("busybox", ["true"], {
        "name": "twin2", "labels": {"name": "twin2"}}))  # the same text, twin's name cut
    await made[0].start()
    stored = {c.id: (c.config.to_record(), c.status.to_record()) for c in made}
    first.close()

    second = reloaded(tmp_path, world)
    assert {cid: (c.config.to_record(), c.status.to_record())
            for cid, c in second.containers.items()} == stored
    alike = [second.containers[c.id] for c in made[1:5]]
    # Shared, not copied: one command, one capability list for the alike ones.
    assert len({id(c.config.command) for c in alike}) == 1
    assert len({id(c.config.capabilities) for c in alike}) == 1
    # Each has a status of its own.
    alike[0].status.exit_code = 5
    assert {c.status.exit_code for c in alike[1:]} == {0}
    second.close()


def test_a_record_not_alike_anything_is_decoded_as_it_is() -> None:
    config = ContainerConfig(id="c" * 64, name="n", image_id="i", image_ref="r",
                             command=["true"], env=[], workdir="/", user="0:0", uid=0,
                             gid=0, hostname="c" * 12, created=7)
    text = _dump(config.to_record())
    decoder = RecordDecoder()
    first = decoder.config("c" * 64, "n", text)
    assert first == config
    # The same remainder under another id, name and time: taken from the template.
    other = _dump({**config.to_record(), "id": "d" * 64, "name": "m", "hostname": "d" * 12,
                   "created": 9})
    second = decoder.config("d" * 64, "m", other)
    assert (second.id, second.name, second.hostname, second.created) == (
        "d" * 64, "m", "d" * 12, 9)
    assert second.command is first.command
    # A text whose unique values cannot be told apart is decoded whole.
    odd = _dump({**config.to_record(), "created": "soon"})
    assert decoder.config("c" * 64, "n", odd).created == "soon"


def test_equal_state_texts_give_separate_statuses() -> None:
    decoder = RecordDecoder()
    text = _dump(ContainerStatus(state=State.EXITED, exit_code=3).to_record())
    one, two = decoder.status(text), decoder.status(text)
    assert one == two and one is not two
    assert (one.state, one.exit_code) == (State.EXITED, 3)


async def test_a_call_on_a_held_container_waits_for_its_recovery(tmp_path: Path) -> None:
    world = FakeWorld.create()
    first = fake_engine(tmp_path, world)
    await first.recover()
    running = first.create_container("busybox", ["sleep", "1"], {"name": "running"})
    await running.start()
    idle = first.create_container("busybox", ["true"], {"name": "idle"})
    first.close()
    world.monitor.daemon_stopped()
    world.runtime.calls.hold.add("state")  # recovery asks; the test answers when it likes

    second = reloaded(tmp_path, world)
    task = second.begin_recovery()
    held, free = second.lookup_container("running"), second.lookup_container(idle.id)
    assert second.recovering.pending(held.id) and held.lock.locked()
    assert not second.recovering.pending(free.id) and not free.lock.locked()
    stop = asyncio.ensure_future(held.stop(0))
    ready = asyncio.ensure_future(second.recovering.ready(held.id))
    await second.recovering.ready(free.id)  # never held: at once
    await free.start()  # others are served meanwhile
    state_call = await world.runtime.next_call("state")
    assert state_call.cid == held.id
    await asyncio.sleep(0)
    assert not stop.done() and not ready.done() and not world.runtime.signals(held.id)
    world.runtime.on_kill = lambda cid, _sig: world.monitor.exit(cid, 137)
    world.runtime.calls.hold.clear()
    state_call.release()
    await task
    await ready
    assert not second.recovering.active
    await stop  # it acted on the recovered container: running, then stopped
    assert world.runtime.signals(held.id) == [KILL]
    assert held.state == State.EXITED
    second.close()


def test_a_status_record_is_what_asdict_gave() -> None:
    status = ContainerStatus(state=State.RUNNING, pid=7, init_pid=7, networks=["a", "b"],
                             addresses={"a": "10.0.0.2"}, published=[["tcp", 80, 8080, ""]],
                             health_log=[{"ExitCode": 0, "Output": "ok"}])
    assert _dump(status.to_record()) == _dump(asdict(status))
    assert ContainerStatus.from_record(json.loads(_dump(status.to_record()))) == status
