"""The daemon takes its name before recovery is done, and never answers from a
state recovery has not confirmed.

The runtime is a wrapper (not named runc, so recovery asks it for the state of
a container that may be running) whose `state` blocks while a gate file
exists: the test holds recovery of the running container for as long as it
likes, and sees that the name is taken, that calls on other containers are
answered meanwhile, and that calls on the held one (and listings) are answered
only once it is recovered, with its true state.
"""

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import stat
from pathlib import Path
from typing import Any

from conftest import CONTAINER, container_id, wait_pid_gone

RUNC = shutil.which("runc") or "/usr/sbin/runc"


async def varlink_call(socket_path: Path, method: str, parameters: dict[str, Any]
                       ) -> dict[str, Any]:
    """One Varlink call on its own connection; the reply (or error) as sent."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    try:
        writer.write(json.dumps({"method": method, "parameters": parameters}).encode()
                     + b"\0")
        await writer.drain()
        return dict(json.loads((await reader.readuntil(b"\0"))[:-1]))
    finally:
        writer.close()


def gated_runtime(directory: Path) -> tuple[Path, Path]:
    """A runtime that execs runc, its `state` waiting while the gate file exists."""
    directory.mkdir(parents=True)
    gate = directory / "gate"
    wrapper = directory / "gatedrt"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do\n'
        f'  if [ "$a" = state ]; then while [ -e {gate} ]; do sleep 0.02; done; fi\n'
        "done\n"
        f'exec {RUNC} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, gate


async def test_calls_wait_for_their_container_recovery_and_others_do_not(
        fresh_daemon: Any, client_factory: Any, tmp_path: Path) -> None:
    d = fresh_daemon()
    wrapper, gate = gated_runtime(tmp_path / "runtime")
    d.extra_args = ["--runtime", str(wrapper)]
    d.sigterm()
    d.start()
    bus = await client_factory(d.bus_address)
    running = await bus.run(["sleep", "1000"], name="bg-running")
    dies = await bus.run(["sleep", "1000"], name="bg-dies")
    idle = await bus.create(["true"], name="bg-idle")
    pid = await bus.prop(running, "PID")
    dies_pid = await bus.prop(dies, "PID")
    d.kill9()
    os.kill(dies_pid, signal.SIGKILL)
    assert wait_pid_gone(dies_pid, 10)

    gate.touch()  # recovery of bg-running now waits in the runtime's state
    try:
        d.start()  # returns once the name is taken: recovery is still held
        bus = await client_factory(d.bus_address)
        held_get = asyncio.ensure_future(bus.get_all(running, CONTAINER))
        held_list = asyncio.ensure_future(bus.manager("ListContainers"))
        held_objects = asyncio.ensure_future(bus.call(
            "/org/pyctrd1", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"))
        held_kill = asyncio.ensure_future(bus.ctr(running, "Kill", "s", ["SIGKILL"]))
        # a lookup by name too: a Remove cut short is finished by recovery
        held_lookup = asyncio.ensure_future(bus.manager("GetContainer", "s", ["bg-idle"]))
        held_varlink = asyncio.ensure_future(varlink_call(
            d.run_root / "io.pyctrd", "io.pyctrd.Container.Get", {"name": "bg-running"}))
        # Sent after those, answered before them: other containers are served.
        assert await bus.state(idle) == "configured"
        (inspected,) = await bus.ctr(idle, "Inspect")
        assert json.loads(inspected)["State"]["Status"] == "configured"
        held = (held_get, held_list, held_objects, held_kill, held_varlink, held_lookup)
        assert not any(f.done() for f in held)
        # bg-dies needed no runtime call: recovered already, with its exit.
        assert (await bus.ctr(dies, "Wait"))[0] == 137
        assert not any(f.done() for f in held)
    finally:
        gate.unlink()

    props = await held_get
    assert (props["State"], props["PID"]) == ("running", pid)
    (listed,) = await held_list
    states = {name: state for _id, name, _image, state, _path in listed}
    assert states == {"bg-running": "running", "bg-dies": "exited", "bg-idle": "configured"}
    (objects,) = await held_objects
    assert objects[running][CONTAINER]["State"].value == "running"
    await held_kill  # it found the container running, recovered
    assert (await held_lookup)[0] == idle
    info = (await held_varlink)["parameters"]["container"]
    assert (info["state"], info["pid"]) == ("running", pid)
    assert await bus.prop(dies, "ExitCode") == 137
    assert wait_pid_gone(pid, 10)
    assert container_id(running) in {container_id(p) for *_, p in listed}


async def test_a_removal_cut_short_is_finished_in_the_background_and_announced(
        fresh_daemon: Any, client_factory: Any) -> None:
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    path = await bus.create(["true"], name="bg-removing")
    await bus.ctr(path, "Mount", "s", [""])
    d.kill9()
    # As a crash after "remove:marked" leaves it (test_faults.py crashes there too).
    _mark_removing(d.root / "pyctrd.db", container_id(path))

    d.start()
    bus = await client_factory(d.bus_address)
    (listed,) = await bus.manager("ListContainers")  # waits for the whole recovery
    assert [name for _id, name, *_ in listed] == []
    err = await bus.fails(bus.state(path))
    assert err.type in ("org.freedesktop.DBus.Error.UnknownObject",
                        "org.pyctrd1.Error.NoSuchContainer")


def _mark_removing(database: Path, cid: str) -> None:
    db = sqlite3.connect(database)
    try:
        (state,) = db.execute("SELECT state FROM containers WHERE id = ?", (cid,)).fetchone()
        record = json.loads(state)
        record["removing"] = True
        with db:
            db.execute("UPDATE containers SET state = ? WHERE id = ?",
                       (json.dumps(record), cid))
    finally:
        db.close()
