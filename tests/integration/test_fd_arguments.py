"""A call whose h argument names no descriptor sent with it is refused before any
handler runs: the bare index must never be taken for one of the daemon's own
descriptors (its database, its lock files), read, written or closed."""

import os

import pytest
from conftest import CONTAINER, ERROR, Client
from dbus_fast import DBusError


@pytest.mark.parametrize("index", [0, 3, 5, 8, 12])
async def test_import_with_an_index_but_no_descriptor(bus: Client, daemon, index: int
                                                      ) -> None:
    fds_before = sorted(os.listdir(f"/proc/{daemon.pid}/fd"))
    with pytest.raises(DBusError) as info:
        await bus.manager("ImportImage", "hs", [index, "nofd"])
    assert info.value.type == ERROR + "InvalidArgument"
    assert "descriptor" in info.value.text
    assert sorted(os.listdir(f"/proc/{daemon.pid}/fd")) == fds_before
    # the daemon's own files still work: a write to the database succeeds
    path = await bus.create(["true"])
    await bus.ctr(path, "Remove", "b", [False])
    bus.created.remove(path)


async def test_export_with_an_index_but_no_descriptor(bus: Client, daemon) -> None:
    path = await bus.create(["true"])
    fds_before = sorted(os.listdir(f"/proc/{daemon.pid}/fd"))
    for index in (0, 4, 9):
        with pytest.raises(DBusError) as info:
            await bus.call(path, CONTAINER, "Export", "h", [index])
        assert info.value.type == ERROR + "InvalidArgument"
    assert sorted(os.listdir(f"/proc/{daemon.pid}/fd")) == fds_before
    assert await bus.state(path) == "configured"
    (names,) = await bus.manager("ListContainers")
    assert path in [row[4] for row in names]
