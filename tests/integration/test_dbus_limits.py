"""No reply pyctrd sends can make dbus-daemon drop its connection (issue 13).

Containers at the per-container size limits (labels near 64 KiB, command
near 128 KiB), enough of them that GetManagedObjects would pass the 32 MiB
dbus-daemon allows on Debian's system bus (the private bus here copies
Debian's system.conf, whose limits are dbus-daemon's built-in defaults):
an unprivileged caller asks for it and gets LimitsExceeded naming the
smaller calls, the daemon keeps its name, root's calls are answered at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BUS_NAME, MANAGER_PATH, Client

from integration.system_bus import (
    SystemBus,
    SystemDaemon,
    call_as,
    polkit_system,
)
from pyctrd.bus.connection import BackpressureWriter

LIMITS = "org.freedesktop.DBus.Error.LimitsExceeded"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
NOBODY = 65534
COUNT = 200
LABELS = {f"l{i:02}": "x" * 4000 for i in range(15)}  # ~60 KB of the 64 KiB allowed
COMMAND = ["true", *("y" * 4000 for _ in range(30))]  # ~120 KB of the 128 KiB allowed
BUS_MAX_MESSAGE = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def system(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[SystemBus, SystemDaemon]]:
    with polkit_system("dbus-limits", tmp_path_factory.mktemp("pyctrd-limits"), busybox_tar,
                       mock=False) as (bus, _polkit, daemon):
        yield bus, daemon


def get_managed_objects() -> dict[str, Any]:
    return {"path": MANAGER_PATH, "interface": OBJECT_MANAGER,
            "member": "GetManagedObjects"}


async def test_get_managed_objects_too_large_for_the_bus(
        system: tuple[SystemBus, SystemDaemon], client_factory: Any) -> None:
    bus, daemon = system
    root: Client = await client_factory(bus.address)
    # dbus-fast's own writer drops the connection when the socket buffer is full
    # (HOST-FACTS), which 200 concurrent 180 KB calls reach: pyctrd's writer waits.
    root.bus._writer.__class__ = BackpressureWriter
    limit = asyncio.Semaphore(16)

    async def create() -> None:
        async with limit:
            await root.create(COMMAND, labels=LABELS)

    try:
        started = time.monotonic()
        await asyncio.gather(*(create() for _ in range(COUNT)))
        print(f"\n{COUNT} containers created in {time.monotonic() - started:.1f} s")
        # What the answer would hold: more than the bus passes.
        one = len(str(await root.get_all(root.created[0], "org.pyctrd1.Container")))
        assert one * COUNT > BUS_MAX_MESSAGE * 1.05, one

        started = time.monotonic()
        out = call_as(NOBODY, bus.address, [get_managed_objects(), get_managed_objects()])
        refused_in = time.monotonic() - started
        for result in out["results"]:
            assert result.get("error") == LIMITS, str(result)[:300]
            assert "ListContainers and ListImages" in result["message"]
            assert "Properties.GetAll" in result["message"]
        print(f"{COUNT} containers: GetManagedObjects refused twice as uid {NOBODY} "
              f"in {refused_in:.2f} s (the caller's process included)")

        # The limit is the bus's: root meets it too, at once.
        started = time.monotonic()
        err = await root.fails(root.call(MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects"))
        assert err.type == LIMITS, err
        print(f"root's GetManagedObjects refused in "
              f"{(time.monotonic() - started) * 1000:.0f} ms: {err.text}")

        # The daemon kept its connection and name, and answers root at once.
        assert daemon.proc is not None and daemon.proc.poll() is None
        (owner,) = await root.driver("GetNameOwner", "s", [BUS_NAME])
        assert owner == daemon.owner
        started = time.monotonic()
        (containers,) = await root.manager("ListContainers")
        listed_in = time.monotonic() - started
        assert len(containers) == COUNT
        assert listed_in < 1.0, listed_in
        print(f"root's ListContainers answered in {listed_in * 1000:.0f} ms")
        # The smaller calls the error names work.
        values = await root.get_all(containers[0][4], "org.pyctrd1.Container")
        assert values["Labels"] == LABELS
        log_lines = [line for line in daemon.log_path.read_text().splitlines()
                     if "more than the bus allows" in line]
        assert 1 <= len(log_lines) <= 2, log_lines  # rate-limited
    finally:
        # Removing 200 containers one call at a time is the slow part: in parallel.
        async def remove(path: str) -> None:
            async with limit:
                await root.manager("RemoveContainer", "sb", [path.rsplit("/", 1)[1], True])

        started = time.monotonic()
        await asyncio.gather(*(remove(path) for path in root.created))
        root.created.clear()
        print(f"removed in {time.monotonic() - started:.1f} s")
