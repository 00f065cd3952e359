"""PropertiesChanged: order, values, and no loss for a slow subscriber in a burst."""

import asyncio
import os
import subprocess
import sys
import textwrap
import time

PYCTRD_CONTAINER = "org.pyctrd1.Container"


async def test_state_sequence_of_one_run(bus):
    rec = await bus.recorder()
    path = await bus.create(["sh", "-c", "exit 3"])
    await bus.ctr(path, "Start")
    (code,) = await bus.ctr(path, "Wait")
    assert code == 3
    # after the exit the daemon releases the storage: the last change of the run
    await rec.wait_property(path, "Mounted", False)

    signals = rec.select("PropertiesChanged", path)
    assert signals, "no PropertiesChanged for the container"
    for msg in signals:
        iface, changed, invalidated = msg.body
        assert msg.signature == "sa{sv}as"
        assert iface == PYCTRD_CONTAINER
        assert changed, "a PropertiesChanged without values"
        assert invalidated == [], f"properties only invalidated: {invalidated}"

    changes = rec.changes(path)
    states = [c["State"] for c in changes if "State" in c]
    assert states == ["created", "running", "exited"]

    created = next(c for c in changes if c.get("State") == "created")
    running = next(c for c in changes if c.get("State") == "running")
    exited = next(c for c in changes if c.get("State") == "exited")
    # PID is 0 unless running or paused (API.md): not runc's init PID in created
    assert created.get("PID", 0) == 0
    pids = [c["PID"] for c in changes if "PID" in c]
    assert pids and pids[0] > 0 and pids[-1] == 0, pids
    assert running["StartedTimestamp"] > 0
    assert exited["ExitCode"] == 3
    assert exited["PID"] == 0
    assert exited["FinishedTimestamp"] >= running["StartedTimestamp"]

    # every value announced is the value the property now reads
    final = await bus.get_all(path, PYCTRD_CONTAINER)
    last: dict = {}
    for c in changes:
        last.update(c)
    for name, value in last.items():
        assert final[name] == value, name


async def test_pause_unpause_signals(bus):
    rec = await bus.recorder()
    path = await bus.run(["sleep", "1000"])
    await bus.ctr(path, "Pause")
    await bus.ctr(path, "Unpause")
    await bus.ctr(path, "Stop", "u", [0])
    states = [c["State"] for c in rec.changes(path) if "State" in c]
    assert states == ["created", "running", "paused", "running", "exited"]


async def test_mount_unmount_signals(bus):
    rec = await bus.recorder()
    path = await bus.create(["true"])
    (mountpoint,) = await bus.ctr(path, "Mount", "s", [""])
    await bus.ctr(path, "Unmount")
    changes = rec.changes(path)
    mounted = [c["Mounted"] for c in changes if "Mounted" in c]
    points = [c["Mountpoint"] for c in changes if "Mountpoint" in c]
    assert mounted == [True, False]
    assert points == [mountpoint, ""]


async def test_large_messages(bus, daemon, client_factory):
    # Containers at API.md's size limits (labels ~60 KiB, command ~120 KiB): each
    # InterfacesAdded signal is about a socket buffer, and the GetManagedObjects
    # reply with ten of them ten times that.
    labels = {f"label{i:04d}": f"{i:04d}" * 14 for i in range(900)}
    command = ["true", *[f"{i:04d}" * 2000 for i in range(15)]]
    other = await client_factory(daemon.bus_address)
    rec = await other.recorder()
    paths = [await bus.create(command, labels=labels) for _ in range(10)]
    for path in paths:
        added = await rec.wait_for(
            lambda m, path=path: m.member == "InterfacesAdded" and m.body[0] == path)
        assert added.body[1][PYCTRD_CONTAINER]["Labels"].value == labels
    (objects,) = await other.call("/org/pyctrd1", "org.freedesktop.DBus.ObjectManager",
                                  "GetManagedObjects")
    for path in paths:
        assert objects[path][PYCTRD_CONTAINER]["Labels"].value == labels
        assert objects[path][PYCTRD_CONTAINER]["Command"].value == command
    assert await other.prop(paths[0], "Labels") == labels
    (has_owner,) = await other.driver("NameHasOwner", "s", ["org.pyctrd1"])
    assert has_owner
    assert daemon.running()


