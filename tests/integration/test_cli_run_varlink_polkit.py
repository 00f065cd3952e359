"""pyctr run over Varlink by an unprivileged user of a system daemon, dbusmock's
polkitd deciding: allowed, it runs there; refused over Varlink (which cannot
ask for a password), D-Bus is asked the same, with nothing left behind by the
first attempt."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cli_support import PYCTR, env, ok, ps_all
from integration.system_bus import (
    Polkitd,
    SystemBus,
    SystemDaemon,
    polkit_system,
)

NOBODY = 65534
CREATE = "org.pyctrd1.container.create"
MANAGE = "org.pyctrd1.container.manage"
INSPECT = "org.pyctrd1.container.inspect"
NO_BUS = "unix:path=/nonexistent/bus"  # nobody may look there: only the socket answers


@pytest.fixture(scope="module")
def system(busybox_tar: Path) -> Iterator[tuple[SystemBus, Polkitd, SystemDaemon]]:
    # the daemon's state in the bus's traversable directory: others reach its socket
    with polkit_system("run-varlink", None, busybox_tar, mock=True) as found:
        yield found


@pytest.fixture
def polkit(system: tuple[SystemBus, Polkitd, SystemDaemon]) -> Iterator[Polkitd]:
    bus, polkit, _daemon = system
    polkit.set_allowed([])
    polkit.clear_calls()
    yield polkit
    polkit.set_allowed([])
    left = [c["Id"] for c in ps_all(bus.address)]
    if left:
        ok(bus.address, "rm", "-f", *left)


def run_as_nobody(address: str, sock: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(PYCTR),
         "--address", address, "--varlink", sock, "run", *argv],
        capture_output=True, text=True, timeout=60, cwd="/", env=env(),
        stdin=subprocess.DEVNULL)


def subjects(polkit: Polkitd, action: str) -> list[str]:
    """The kind of subject of each check of ``action``: Varlink's callers are
    unix-process subjects, D-Bus's system-bus-name ones."""
    return [subject[0] for subject, asked, _details, _flags in polkit.check_calls()
            if asked == action]


def test_allowed_it_runs_over_varlink(system: tuple[SystemBus, Polkitd, SystemDaemon],
                                      polkit: Polkitd) -> None:
    bus, _polkit, daemon = system
    polkit.set_allowed([CREATE, MANAGE, INSPECT])
    out = run_as_nobody(NO_BUS, str(daemon.run_root / "io.pyctrd"), "--rm", "busybox",
                        "sh", "-c", "echo as nobody; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, "as nobody\n", "")
    assert set(subjects(polkit, CREATE)) == {"unix-process"}
    assert ps_all(bus.address) == []


def test_refused_over_varlink_asks_dbus(system: tuple[SystemBus, Polkitd, SystemDaemon],
                                        polkit: Polkitd) -> None:
    bus, _polkit, daemon = system
    sock = str(daemon.run_root / "io.pyctrd")
    out = run_as_nobody(bus.address, sock, "busybox", "true")
    # refused at Create over Varlink, then over D-Bus, whose refusal is printed
    assert out.returncode == 125 and out.stderr.count("Error:") == 1, out.stderr
    assert subjects(polkit, CREATE) == ["unix-process", "system-bus-name"]
    assert ps_all(bus.address) == []


def test_refused_after_create_removes_it_first(
        system: tuple[SystemBus, Polkitd, SystemDaemon], polkit: Polkitd) -> None:
    """Allowed to create, not to read logs or start: the container Varlink made is
    removed before D-Bus makes its own (whose Start is refused in turn)."""
    bus, _polkit, daemon = system
    polkit.set_allowed([CREATE])
    out = run_as_nobody(bus.address, str(daemon.run_root / "io.pyctrd"), "--name",
                        "vlrun-refused", "busybox", "true")
    assert out.returncode == 125 and out.stderr.count("Error:") == 1, out.stderr
    assert subjects(polkit, INSPECT) == ["unix-process"]  # the probe before Start
    assert subjects(polkit, MANAGE) == ["system-bus-name"]  # D-Bus's Start
    assert [c["Names"] for c in ps_all(bus.address)] == [["vlrun-refused"]]
