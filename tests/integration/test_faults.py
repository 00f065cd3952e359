"""Fault injection: the daemon killed at every crash point, and a runtime that fails or hangs.

The crash matrix SIGKILLs pyctrd at each point of pyctrd.core.faults.POINTS
(tests/support/crashing_pyctrd.py), restarts it on the same root and checks
that what it shows is true and usable. The runtime tests run the daemon on
tests/support/faulty_runtime.py, a runc that fails or hangs chosen verbs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    CONTAINER,
    ERROR,
    SUPPORT,
    Client,
    Daemon,
    container_id,
    leftovers,
    mounts_under,
    process_alive,
    runc_state,
    wait_pid_gone,
)
from dbus_fast import DBusError

from pyctrd.core import faults

COOPERATIVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
# A PID 1 ignores signals it has no handler for: this one says when its handler is set.
READY_THEN_COOPERATIVE = ["sh", "-c", "trap 'exit 0' TERM; touch /ready; "
                          "while :; do sleep 0.1; done"]
# The error a caller gets when the daemon dies before answering.
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"
# Every state some method accepts (Remove alone accepts "unknown": a dead end).
USABLE = {"configured", "created", "running", "paused", "exited"}
ACTIVE = {"created", "running", "paused"}


async def restart(d: Daemon, client_factory: Any, crash_at: str | None = None) -> Client:
    """Stop the daemon (SIGTERM: containers keep running) unless it is down; start it."""
    if d.running():
        assert d.sigterm() == 0
    d.crash_at = crash_at
    d.start()
    return await client_factory(d.bus_address)


async def wait_file(path: Path, timeout: float = 10.0) -> None:
    """Wait for a file a container creates (there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        await asyncio.sleep(0.01)


async def check_consistent(bus: Client, d: Daemon) -> dict[str, dict[str, Any]]:
    """Every container's properties against runc, /proc and the mount table; by name."""
    (listed,) = await bus.manager("ListContainers")
    names = [name for _, name, _, _, _ in listed]
    assert len(names) == len(set(names)), f"duplicate names: {names}"
    found: dict[str, dict[str, Any]] = {}
    mounted = set(mounts_under(d.root, d.run_root))
    for cid, name, _image, state, path in listed:
        props = await bus.get_all(path, CONTAINER)
        where = f"{name} ({state})"
        assert props["State"] == state, where
        assert state in USABLE, f"{where}: a state its methods do not accept"
        runc = runc_state(d.run_root, cid)
        pid = props["PID"]
        if state in ("running", "paused"):
            assert pid > 0 and process_alive(pid), f"{where}: PID {pid} is not alive"
            assert runc is not None and (runc["status"], runc["pid"]) == (state, pid), \
                f"{where}: runc says {runc}"
        elif state == "created":
            assert runc is not None and runc["status"] == "created", f"{where}: runc {runc}"
        else:
            assert pid == 0, where
            # "stopped" until the cleanup after an exit has run
            assert runc is None or runc["status"] == "stopped", f"{where}: runc {runc}"
        merged = str(d.root / "containers" / cid / "merged")
        assert props["Mounted"] == (merged in mounted), \
            f"{where}: Mounted {props['Mounted']}, mount table {sorted(mounted)}"
        if props["Mounted"]:
            assert props["Mountpoint"] == merged, where
        shm = str(d.run_root / "containers" / cid / "shm")
        assert (shm in mounted) == (state in ACTIVE), f"{where}: /dev/shm mount {shm}"
        found[name] = {**props, "path": path}
    return found


async def finish_all(bus: Client, d: Daemon) -> list[str]:
    """Drive every container to its end: Stop, Start, exit, Wait, Remove; the ids seen."""
    (listed,) = await bus.manager("ListContainers")
    ids = []
    for cid, name, _image, state, path in listed:
        ids.append(cid)
        if state in ("running", "paused"):
            await bus.ctr(path, "Stop", "u", [5])
        await bus.ctr(path, "Start")
        assert await bus.state(path) == "running", name
        pid = await bus.prop(path, "PID")
        # SIGKILL: a SIGTERM could come before the shell has set its trap
        await bus.ctr(path, "Kill", "s", ["SIGKILL"])
        assert await bus.ctr(path, "Wait", timeout=10) == [137], name
        assert wait_pid_gone(pid, 10), name
        await bus.ctr(path, "Remove", "b", [False])
        err = await bus.fails(bus.manager("GetContainer", "s", [cid]))
        assert err.type == ERROR + "NoSuchContainer"
    assert await bus.manager("ListContainers") == [[]]
    return ids


# --------------------------------------------------------------------------
# the crash matrix


@dataclass(frozen=True)
class Crash:
    step: str  # the scenario's call that passes the point
    after: frozenset[str]  # the victim's acceptable states after a restart; empty: gone


def _crash(step: str, *after: str) -> Crash:
    return Crash(step, frozenset(after))


CRASHES = {
    "create:saved": _crash("create", "configured"),
    "storage:mounted": _crash("mount", "configured"),
    "storage:unmounted": _crash("unmount", "configured"),
    # runc created it under conmon, unsaved: rolled back (or adopted as created)
    "init:launched": _crash("start", "configured", "created"),
    "start:started": _crash("start", "running"),
    "kill:sent": _crash("kill", "running"),
    "pause:paused": _crash("pause", "paused"),
    "unpause:resumed": _crash("unpause", "running"),
    "stop:signalled": _crash("stop", "exited"),
    "cleanup:deleted": _crash("stop", "exited"),
    "remove:marked": _crash("remove"),
    "remove:runtime-deleted": _crash("remove"),
    "remove:storage-destroyed": _crash("remove"),
}


# Points outside a container's life, with tests of their own (test_recovery.py).
OTHER_POINTS = {"import:layers-stored"}


def test_every_crash_point_has_a_scenario() -> None:
    assert set(CRASHES) | OTHER_POINTS == set(faults.POINTS)
    assert not set(CRASHES) & OTHER_POINTS


@pytest.mark.parametrize("point", list(CRASHES))
async def test_crash_at(point: str, fresh_daemon: Any, client_factory: Any) -> None:
    expected = CRASHES[point]
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    bystander = await bus.run(COOPERATIVE, name="bystander")
    bystander_pid = await bus.prop(bystander, "PID")
    bus = await restart(d, client_factory, crash_at=point)

    victim = ""
    victim_pid = 0

    async def create() -> None:
        nonlocal victim
        victim = await bus.create(READY_THEN_COOPERATIVE, name="victim")

    async def start() -> None:
        nonlocal victim_pid
        await bus.ctr(victim, "Start")
        victim_pid = await bus.prop(victim, "PID")
        # so that Stop's SIGTERM (and a crash right after it) finds the trap set
        await wait_file(Path(await bus.prop(victim, "Mountpoint")) / "ready")

    async def stop() -> None:
        await bus.ctr(victim, "Stop", "u", [5])
        assert await bus.state(victim) == "exited"
        # Stop returns after the cleanup: storage released
        assert await bus.prop(victim, "Mounted") is False

    steps = {
        "create": create,
        "mount": lambda: bus.ctr(victim, "Mount", "s", [""]),
        "unmount": lambda: bus.ctr(victim, "Unmount"),
        "start": start,
        "kill": lambda: bus.ctr(victim, "Kill", "s", ["SIGCONT"]),
        "pause": lambda: bus.ctr(victim, "Pause"),
        "unpause": lambda: bus.ctr(victim, "Unpause"),
        "stop": stop,
        "remove": lambda: bus.ctr(victim, "Remove", "b", [False]),
    }
    crashed_in = None
    for step, call in steps.items():
        try:
            await call()
        except DBusError as err:
            assert err.type == NO_REPLY, f"{step} failed before the crash: {err.type} {err.text}"
            crashed_in = step
            break
    assert crashed_in == expected.step, f"crashed in {crashed_in}, expected {expected.step}"
    d.wait_crashed()
    assert process_alive(bystander_pid), "the bystander died with the daemon"
    if point == "stop:signalled":
        # SIGTERM was sent: let it take effect, so what the restart finds is settled
        assert wait_pid_gone(victim_pid, 10)

    bus = await restart(d, client_factory)
    found = await check_consistent(bus, d)
    assert found["bystander"]["State"] == "running"
    assert found["bystander"]["PID"] == bystander_pid
    if not expected.after:
        assert set(found) == {"bystander"}
        cid = container_id(victim)
        err = await bus.fails(bus.manager("GetContainer", "s", [cid]))
        assert err.type == ERROR + "NoSuchContainer"
        assert not (d.root / "containers" / cid).exists()
        assert not (d.run_root / "containers" / cid).exists()
    else:
        assert set(found) == {"bystander", "victim"}
        state = found["victim"]["State"]
        assert state in expected.after, f"victim is {state}, expected {set(expected.after)}"
        if victim_pid and state in ("running", "paused"):
            assert found["victim"]["PID"] == victim_pid
        if state == "exited":
            assert found["victim"]["ExitCode"] == 0  # the real code, from conmon
        victim = found["victim"]["path"]
        (by_name,) = await bus.manager("GetContainer", "s", ["victim"])
        assert by_name == victim

    ids = await finish_all(bus, d)
    assert not process_alive(bystander_pid)
    assert leftovers(d, ids) == []


# --------------------------------------------------------------------------
# a runtime that fails or hangs


class FaultyRuntime:
    """A copy of tests/support/faulty_runtime.py with its control file beside it."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "faulty-runc"
        source = (SUPPORT / "faulty_runtime.py").read_text()
        self.path.write_text(f"#!{sys.executable}\n{source}")
        self.path.chmod(0o755)
        self.control = self.path.with_suffix(".json")
        self.set()

    def set(self, fail: tuple[str, ...] = (), hang: tuple[str, ...] = ()) -> None:
        self.control.write_text(json.dumps({"fail": list(fail), "hang": list(hang)}))

    def hanging_pid(self, verb: str, timeout: float = 10.0) -> int:
        """Wait for the hang of ``verb`` to begin; the hanging process's PID."""
        marker = self.path.with_name(f"{self.path.stem}.{verb}.hanging")
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert time.monotonic() < deadline, f"{verb} never began to hang"
            time.sleep(0.01)
        return int(marker.read_text())


@pytest.fixture
async def faulty(fresh_daemon: Any, client_factory: Any,
                 tmp_path: Path) -> tuple[Daemon, Client, FaultyRuntime]:
    """A daemon on the faulty runtime (runtime_timeout 2 s) and a client of it."""
    d = fresh_daemon()
    runtime = FaultyRuntime(tmp_path / "faulty")
    config = tmp_path / "faulty.toml"
    config.write_text("runtime_timeout = 2\n")
    d.extra_args = ["--runtime", str(runtime.path), "--config", str(config)]
    bus = await restart(d, client_factory)
    assert await bus.manager_prop("Runtime") == str(runtime.path)
    return d, bus, runtime


def storage_mounts(d: Daemon, path: str) -> list[str]:
    cid = container_id(path)
    return mounts_under(d.root / "containers" / cid, d.run_root / "containers" / cid)


def traces(d: Daemon, path: str) -> list[str]:
    """What a container that failed to start must not keep: mounts, runc state, a
    conmon or runtime process naming it."""
    cid = container_id(path)
    found = storage_mounts(d, path)
    if (runc := runc_state(d.run_root, cid)) is not None:
        found.append(f"runc: {runc['status']}")
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and cid.encode() in (proc / "cmdline").read_bytes():
                found.append(f"process {proc.name}")
        except OSError:
            continue
    return found


async def test_pause_failing_is_runtime_failed_and_leaves_it_running(faulty: Any) -> None:
    d, bus, runtime = faulty
    path = await bus.run(COOPERATIVE)
    pid = await bus.prop(path, "PID")
    runtime.set(fail=("pause",))
    err = await bus.fails(bus.ctr(path, "Pause"))
    assert err.type == ERROR + "RuntimeFailed"
    assert "injected failure of pause" in err.text
    assert await bus.state(path) == "running"
    assert runc_state(d.run_root, container_id(path))["status"] == "running"
    runtime.set()
    await bus.ctr(path, "Pause")
    assert await bus.state(path) == "paused"
    await bus.ctr(path, "Stop", "u", [5])
    assert wait_pid_gone(pid, 10)


async def test_start_failing_leaks_nothing_and_start_works_again(faulty: Any) -> None:
    d, bus, runtime = faulty
    path = await bus.create(COOPERATIVE)
    runtime.set(fail=("start",))
    t0 = time.monotonic()
    err = await bus.fails(bus.ctr(path, "Start"))
    assert time.monotonic() - t0 < 5, "the failed Start hung"
    assert err.type == ERROR + "RuntimeFailed"
    assert "injected failure of start" in err.text
    # Start accepts it again, and nothing of the attempt is left running or mounted
    assert await bus.state(path) in ("configured", "exited")
    assert await bus.prop(path, "PID") == 0
    assert await bus.prop(path, "Mounted") is False
    assert traces(d, path) == []
    runtime.set()
    await bus.ctr(path, "Start")
    assert await bus.state(path) == "running"
    await bus.ctr(path, "Remove", "b", [True])
    assert leftovers(d, [container_id(path)]) == []


async def test_create_failing_is_clear_and_leaves_it_configured(faulty: Any) -> None:
    d, bus, runtime = faulty
    path = await bus.create(COOPERATIVE)
    runtime.set(fail=("create",))
    for method in ("Init", "Start"):
        err = await bus.fails(bus.ctr(path, method))
        assert err.type == ERROR + "RuntimeFailed", method
        assert "injected failure of create" in err.text, err.text
        assert await bus.state(path) == "configured"
        assert await bus.prop(path, "Mounted") is False
        assert traces(d, path) == [], method
    runtime.set()
    await bus.ctr(path, "Start")
    await bus.ctr(path, "Remove", "b", [True])
    assert leftovers(d, [container_id(path)]) == []


async def _answers_meanwhile(bus: Client, hung: str, other: str) -> None:
    """While a call on ``hung`` hangs in the runtime: properties and another container work.

    The caller then checks that the hanging call is still unanswered: replies come in
    order on one connection, so a daemon blocked by the hang would answer it first.
    """
    assert await bus.prop(hung, "Name")
    await bus.ctr(other, "Pause")
    await bus.ctr(other, "Unpause")
    assert await bus.state(other) == "running"


async def test_create_hanging_times_out_and_daemon_keeps_answering(faulty: Any) -> None:
    d, bus, runtime = faulty
    other = await bus.run(COOPERATIVE)
    path = await bus.create(COOPERATIVE)
    runtime.set(hang=("create",))
    t0 = time.monotonic()
    call = asyncio.ensure_future(bus.fails(bus.ctr(path, "Start")))
    hanging = await asyncio.to_thread(runtime.hanging_pid, "create")
    await _answers_meanwhile(bus, path, other)
    assert not call.done()
    err = await call
    took = time.monotonic() - t0
    assert 1.5 <= took < 6, f"Start failed after {took:.1f} s; runtime_timeout is 2 s"
    assert err.type == ERROR + "RuntimeFailed"
    assert "within 2 s" in err.text, err.text
    assert wait_pid_gone(hanging, 5), "the hanging runtime was not killed"
    assert await bus.state(path) == "configured"
    assert traces(d, path) == []
    runtime.set()
    await bus.ctr(path, "Start")
    for p in (path, other):
        await bus.ctr(p, "Remove", "b", [True])
    assert leftovers(d, [container_id(path), container_id(other)]) == []


async def test_kill_hanging_times_out_and_daemon_keeps_answering(faulty: Any) -> None:
    d, bus, runtime = faulty
    other = await bus.run(COOPERATIVE)
    path = await bus.run(COOPERATIVE)
    pid = await bus.prop(path, "PID")
    runtime.set(hang=("kill",))
    t0 = time.monotonic()
    call = asyncio.ensure_future(bus.fails(bus.ctr(path, "Kill", "s", ["SIGCONT"])))
    hanging = await asyncio.to_thread(runtime.hanging_pid, "kill")
    await _answers_meanwhile(bus, path, other)
    assert not call.done()
    err = await call
    took = time.monotonic() - t0
    assert 1.5 <= took < 6, f"Kill failed after {took:.1f} s; runtime_timeout is 2 s"
    assert err.type == ERROR + "RuntimeFailed"
    assert "within 2 s" in err.text, err.text
    assert wait_pid_gone(hanging, 5), "the hanging runtime was not killed"
    assert await bus.state(path) == "running"
    assert await bus.prop(path, "PID") == pid and process_alive(pid)
    runtime.set()
    for p in (path, other):
        await bus.ctr(p, "Stop", "u", [5])
        await bus.ctr(p, "Remove", "b", [False])
    assert leftovers(d, [container_id(path), container_id(other)]) == []


async def test_delete_failing_fails_remove_until_cleared(faulty: Any,
                                                         client_factory: Any) -> None:
    d, bus, runtime = faulty
    path = await bus.create(["true"])
    runtime.set(fail=("delete",))
    await bus.ctr(path, "Start")
    assert await bus.ctr(path, "Wait", timeout=10) == [0]
    err = await bus.fails(bus.ctr(path, "Remove", "b", [False]))
    assert err.type == ERROR + "RuntimeFailed"
    assert "injected failure of delete" in err.text
    (found,) = await bus.manager("GetContainer", "s", [container_id(path)])
    assert found == path
    assert await bus.state(path) == "exited"
    runtime.set()
    # the caller was told Remove failed: a restart must not finish it behind their back
    bus = await restart(d, client_factory)
    (found,) = await bus.manager("GetContainer", "s", [container_id(path)])
    assert found == path
    assert await bus.state(path) == "exited"
    await bus.ctr(path, "Start")
    assert await bus.ctr(path, "Wait", timeout=10) == [0]
    await bus.ctr(path, "Remove", "b", [False])
    err = await bus.fails(bus.manager("GetContainer", "s", [container_id(path)]))
    assert err.type == ERROR + "NoSuchContainer"
    assert leftovers(d, [container_id(path)]) == []


# --------------------------------------------------------------------------
# the daemon killed during a long Stop


async def test_kill9_during_long_stop(fresh_daemon: Any, client_factory: Any) -> None:
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    # PID 1 notes the SIGTERM in its rootfs (visible from the host) and carries on
    path = await bus.run(["sh", "-c", "trap 'touch /got-term' TERM; touch /ready; "
                          "while :; do sleep 0.1; done"], name="stubborn")
    pid = await bus.prop(path, "PID")
    rootfs = Path(await bus.prop(path, "Mountpoint"))
    await wait_file(rootfs / "ready")
    stop = asyncio.ensure_future(bus.fails(bus.ctr(path, "Stop", "u", [30], timeout=60)))
    await wait_file(rootfs / "got-term")  # Stop has sent SIGTERM and now waits
    assert not stop.done()
    d.kill9()
    assert (await stop).type == NO_REPLY
    assert process_alive(pid), "the container died with the daemon"

    bus = await restart(d, client_factory)
    found = await check_consistent(bus, d)
    assert (found["stubborn"]["State"], found["stubborn"]["PID"]) == ("running", pid)
    t0 = time.monotonic()
    await bus.ctr(path, "Stop", "u", [1])
    took = time.monotonic() - t0
    assert 1.0 <= took < 5.0, f"Stop(1) on a TERM-ignoring PID 1 took {took:.2f} s"
    assert (await bus.state(path), await bus.prop(path, "ExitCode")) == ("exited", 137)
    assert wait_pid_gone(pid, 5)
    await bus.ctr(path, "Remove", "b", [False])
    assert leftovers(d, [container_id(path)]) == []