SLOW_SUBSCRIBER = textwrap.dedent("""
    import asyncio, sys
    from dbus_fast import Message, MessageType
    from dbus_fast.aio import MessageBus

    async def driver(bus, member, sig, body):
        reply = await bus.call(Message(destination="org.freedesktop.DBus",
                                       path="/org/freedesktop/DBus",
                                       interface="org.freedesktop.DBus",
                                       member=member, signature=sig, body=body))
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        return reply.body

    async def main(address, paths_file, sentinel):
        paths = set(open(paths_file).read().split())
        bus = await MessageBus(bus_address=address).connect()
        (owner,) = await driver(bus, "GetNameOwner", "s", ["org.pyctrd1"])
        count = 0
        done = asyncio.Event()

        def handler(msg):
            nonlocal count
            if msg.message_type is not MessageType.SIGNAL or msg.sender != owner:
                return
            if msg.member == "PropertiesChanged" and msg.path in paths:
                count += 1
            elif msg.member == "ContainerRemoved" and msg.body[1] == sentinel:
                done.set()

        bus.add_message_handler(handler)
        await driver(bus, "AddMatch", "s", ["type='signal',sender='org.pyctrd1'"])
        print("ready", flush=True)
        # Block the event loop: nothing reads the bus socket until told to go.
        sys.stdin.readline()
        await asyncio.wait_for(done.wait(), 60)
        print(count, flush=True)

    asyncio.run(main(*sys.argv[1:]))
""")

BURST_CONTAINERS = 10
BURST_PAIRS = 5000  # Mount+Unmount pairs, each call one PropertiesChanged


async def test_burst_to_slow_subscriber(bus, daemon, client_factory, tmp_path):
    paths = [await bus.create(["true"]) for _ in range(BURST_CONTAINERS)]
    sentinel = await bus.create(["true"])
    paths_file = tmp_path / "paths"
    paths_file.write_text("\n".join(paths))
    script = tmp_path / "slow_subscriber.py"
    script.write_text(SLOW_SUBSCRIBER)

    slow = subprocess.Popen([sys.executable, str(script), daemon.bus_address,
                             str(paths_file), sentinel],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    try:
        loop = asyncio.get_running_loop()
        line = await asyncio.wait_for(loop.run_in_executor(None, slow.stdout.readline), 30)
        assert line.strip() == "ready"

        rec = await bus.recorder()
        fast = [await client_factory(daemon.bus_address) for _ in range(BURST_CONTAINERS)]

        async def cycle(client, path, n):
            for _ in range(n):
                await client.ctr(path, "Mount", "s", [""])
                await client.ctr(path, "Unmount")

        t0 = time.monotonic()
        per_container = BURST_PAIRS // BURST_CONTAINERS
        await asyncio.gather(*(cycle(c, p, per_container) for c, p in zip(fast, paths,
                                                                           strict=True)))
        burst_time = time.monotonic() - t0

        # the daemon is still there and answers
        (has_owner,) = await bus.driver("NameHasOwner", "s", ["org.pyctrd1"])
        assert has_owner
        (owner,) = await bus.driver("GetNameOwner", "s", ["org.pyctrd1"])
        assert owner == daemon.owner, "pyctrd lost and re-took its name"
        assert await bus.state(paths[0]) == "configured"
        assert await bus.manager_prop("ContainerCount") >= BURST_CONTAINERS + 1
        assert daemon.running()

        await bus.manager("RemoveContainer", "sb", [sentinel.rsplit("/", 1)[1], False])
        await rec.wait_for(lambda m: m.member == "ContainerRemoved" and m.body[1] == sentinel,
                           timeout=30)
        emitted = sum(1 for m in rec.select("PropertiesChanged") if m.path in set(paths))
        assert emitted >= 2 * BURST_PAIRS >= 10_000, f"{emitted} signals in {burst_time:.1f} s"

        slow.stdin.write("go\n")
        slow.stdin.flush()
        out = await asyncio.wait_for(loop.run_in_executor(None, slow.stdout.readline), 60)
        assert out.strip().isdigit(), f"slow subscriber said {out!r}"
        assert int(out) == emitted
        assert await asyncio.wait_for(loop.run_in_executor(None, slow.wait), 10) == 0
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    for p in paths:
        assert await bus.prop(p, "Mounted") is False
