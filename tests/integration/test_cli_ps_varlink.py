"""pyctr ps over Varlink (io.pyctrd.Container.ListRows): what it shows over D-Bus,
errors named alike, D-Bus when the socket cannot serve, and the same for an
unprivileged user of a system daemon."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon

from integration.cli_support import PYCTR, env, ok, ps_all, pyctr
from integration.system_bus import (
    SystemBus,
    SystemDaemon,
    polkit_system,
)
from pyctrd.cli.errors import DaemonError
from pyctrd.cli.varlinkclient import VarlinkClient
from pyctrd.errors import InvalidArgument
from pyctrd.ops.errors import kind_of
from pyctrd.varlink.types import ROWS_PER_REPLY

NOBODY = 65534
# "5 seconds ago", "Up Less than a second": the two runs are moments apart
DURATION = re.compile(r"(Less than a second|About an? \w+|\d+ \w+)( ago)?")
VARIANTS = [
    ["ps"], ["ps", "-a"], ["ps", "-a", "--no-trunc"], ["ps", "-aq"], ["ps", "-q"],
    ["ps", "-a", "--noheading", "--sort", "names"], ["ps", "-n", "2"], ["ps", "-l"],
    ["ps", "--filter", "label=psv=1"], ["ps", "-a", "--format", "{{.Names}} {{.Labels}}"],
]


def rows(text: str) -> list[list[str]]:
    """Each line's cells, durations masked (columns may then be padded otherwise)."""
    return [re.split(r"\s{2,}", DURATION.sub("T", line)) for line in text.splitlines()]


def no_bus(tmp_path: Path) -> str:
    return f"unix:path={tmp_path}/nobus"


@pytest.fixture
def made(daemon: Daemon) -> Iterator[str]:
    """A created (labelled), a running and an exited container on the shared daemon."""
    address = daemon.bus_address
    before = {c["Id"] for c in ps_all(address)}
    ok(address, "create", "--name", "psv-created", "-l", "psv=1", "busybox", "true")
    ok(address, "run", "-d", "--name", "psv-running", "-l", "psv=1", "busybox",
       "sleep", "1000")
    assert pyctr(address, "run", "--name", "psv-exited", "busybox", "sh", "-c",
                 "exit 3").returncode == 3
    yield address
    left = [c["Id"] for c in ps_all(address) if c["Id"] not in before]
    if left:
        ok(address, "rm", "-f", *left)


def test_ps_over_varlink_shows_what_dbus_shows(made: str, daemon: Daemon,
                                               tmp_path: Path) -> None:
    sock = str(daemon.run_root / "io.pyctrd")
    for argv in VARIANTS:
        # no bus at that address: only the socket can answer
        over_varlink = ok(no_bus(tmp_path), "--varlink", sock, *argv)
        over_dbus = ok(made, *argv)
        assert rows(over_varlink) == rows(over_dbus), argv
    listed = ok(no_bus(tmp_path), "--varlink", sock, "ps", "-a")
    assert "psv-running" in listed and "Exited (3)" in listed and "psv-created" in listed

    def masked(text: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k not in ("CreatedAt", "Status")}
                for c in json.loads(text)]

    as_json = ["ps", "-a", "--format", "json"]
    assert masked(ok(no_bus(tmp_path), "--varlink", sock, *as_json)) == \
        masked(ok(made, *as_json))


def test_dbus_answers_when_the_socket_cannot(made: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "io.pyctrd")
    assert rows(ok(made, "--varlink", missing, "ps", "-a")) == rows(ok(made, "ps", "-a"))
    assert rows(ok(made, "--varlink", "", "ps", "-a")) == rows(ok(made, "ps", "-a"))
    # neither: D-Bus's error, as without --varlink
    failed = pyctr(no_bus(tmp_path), "--varlink", missing, "ps")
    assert failed.returncode == 125
    assert failed.stderr.startswith("Error: cannot connect to ") and \
        failed.stderr.count("\n") == 1


