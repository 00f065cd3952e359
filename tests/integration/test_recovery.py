"""Daemon crashes and reboots: no container, exit code or mount is lost.

Each test kills the daemon with SIGKILL (no chance to tidy up), changes the
world behind its back, restarts it on the same root and checks what it shows.
"""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import CONTAINER, ERROR, container_id, mounts_under, wait_pid_gone

COOPERATIVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def conmon_pid(daemon, path: str) -> int:
    bundle = daemon.run_root / "containers" / container_id(path)
    return int((bundle / "conmon.pid").read_text())


async def restart(daemon, client_factory):
    daemon.start()
    return await client_factory(daemon.bus_address)


async def test_kill9_keeps_container_running_and_readopts_it(fresh_daemon, client_factory):
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    path = await bus.run_cooperative(name="keeps")
    pid = await bus.prop(path, "PID")
    d.kill9()
    assert alive(pid), "the container died with the daemon"

    bus = await restart(d, client_factory)
    props = await bus.get_all(path, CONTAINER)
    assert (props["State"], props["PID"]) == ("running", pid)
    rec = await bus.recorder()
    await bus.ctr(path, "Stop", "u", [5])
    assert await bus.prop(path, "ExitCode") == 0
    assert wait_pid_gone(pid, 10)
    # exits are watched again after re-adoption: the signal says so
    await rec.wait_property(path, "State", "exited")


async def test_exit_while_down_has_real_code_and_time(fresh_daemon, client_factory):
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    path = await bus.run(["sleep", "1000"], name="killed-outside")
    pid = await bus.prop(path, "PID")
    d.kill9()
    killed_at = time.time_ns() // 1000
    os.kill(pid, signal.SIGKILL)
    assert wait_pid_gone(pid, 10)
    assert wait_pid_gone(conmon_pid(d, path), 10)
    time.sleep(0.05)  # a restart "later": the timestamp must be the exit's, not the restart's
    restarted_at = time.time_ns() // 1000

    bus = await restart(d, client_factory)
    props = await bus.get_all(path, CONTAINER)
    assert props["State"] == "exited"
    assert props["ExitCode"] == 137
    assert props["PID"] == 0
    assert killed_at - 1_000_000 <= props["FinishedTimestamp"] < restarted_at
    assert (await bus.ctr(path, "Wait"))[0] == 137
    # storage of the dead container is released, and it runs again
    assert not props["Mounted"] or await _eventually_unmounted(bus, path)
    await bus.ctr(path, "Start")
    assert await bus.state(path) == "running"
    await bus.ctr(path, "Stop", "u", [0])


async def _eventually_unmounted(bus, path) -> bool:
    rec = await bus.recorder()
    if await bus.prop(path, "Mounted"):
        await rec.wait_property(path, "Mounted", False, timeout=10)
    return True


