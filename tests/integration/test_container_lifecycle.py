"""A container's way through the state machine, its exit codes, Stop and Kill."""

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from dbus_fast import DBusError

COOPERATIVE_HELLO = ["sh", "-c",
                     "echo hello; trap 'exit 0' TERM; while :; do sleep 0.1; done"]
COOPERATIVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
# busybox sleep as PID 1: no handler for SIGTERM, so the kernel ignores it.
STUBBORN = ["sleep", "1000"]


def freezer_state(pid: int) -> str:
    """FROZEN/THAWED (cgroup v1 freezer) or frozen/thawed (cgroup v2) of ``pid``."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            return Path(f"/sys/fs/cgroup/freezer{path}/freezer.state").read_text().strip()
        if hierarchy == "0" and controllers == "":
            events = Path(f"/sys/fs/cgroup{path}/cgroup.events")
            if events.exists():
                for ev in events.read_text().splitlines():
                    key, value = ev.split()
                    if key == "frozen":
                        return "frozen" if value == "1" else "thawed"
    raise AssertionError(f"no freezer cgroup found for pid {pid}")


async def term_trap_set(pid: int, timeout: float = 10.0) -> None:
    """Until ``pid`` catches SIGTERM (its SigCgt mask has bit 15)."""
    deadline = time.monotonic() + timeout
    while True:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines()
                          if line.startswith("SigCgt:")), 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        assert time.monotonic() < deadline, f"{pid} never set its TERM trap"
        await asyncio.sleep(0.01)


async def test_full_lifecycle(bus, daemon):
    path = await bus.create(COOPERATIVE_HELLO, name="lifecycle-full", labels={"k": "v"})
    cid = path.rsplit("/", 1)[1]
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    props = await bus.get_all(path, "org.pyctrd1.Container")
    assert props["State"] == "configured"
    assert props["PID"] == 0
    assert props["Id"] == cid
    assert props["Name"] == "lifecycle-full"
    assert props["Image"] == "busybox"
    assert props["ImageId"] == daemon.image_id
    assert props["Command"] == COOPERATIVE_HELLO
    assert props["Labels"] == {"k": "v"}
    assert props["StartedTimestamp"] == 0
    assert props["FinishedTimestamp"] == 0
    assert props["CreatedTimestamp"] > 0

    await bus.ctr(path, "Init")
    assert await bus.state(path) == "created"
    assert await bus.prop(path, "PID") == 0  # API.md: 0 unless running or paused

    await bus.ctr(path, "Start")
    assert await bus.state(path) == "running"
    pid = await bus.prop(path, "PID")
    assert pid > 0
    assert os.path.exists(f"/proc/{pid}")
    started = await bus.prop(path, "StartedTimestamp")
    assert started > 0

    await bus.ctr(path, "Pause")
    assert await bus.state(path) == "paused"
    assert await bus.prop(path, "PID") == pid
    assert freezer_state(pid).lower() == "frozen"

    await bus.ctr(path, "Unpause")
    assert await bus.state(path) == "running"
    assert freezer_state(pid).lower() == "thawed"

    await bus.ctr(path, "Stop", "u", [5])
    props = await bus.get_all(path, "org.pyctrd1.Container")
    assert props["State"] == "exited"
    assert props["PID"] == 0
    assert props["ExitCode"] == 0
    assert props["FinishedTimestamp"] > props["StartedTimestamp"] == started > 0
    assert not os.path.exists(f"/proc/{pid}")

    log = Path(props["LogPath"]).read_text()
    assert any(line.endswith(" hello") and " stdout " in line for line in log.splitlines()), log

    # exited → Start again
    await bus.ctr(path, "Start")
    assert await bus.state(path) == "running"
    pid2 = await bus.prop(path, "PID")
    assert pid2 > 0 and os.path.exists(f"/proc/{pid2}")
    assert await bus.prop(path, "StartedTimestamp") > props["FinishedTimestamp"]
    # /ready is left from the first run: wait for the new shell's TERM trap itself
    await term_trap_set(pid2)
    await bus.ctr(path, "Stop", "u", [5])
    assert await bus.state(path) == "exited"
    assert await bus.prop(path, "ExitCode") == 0

    await bus.ctr(path, "Remove", "b", [False])
    err = await bus.fails(bus.manager("GetContainer", "s", [cid]))
    assert err.type == "org.pyctrd1.Error.NoSuchContainer"
    err = await bus.fails(bus.manager("GetContainer", "s", ["lifecycle-full"]))
    assert err.type == "org.pyctrd1.Error.NoSuchContainer"
    try:
        (xml,) = await bus.call(path, "org.freedesktop.DBus.Introspectable", "Introspect")
    except DBusError:
        xml = ""
    assert "org.pyctrd1.Container" not in xml
    assert cid not in [c[0] for c in (await bus.manager("ListContainers"))[0]]


async def test_exit_code_wait_and_signal(bus):
    rec = await bus.recorder()
    path = await bus.create(["sh", "-c", "exit 7"])
    await bus.ctr(path, "Start")
    (code,) = await bus.ctr(path, "Wait")
    assert code == 7
    assert await bus.prop(path, "ExitCode") == 7
    assert await bus.state(path) == "exited"

    def exit_signal(m):
        if m.member != "PropertiesChanged" or m.path != path:
            return False
        changed = m.body[1]
        return ("ExitCode" in changed and changed["ExitCode"].value == 7
                and "State" in changed and changed["State"].value == "exited")

    msg = await rec.wait_for(exit_signal, timeout=5)
    assert msg.body[0] == "org.pyctrd1.Container"
    assert msg.body[2] == []

    # Wait on an exited container returns at once
    t0 = time.monotonic()
    (code,) = await bus.ctr(path, "Wait")
    assert code == 7
    assert time.monotonic() - t0 < 1.0


async def test_wait_before_start(bus, client_factory, daemon):
    path = await bus.create(["sh", "-c", "exit 7"])
    other = await client_factory(daemon.bus_address)
    waiter = asyncio.ensure_future(other.ctr(path, "Wait"))
    # A call on the same connection after Wait: once answered, the daemon
    # has received and dispatched Wait too (one connection is in order).
    assert await other.state(path) == "configured"
    assert not waiter.done()
    await bus.ctr(path, "Start")
    (code,) = await asyncio.wait_for(waiter, 10)
    assert code == 7


async def test_stop_timeout_zero_kills_at_once(bus):
    path = await bus.run(STUBBORN, stop_timeout=30)
    pid = await bus.prop(path, "PID")
    t0 = time.monotonic()
    await bus.ctr(path, "Stop", "u", [0])
    took = time.monotonic() - t0
    assert took < 3.0, f"Stop(0) took {took:.1f} s"
    assert await bus.state(path) == "exited"
    assert await bus.prop(path, "ExitCode") == 137
    assert await bus.prop(path, "PID") == 0
    assert not os.path.exists(f"/proc/{pid}")


async def test_stop_escalates_to_sigkill(bus):
    path = await bus.run(STUBBORN)
    t0 = time.monotonic()
    await bus.ctr(path, "Stop", "u", [1])
    took = time.monotonic() - t0
    assert 1.0 <= took <= 4.0, f"Stop(1) on a TERM-ignoring PID 1 took {took:.2f} s"
    assert await bus.state(path) == "exited"
    assert await bus.prop(path, "ExitCode") == 137


async def test_stop_cooperative_is_prompt(bus):
    path = await bus.run_cooperative()
    t0 = time.monotonic()
    await bus.ctr(path, "Stop", "u", [10])
    assert time.monotonic() - t0 < 3.0
    assert await bus.prop(path, "ExitCode") == 0


@pytest.mark.parametrize(("signal", "code"), [("SIGKILL", 137), ("9", 137), ("TERM", 0),
                                              ("SIGTERM", 0), ("15", 0)])
async def test_kill(bus, signal, code):
    path = await bus.run_cooperative()
    await bus.ctr(path, "Kill", "s", [signal])
    (exit_code,) = await bus.ctr(path, "Wait", timeout=10)
    assert exit_code == code
    assert await bus.state(path) == "exited"
    assert await bus.prop(path, "ExitCode") == code


@pytest.mark.parametrize("signal", ["SIGBOGUS", "BOGUS", "0", "999", ""])
async def test_kill_bad_signal(bus, signal):
    path = await bus.run_cooperative()
    pid = await bus.prop(path, "PID")
    err = await bus.fails(bus.ctr(path, "Kill", "s", [signal]))
    assert err.type == "org.pyctrd1.Error.InvalidArgument"
    assert err.text and "Traceback" not in err.text
    assert await bus.state(path) == "running"
    assert await bus.prop(path, "PID") == pid
    assert os.path.exists(f"/proc/{pid}")


async def test_start_of_configured_runs_init(bus):
    rec = await bus.recorder()
    path = await bus.create(COOPERATIVE)
    await bus.ctr(path, "Start")
    assert await bus.state(path) == "running"
    states = [c["State"] for c in rec.changes(path) if "State" in c]
    assert states == ["created", "running"]
