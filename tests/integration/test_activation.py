"""dbus-daemon starts pyctrd itself when someone calls org.pyctrd1.

The bus is configured like Debian's system bus; its service directory holds
the project's dbus/org.pyctrd1.service.in, filled in as `make install` does
but pointing at this checkout's pyctrd with private state directories.
"""

import asyncio
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