def test_listrows_errors_carry_the_dbus_names(daemon: Daemon) -> None:
    client = VarlinkClient.connect(str(daemon.run_root / "io.pyctrd"))
    try:
        for parameters in ({"fields": ["nope"]}, {"fields": []},
                           {"fields": ["id"], "states": ["sleeping"]}):
            with pytest.raises(DaemonError) as refused:
                list(client.call("io.pyctrd.Container.ListRows", parameters))
            assert refused.value.is_a(InvalidArgument)
            assert refused.value.name == kind_of(InvalidArgument("")).dbus_name
        # the connection still serves
        (reply,) = client.call("io.pyctrd.Container.ListRows",
                               {"fields": ["id", "name"], "states": ["running"]})
        assert all(len(row) == 2 for row in reply["rows"])
    finally:
        client.close()


def test_listrows_rows_are_the_containers_fields(made: str, daemon: Daemon) -> None:
    client = VarlinkClient.connect(str(daemon.run_root / "io.pyctrd"))
    try:
        fields = ["name", "state", "exit_code", "labels", "ports"]
        replies = list(client.call("io.pyctrd.Container.ListRows", {"fields": fields}))
        found = {row[0]: row for reply in replies for row in reply["rows"]}
        infos = {c["Names"][0]: c for c in ps_all(made)}
        assert set(found) == set(infos)
        assert found["psv-exited"] == ["psv-exited", "exited", 3, {}, []]
        assert found["psv-running"] == ["psv-running", "running", 0, {"psv": "1"}, []]
    finally:
        client.close()


async def test_listrows_streams_a_large_listing_in_bounded_replies(
        fresh_daemon: Callable[[], Daemon], client_factory: Any) -> None:
    daemon = fresh_daemon()
    bus = await client_factory(daemon.bus_address)
    slots = asyncio.Semaphore(32)

    async def create() -> None:
        async with slots:
            await bus.manager("CreateContainer", "sasa{sv}",
                              ["busybox", ["true"], bus.options(network="none")])

    await asyncio.gather(*(create() for _ in range(ROWS_PER_REPLY + 1)))
    client = VarlinkClient.connect(str(daemon.run_root / "io.pyctrd"))
    try:
        replies = list(client.call("io.pyctrd.Container.ListRows", {"fields": ["id"]}))
    finally:
        client.close()
    assert [len(reply["rows"]) for reply in replies] == [ROWS_PER_REPLY, 1]
    assert len({row[0] for reply in replies for row in reply["rows"]}) == ROWS_PER_REPLY + 1


# -- an unprivileged user of a system daemon


@pytest.fixture(scope="module")
def system(busybox_tar: Path) -> Iterator[tuple[SystemBus, SystemDaemon]]:
    # the daemon's run root under the bus's traversable directory (None): others
    # reach its socket
    with polkit_system("ps-varlink", None, busybox_tar, mock=True) as (
            bus, _polkit, daemon):
        yield bus, daemon


def pyctr_as(uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", str(PYCTR), *argv],
        capture_output=True, text=True, timeout=60, cwd="/", env=env(),
        stdin=subprocess.DEVNULL)


def test_an_unprivileged_user_lists_over_varlink_as_over_dbus(
        system: tuple[SystemBus, SystemDaemon]) -> None:
    bus, daemon = system
    nobus = "unix:path=/nonexistent/bus"  # nobody may look there: only the socket answers
    ok(bus.address, "create", "--name", "psv-system", "busybox", "true")
    try:
        sock = str(daemon.run_root / "io.pyctrd")
        as_json = ["ps", "-a", "--format", "json"]
        over_varlink = pyctr_as(NOBODY, "--address", nobus, "--varlink", sock,
                                *as_json)
        over_dbus = pyctr_as(NOBODY, "--address", bus.address, *as_json)
        assert over_varlink.returncode == 0, over_varlink.stderr
        assert over_dbus.returncode == 0, over_dbus.stderr
        names = [c["Names"] for c in json.loads(over_varlink.stdout)]
        assert names == [c["Names"] for c in json.loads(over_dbus.stdout)]
        assert ["psv-system"] in names
    finally:
        ok(bus.address, "rm", "-f", "psv-system")
