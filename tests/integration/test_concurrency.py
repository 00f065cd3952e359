"""Many clients at once: 50 bus connections driving 20 containers with random operations.

Each client follows its own seeded random sequence, so a failure replays. A
call may only be refused for the state it finds (InvalidState); afterwards
every container's State must agree with runc, a Stop and a Wait from all 50
clients at once must all return, and every container must be removable
without leaving anything behind.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import (
    ERROR,
    Client,
    Daemon,
    container_id,
    leftovers,
    process_alive,
    runc_state,
)
from dbus_fast import DBusError

CLIENTS = 50
CONTAINERS = 20
ROUNDS = 40
SEED = 8_020_050
# Touches /dev/shm/ready (a fresh tmpfs per run) once SIGTERM is handled: a PID 1
# ignores signals it has no handler for.
COOPERATIVE = ["sh", "-c", "trap 'exit 0' TERM; touch /dev/shm/ready; "
               "while :; do sleep 0.1; done"]
OPERATIONS = ("Start", "Stop", "Kill", "Pause", "Unpause", "Mount", "Unmount", "Wait", "Init")
KILL_SIGNALS = ("SIGTERM", "SIGKILL", "SIGCONT", "SIGHUP")


async def operate(client: Client, path: str, operation: str, rng: random.Random) -> str:
    """One random call; "ok", "timeout" (a Wait that did not end) or its error name."""
    try:
        if operation == "Stop":
            await client.ctr(path, "Stop", "u", [1], timeout=30)
        elif operation == "Kill":
            await client.ctr(path, "Kill", "s", [rng.choice(KILL_SIGNALS)])
        elif operation == "Mount":
            await client.ctr(path, "Mount", "s", [""])
        elif operation == "Wait":
            try:
                await client.ctr(path, "Wait", timeout=rng.uniform(0.1, 0.4))
            except TimeoutError:
                return "timeout"
        else:
            await client.ctr(path, operation, timeout=30)
    except DBusError as err:
        return f"{err.type}: {err.text}"
    return "ok"


async def agrees_with_runc(admin: Client, d: Daemon, path: str) -> None:
    """State, PID and runc's view of one container match (an exit in flight may land)."""
    for _ in range(2):
        props = await admin.get_all(path, "org.pyctrd1.Container")
        state, pid = props["State"], props["PID"]
        runc = runc_state(d.run_root, container_id(path))
        status = runc["status"] if runc else None
        if state in ("running", "created") and status in (None, "stopped"):
            # the process is gone and conmon's report is on its way: it must land
            await admin.ctr(path, "Wait", timeout=5)
            continue
        where = f"{props['Name']}: State {state} PID {pid}, runc {runc}"
        if state in ("running", "paused"):
            assert status == state and runc["pid"] == pid and process_alive(pid), where
        elif state == "created":
            assert status == "created", where
        else:
            assert state in ("configured", "exited"), where
            assert status in (None, "stopped") and pid == 0, where
        return
    raise AssertionError(f"{path}: the exit runc shows was never recorded")


async def wait_ready(d: Daemon, path: str, timeout: float = 10.0) -> None:
    marker = Path(d.run_root / "containers" / container_id(path) / "shm" / "ready")
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert time.monotonic() < deadline, f"{marker} did not appear"
        await asyncio.sleep(0.01)


async def test_50_clients_drive_20_containers(fresh_daemon: Any, client_factory: Any) -> None:
    t_begin = time.monotonic()
    d = fresh_daemon()
    admin = await client_factory(d.bus_address)
    paths = [await admin.create(COOPERATIVE, name=f"busy{i}") for i in range(CONTAINERS)]
    clients = [await client_factory(d.bus_address) for _ in range(CLIENTS)]
    assert len({c.bus.unique_name for c in clients}) == CLIENTS

    outcomes: Counter[tuple[str, str]] = Counter()
    unexpected: list[str] = []

    async def drive(index: int, client: Client) -> None:
        rng = random.Random(SEED + index)
        for _ in range(ROUNDS):
            path, operation = rng.choice(paths), rng.choice(OPERATIONS)
            result = await operate(client, path, operation, rng)
            kind = result.split(":", 1)[0]
            outcomes[operation, kind] += 1
            if kind not in ("ok", "timeout", ERROR + "InvalidState"):
                unexpected.append(f"client {index} {operation} {path[-12:]}: {result}")

    await asyncio.gather(*(drive(i, c) for i, c in enumerate(clients)))
    assert not unexpected, "\n".join(unexpected)
    # the mix really happened: every operation succeeded somewhere
    for operation in OPERATIONS:
        assert outcomes[operation, "ok"] > 0, f"{operation} never succeeded: {outcomes}"

    for path in paths:
        await agrees_with_runc(admin, d, path)
    (listed,) = await admin.manager("ListContainers")
    assert sorted(name for _, name, _, _, _ in listed) == sorted(
        f"busy{i}" for i in range(CONTAINERS))

    # Stop and Wait from every client at once on one container: all return
    target = paths[0]
    state = await admin.state(target)
    if state == "paused":
        await admin.ctr(target, "Unpause")
    elif state != "running":
        await admin.ctr(target, "Start")
    await wait_ready(d, target)
    pid = await admin.prop(target, "PID")

    async def stop(client: Client) -> str:
        try:
            await client.ctr(target, "Stop", "u", [5], timeout=30)
        except DBusError as err:
            return err.type
        return "ok"

    t0 = time.monotonic()
    results = await asyncio.gather(*(stop(c) for c in clients),
                                   *(c.ctr(target, "Wait", timeout=30) for c in clients))
    took = time.monotonic() - t0
    stops, waits = results[:CLIENTS], results[CLIENTS:]
    assert stops.count("ok") >= 1, stops
    # a Stop that gets the container after another one finds it exited
    assert set(stops) <= {"ok", ERROR + "InvalidState"}, set(stops)
    assert waits == [[0]] * CLIENTS, Counter(str(w) for w in waits)
    assert took < 10, f"50 Stops and Waits took {took:.1f} s"  # hung ones would take 30
    assert not process_alive(pid)
    assert await admin.state(target) == "exited"

    # every container is removable, and nothing is left behind
    for path in paths:
        if await admin.state(path) in ("created", "running", "paused"):
            await admin.ctr(path, "Stop", "u", [1])
        await admin.ctr(path, "Remove", "b", [False])
    assert await admin.manager("ListContainers") == [[]]
    assert leftovers(d, [container_id(p) for p in paths]) == []
    print(f"\n{sum(outcomes.values())} calls in {time.monotonic() - t_begin:.1f} s:",
          dict(sorted(outcomes.items())))