async def test_vanished_runtime_state_is_exited_minus_one(fresh_daemon, client_factory):
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    path = await bus.run(["sleep", "1000"], name="vanishes")
    pid = await bus.prop(path, "PID")
    monitor = conmon_pid(d, path)
    d.kill9()
    # conmon and the container die without a trace: no exit file
    os.kill(monitor, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    assert wait_pid_gone(pid, 10) and wait_pid_gone(monitor, 10)
    (d.run_root / "exits" / container_id(path)).unlink(missing_ok=True)

    bus = await restart(d, client_factory)
    assert await bus.state(path) == "exited"
    assert await bus.prop(path, "ExitCode") == -1
    assert "no exit file" in d.log_path.read_text()
    await bus.ctr(path, "Start")
    assert await bus.state(path) == "running"
    await bus.ctr(path, "Stop", "u", [0])
    assert await bus.prop(path, "ExitCode") == 137


def simulate_reboot(d) -> None:
    """What a reboot does to pyctrd's world: every process and mount gone, /run empty."""
    d.kill9()
    subprocess.run(["pkill", "-9", "-f", f"conmon.*{d.run_root}"], check=False)
    runtime_root = d.run_root / "runtime"
    for state_dir in runtime_root.iterdir():
        # a frozen process does not die of SIGKILL until thawed
        subprocess.run(["runc", f"--root={runtime_root}", "resume", state_dir.name],
                       check=False, capture_output=True)
    for pid in _container_pids(d):
        os.kill(pid, signal.SIGKILL)
    for point in sorted(mounts_under(d.root, d.run_root), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=True)
    subprocess.run(["rm", "-rf", str(d.run_root)], check=True)
    with sqlite3.connect(d.root / "pyctrd.db") as db:
        db.execute("UPDATE meta SET value = 'an-older-boot' WHERE key = 'boot_id'")


def _container_pids(d) -> list[int]:
    pids = []
    for bundle in (d.run_root / "containers").glob("*"):
        with_pid = bundle / "pidfile"
        if with_pid.exists():
            pids.append(int(with_pid.read_text()))
    return pids


async def test_new_boot_turns_active_containers_exited_and_they_start_again(
        fresh_daemon, client_factory):
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    running = await bus.run_cooperative(name="was-running")
    paused = await bus.run_cooperative(name="was-paused")
    await bus.ctr(paused, "Pause")
    created = await bus.create(COOPERATIVE, name="was-created")
    await bus.ctr(created, "Init")
    mounted = await bus.create(["true"], name="was-mounted")
    await bus.ctr(mounted, "Mount", "s", [""])
    pids = [await bus.prop(p, "PID") for p in (running, paused)]
    assert 0 not in pids
    assert await bus.prop(created, "PID") == 0  # API.md: 0 unless running or paused
    pids += _container_pids(d)  # the created one's runc init too, from its pidfile
    assert len(set(pids)) == 3
    simulate_reboot(d)
    for pid in pids:
        assert wait_pid_gone(pid, 10)

    bus = await restart(d, client_factory)
    for path in (running, paused, created):
        props = await bus.get_all(path, CONTAINER)
        assert props["State"] == "exited", props["Name"]
        assert props["PID"] == 0
        assert props["Mounted"] is False
    assert await bus.state(mounted) == "configured"
    assert await bus.prop(mounted, "Mounted") is False
    assert "before the reboot" in d.log_path.read_text()

    for path in (running, paused, created):
        await bus.ctr(path, "Start")
        assert await bus.state(path) == "running"
        await bus.ctr(path, "Stop", "u", [5])
        assert await bus.prop(path, "ExitCode") == 0
    # a second restart on the same boot changes nothing
    d.kill9()
    bus = await restart(d, client_factory)
    assert await bus.state(running) == "exited"
    assert await bus.prop(running, "ExitCode") == 0


async def test_user_mount_survives_a_restart(fresh_daemon, client_factory):
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    path = await bus.create(["true"], name="mounted")
    (mountpoint,) = await bus.ctr(path, "Mount", "s", [""])
    d.kill9()
    bus = await restart(d, client_factory)
    assert await bus.prop(path, "Mounted") is True
    assert os.path.ismount(mountpoint)
    await bus.ctr(path, "Unmount")
    assert not os.path.ismount(mountpoint)


async def test_removed_while_crashing_stays_removed(fresh_daemon, client_factory):
    d = fresh_daemon()
    d.sigterm()
    d.crash_at = "remove:storage-destroyed"
    bus = await restart(d, client_factory)
    path = await bus.create(["true"], name="doomed")
    await bus.ctr(path, "Start")
    await bus.ctr(path, "Wait")
    storage = d.root / "containers" / container_id(path)
    assert storage.exists()
    await bus.fails(bus.ctr(path, "Remove", "b", [False]))
    d.wait_crashed()

    d.crash_at = None
    bus = await restart(d, client_factory)
    err = await bus.fails(bus.manager("GetContainer", "s", ["doomed"]))
    assert err.type == ERROR + "NoSuchContainer"
    assert not storage.exists()
    assert mounts_under(d.root, d.run_root) == []
    # and the name is free again
    await bus.create(["true"], name="doomed")


async def test_import_cut_short_leaves_no_layer_and_can_be_repeated(
        fresh_daemon, client_factory, make_variant_tar):
    d = fresh_daemon()
    d.sigterm()
    d.crash_at = "import:layers-stored"
    bus = await restart(d, client_factory)
    layers_before = set(os.listdir(d.root / "layers"))
    archive = make_variant_tar("cut-short")
    await bus.fails(bus.import_image(archive, "cut-short"))
    d.wait_crashed()
    assert set(os.listdir(d.root / "layers")) > layers_before  # the layer was in place

    d.crash_at = None
    bus = await restart(d, client_factory)
    err = await bus.fails(bus.manager("GetImage", "s", ["cut-short"]))
    assert err.type == ERROR + "NoSuchImage"
    assert set(os.listdir(d.root / "layers")) == layers_before
    assert os.listdir(d.root / "tmp") == []
    image_id, _ = await bus.import_image(archive, "cut-short")
    assert (await bus.manager("GetImage", "s", ["cut-short"]))[0].endswith(image_id)
