"""Recovery reads runc's own files, not `runc state` per container: after a
SIGKILLed daemon restarts, running, paused, created and exited containers
(and one that exited while it was down) show their true state, with no
runtime call made for it, and work on from there.

The daemon runs a wrapper named `runc` that logs each call and execs the
real runc, so the test sees which calls recovery made.
"""

import os
import shutil
import signal
from pathlib import Path
from typing import Any

from conftest import CONTAINER, container_id, runc_state, wait_pid_gone
from support.logging_runc import logging_runc, verbs

RUNC = shutil.which("runc") or "/usr/sbin/runc"


async def test_restart_reads_state_from_runc_files_for_every_state(
        fresh_daemon: Any, client_factory: Any, tmp_path: Path) -> None:
    d = fresh_daemon()
    wrapper, log = logging_runc(tmp_path / "runtime")
    d.extra_args = ["--runtime", str(wrapper)]
    d.sigterm()
    d.start()
    bus = await client_factory(d.bus_address)
    assert await bus.manager_prop("Runtime") == str(wrapper)
    running = await bus.run(["sleep", "1000"], name="r-running")
    paused = await bus.run(["sleep", "1000"], name="r-paused")
    await bus.ctr(paused, "Pause")
    created = await bus.create(["sleep", "1000"], name="r-created")
    await bus.ctr(created, "Init")
    exited = await bus.run(["sh", "-c", "exit 3"], name="r-exited")
    assert (await bus.ctr(exited, "Wait"))[0] == 3
    dies = await bus.run(["sleep", "1000"], name="r-dies-while-down")
    pids = {p: await bus.prop(p, "PID") for p in (running, paused, created, dies)}

    # (Start reads runc's exec fifo itself: no `runc start`, oci/execfifo.py.)
    assert {"create", "pause"} <= set(verbs(log)), "the wrapper is not in use"
    assert "start" not in verbs(log)
    d.kill9()
    os.kill(pids[dies], signal.SIGKILL)
    assert wait_pid_gone(pids[dies], 10)
    log.unlink(missing_ok=True)
    d.start()
    bus = await client_factory(d.bus_address)

    # no runtime call was needed to know any of them
    assert verbs(log) == [], f"recovery ran the runtime: {verbs(log)}"
    expect = {running: ("running", pids[running]), paused: ("paused", pids[paused]),
              created: ("created", pids[created]), exited: ("exited", 0),
              dies: ("exited", 0)}
    for path, (state, pid) in expect.items():
        props = await bus.get_all(path, CONTAINER)
        assert (props["State"], props["PID"]) == (state, pid), props["Name"]
        runc = runc_state(d.run_root, container_id(path))
        if state == "exited":
            assert runc is None or runc["status"] == "stopped"
        else:
            assert runc is not None and runc["status"] == state
    assert await bus.prop(exited, "ExitCode") == 3
    assert await bus.prop(dies, "ExitCode") == 137

    # and each goes on from there: exits are watched again
    await bus.ctr(paused, "Unpause")
    assert await bus.state(paused) == "running"
    await bus.ctr(created, "Start")
    assert await bus.state(created) == "running"
    for path in (running, paused, created):
        await bus.ctr(path, "Kill", "s", ["SIGKILL"])
        assert (await bus.ctr(path, "Wait"))[0] == 137
    await bus.ctr(dies, "Start")
    assert await bus.state(dies) == "running"
    await bus.ctr(dies, "Kill", "s", ["SIGKILL"])
    assert (await bus.ctr(dies, "Wait"))[0] == 137
