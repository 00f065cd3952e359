"""The Debian package: built by `make deb`, installed with apt, used, removed, purged.

The package is installed into this (throwaway, root) test machine, as an
admin would; the system bus is a private one configured like Debian's,
whose service and policy directories hold the files the package installed,
with the real polkitd on it. Everything the test adds is removed at the end
(purge, then the state the README says purge leaves).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, wait_pid_gone

from integration.system_bus import Polkitd, SystemBus, world_traversable_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: needs root")

STATE = Path("/var/lib/pyctrd")
RUN = Path("/run/pyctrd")
CONFIG = Path("/etc/pyctrd/pyctrd.toml")
INSTALLED = [
    Path("/usr/bin/pyctrd"), Path("/usr/bin/pyctr"),
    Path("/usr/share/dbus-1/system.d/org.pyctrd1.conf"),
    Path("/usr/share/dbus-1/system-services/org.pyctrd1.service"),
    Path("/usr/share/dbus-1/services/org.pyctrd1.service"),
    Path("/usr/share/polkit-1/actions/org.pyctrd1.policy"),
    Path("/lib/systemd/system/pyctrd.service"), Path("/usr/lib/systemd/user/pyctrd.service"),
    Path("/usr/lib/tmpfiles.d/pyctrd.conf"),
    Path("/usr/share/dbus-1/interfaces/org.pyctrd1.Manager.xml"),
    Path("/usr/share/man/man1/pyctr.1.gz"), Path("/usr/share/man/man8/pyctrd.8.gz"),
    Path("/usr/share/bash-completion/completions/pyctr"), CONFIG,
]


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def installed() -> bool:
    status = run("dpkg-query", "-W", "-f=${Status}", "pyctrd", check=False).stdout
    return status.startswith("install ok")


@pytest.fixture(scope="module")
def deb() -> Path:
    run("make", "-C", str(REPO), "deb", timeout=1200)
    (package,) = sorted((REPO / "build" / "deb").glob("pyctrd_*.deb"))
    return package


@pytest.fixture
def machine() -> Iterator[None]:
    """Leaves the machine as it found it: no package, no state the test made."""
    had_state = STATE.exists()
    if installed():
        pytest.skip("pyctrd is installed on this machine already; not touching it")
    yield
    if installed():
        run("apt-get", "purge", "-y", "pyctrd", check=False, env={
            "DEBIAN_FRONTEND": "noninteractive"})
    if not had_state:
        shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(RUN, ignore_errors=True)


def test_install_activate_run_remove_purge(deb: Path, machine: None, busybox_tar: Path
                                           ) -> None:
    apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "install", "-y", "--no-install-recommends", str(deb), env=apt_env,
        timeout=300)
    for path in INSTALLED:
        assert path.exists(), f"{path} not installed"
    assert STATE.is_dir() and (STATE.stat().st_mode & 0o777) == 0o700
    # The private environment, never the system's site-packages.
    files = run("dpkg", "-L", "pyctrd").stdout.splitlines()
    assert any(f.startswith("/usr/lib/pyctrd/lib/python3") for f in files)
    assert not [f for f in files if "/dist-packages" in f or ("/site-packages" in f
                and not f.startswith("/usr/lib/pyctrd/"))]
    assert os.path.realpath("/usr/bin/pyctrd").startswith("/usr/lib/pyctrd/bin/")

    # A bus configured like Debian's, with the installed service and policy files.
    base = world_traversable_dir("pyctrd-deb-")
    services = base / "bus" / "system-services"
    services.mkdir(parents=True)
    shutil.copy("/usr/share/dbus-1/system-services/org.pyctrd1.service", services)
    bus = SystemBus(base / "bus")
    polkitd = Polkitd(bus, mock=False)
    env = {"DBUS_SYSTEM_BUS_ADDRESS": bus.address}
    pid = 0
    try:
        polkitd.start()
        listed = run("pkaction", env=env).stdout.split()
        assert {"org.pyctrd1.container.manage", "org.pyctrd1.container.create",
                "org.pyctrd1.image.manage"} <= set(listed)

        # The first call activates the installed daemon through the installed file.
        out = run("busctl", "--system", "call", "org.pyctrd1", "/org/pyctrd1",
                  "org.pyctrd1.Manager", "ListImages", env=env, timeout=60).stdout
        assert out.startswith("a(ssto)"), out
        pid = int(run("busctl", "--system", "call", "org.freedesktop.DBus",
                      "/org/freedesktop/DBus", "org.freedesktop.DBus",
                      "GetConnectionUnixProcessID", "s", "org.pyctrd1",
                      env=env).stdout.split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"/usr/bin/pyctrd" in cmdline

        # pyctr from PATH runs a container of an imported image.
        run("pyctr", "import", str(busybox_tar), "deb-busybox", env=env, timeout=120)
        hello = run("pyctr", "run", "--rm", "deb-busybox", "echo", "hello from the deb",
                    env=env, timeout=60)
        assert hello.stdout == "hello from the deb\n"
        run("pyctr", "create", "--name", "deb-box", "deb-busybox", "true", env=env)
        completed = run("bash", "-c", "source /usr/share/bash-completion/completions/pyctr;"
                        " COMP_WORDS=(pyctr rm ''); COMP_CWORD=2; _pyctr;"
                        " printf '%s\\n' \"${COMPREPLY[@]}\"", env=env).stdout.split()
        assert "deb-box" in completed
        run("pyctr", "rm", "deb-box", env=env)
        run("pyctr", "rmi", "deb-busybox", env=env)
    except AssertionError as err:
        # The activated daemon logs to the bus's output.
        raise AssertionError(f"{err}\n--- daemon log:\n{bus.log_path.read_text()[-4000:]}") \
            from None
    finally:
        if pid:
            # No systemd here to stop the unit: stop the activated daemon as an admin would.
            os.kill(pid, signal.SIGTERM)
            assert wait_pid_gone(pid, 30)
        polkitd.stop()
        bus.stop()
        shutil.rmtree(base, ignore_errors=True)

    # remove: the programs go; configuration and container state stay.
    run("apt-get", "remove", "-y", "pyctrd", env=apt_env, timeout=300)
    assert not Path("/usr/bin/pyctrd").exists() and not Path("/usr/lib/pyctrd").exists()
    assert CONFIG.exists() and STATE.is_dir()
    # purge: the configuration goes too; /var/lib/pyctrd stays for the admin to delete.
    run("apt-get", "purge", "-y", "pyctrd", env=apt_env, timeout=300)
    assert not CONFIG.parent.exists()
    assert STATE.is_dir()
    assert not installed()
