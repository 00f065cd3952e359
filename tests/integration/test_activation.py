"""dbus-daemon starts pyctrd itself when someone calls org.pyctrd1.

The system bus is configured like Debian's; its service directory holds
the project's dbus/org.pyctrd1.service.in, filled in as `make install` does
but pointing at this checkout's pyctrd with private state directories.
The session bus is a plain `dbus-daemon --session` whose XDG_DATA_DIRS holds
what `make install-data` installed (BINDIR: this checkout's), and the first
call is pyctr --user's: the user's daemon starts on it, with the bus's
environment (private XDG directories).
"""

import asyncio
import os
import subprocess
from pathlib import Path

from conftest import BUS_NAME, MANAGER, MANAGER_PATH, PYCTRD, REPO, bus_driver, dbus_call
from dbus_fast.aio import MessageBus

from integration.system_bus import SystemBus, stop_pid


def activation_file(base: Path) -> str:
    text = (REPO / "dbus" / "org.pyctrd1.service.in").read_text()
    text = text.replace("@bindir@", str(PYCTRD.parent))
    exec_line = f"Exec={PYCTRD} --bus system"
    assert exec_line in text.splitlines(), text
    config = base / "pyctrd.toml"
    config.write_text("")
    private = (f" --root {base / 'root'} --run-root {base / 'run'} --config {config}"
               " --log-level debug")
    return text.replace(exec_line, exec_line + private)


async def test_a_call_to_org_pyctrd1_starts_the_daemon(tmp_path: Path) -> None:
    # In place before the bus starts: a file added later is seen only once
    # dbus-daemon's inotify watch has fired.
    services = tmp_path / "bus" / "system-services"
    services.mkdir(parents=True)
    (services / "org.pyctrd1.service").write_text(activation_file(tmp_path))
    bus = SystemBus(tmp_path / "bus")
    assert bus.service_dir == services
    pid = 0
    client = await MessageBus(bus_address=bus.address).connect()
    try:
        (activatable,) = await bus_driver(client, "ListActivatableNames")
        assert BUS_NAME in activatable
        assert (await bus_driver(client, "NameHasOwner", "s", [BUS_NAME])) == [False]

        # The bus holds the call until the started daemon owns the name.
        (containers,) = await dbus_call(client, BUS_NAME, MANAGER_PATH, MANAGER,
                                        "ListContainers", timeout=60)
        assert containers == []
        (pid,) = await bus_driver(client, "GetConnectionUnixProcessID", "s", [BUS_NAME])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert argv[1:4] == [str(PYCTRD), "--bus", "system"], argv
        assert str(tmp_path / "root") in argv
        assert (tmp_path / "root").is_dir() and (tmp_path / "run").is_dir()
    finally:
        client.disconnect()
        if pid:
            await asyncio.to_thread(stop_pid, pid)
        bus.stop()


def session_bus(base: Path, data_dirs: Path) -> tuple[subprocess.Popen[str], str]:
    """`dbus-daemon --session` (its standard service directories) with private XDG
    directories, which the services it starts inherit; the process and its address."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "LANG": "C.UTF-8", "HOME": str(base), "XDG_DATA_DIRS": str(data_dirs)}
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"):
        env[name] = str(base / name.lower())
        (base / name.lower()).mkdir(mode=0o700)
    proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1",
                             f"--address=unix:path={base / 'bus'}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=base,
                            start_new_session=True)
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    assert address, "dbus-daemon --session did not start"
    return proc, address


async def test_pyctr_user_starts_the_session_daemon(tmp_path: Path) -> None:
    destdir = tmp_path / "destdir"
    out = subprocess.run(["make", "-s", "-C", str(REPO), "install-data", f"DESTDIR={destdir}",
                          "PREFIX=/usr", f"BINDIR={PYCTRD.parent}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    installed = destdir / "usr/share/dbus-1/services/org.pyctrd1.service"
    assert f"Exec={PYCTRD} --bus session" in installed.read_text().splitlines()
    bus, address = session_bus(tmp_path, destdir / "usr/share")
    pid = 0
    client = await MessageBus(bus_address=address).connect()
    try:
        (activatable,) = await bus_driver(client, "ListActivatableNames")
        assert BUS_NAME in activatable
        assert (await bus_driver(client, "NameHasOwner", "s", [BUS_NAME])) == [False]

        # pyctr --user talks to the session bus; the bus holds its call until the
        # daemon it started owns the name.
        pyctr = subprocess.run([str(PYCTRD.with_name("pyctr")), "--user", "ps", "-a"],
                               capture_output=True, text=True, timeout=120,
                               env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": address})
        assert pyctr.returncode == 0, pyctr.stderr
        assert pyctr.stdout.split()[:2] == ["CONTAINER", "ID"], pyctr.stdout
        (pid,) = await bus_driver(client, "GetConnectionUnixProcessID", "s", [BUS_NAME])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert argv[1:4] == [str(PYCTRD), "--bus", "session"], argv
        # The user's own state: under the bus's XDG directories
        assert (tmp_path / "xdg_data_home" / "pyctrd").is_dir()
        assert (tmp_path / "xdg_runtime_dir" / "pyctrd").is_dir()
        (containers,) = await dbus_call(client, BUS_NAME, MANAGER_PATH, MANAGER,
                                        "ListContainers")
        assert containers == []
    finally:
        client.disconnect()
        if pid:
            await asyncio.to_thread(stop_pid, pid)
        bus.terminate()
        bus.wait(30)
