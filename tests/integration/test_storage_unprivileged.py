"""Storage without CAP_SYS_ADMIN, as an unprivileged user's daemon meets it.

Without the capability umount2(2) fails with EPERM before the kernel looks
whether its target is a mount point at all, so "not mounted" no longer reads
as EINVAL (issue 18: a container that never mounted could not be removed).
The helper runs as nobody; the daemon runs as root without CAP_SYS_ADMIN, so
its overlay and tmpfs mounts fail for real, as they do for a user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ERROR, BusDaemon, Daemon, container_id, leftovers, mounts_under

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
NO_SYS_ADMIN = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin"]
# mounts.umount in a child: prints "ok", or the errno it raised
UMOUNT = """
import sys
from pathlib import Path
from pyctrd.storage import mounts
try:
    mounts.umount(Path(sys.argv[1]), lazy=sys.argv[2] == "lazy")
except OSError as err:
    print(err.errno)
else:
    print("ok")
"""


def umount_as_nobody(target: Path, lazy: bool) -> str:
    out = subprocess.run([*NOBODY, sys.executable, "-c", UMOUNT, str(target),
                          "lazy" if lazy else "now"],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


@pytest.fixture
def target() -> Iterator[Path]:
    """A directory nobody can reach (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory(prefix="pyctrd-umount-") as directory:
        os.chmod(directory, 0o755)
        (Path(directory) / "merged").mkdir()
        yield Path(directory) / "merged"


@pytest.mark.parametrize("lazy", [False, True])
def test_umount_of_a_plain_directory_needs_no_privilege(target: Path, lazy: bool) -> None:
    assert umount_as_nobody(target, lazy) == "ok"


def test_umount_of_a_mount_point_still_fails_without_privilege(target: Path) -> None:
    # Not mounted is done; mounted but refused is an error, not silently dropped.
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(target)], check=True, timeout=30)
    try:
        assert umount_as_nobody(target, lazy=False) == str(1)  # EPERM
        assert mounts_under(target) == [str(target)]
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False, timeout=30)


class DaemonWithoutSysAdmin(Daemon):
    def argv(self) -> list[str]:
        return [*NO_SYS_ADMIN, *super().argv()]


@pytest.fixture
def weak_daemon(busybox_tar: Path, tmp_path: Path) -> Iterator[Daemon]:
    bus = BusDaemon(tmp_path / "dbus")
    d = DaemonWithoutSysAdmin(tmp_path / "pyctrd", bus.address)
    try:
        d.start()
        d.image_id, d.image_path = d.import_image(busybox_tar, "busybox")
        yield d
        d.shutdown()
    finally:
        if d.running():
            d.kill9()
        bus.stop()


async def test_a_container_that_never_mounted_removes_cleanly(weak_daemon: Daemon,
                                                              client_factory: Any) -> None:
    bus = await client_factory(weak_daemon.bus_address)
    path = await bus.create(["true"])
    err = await bus.fails(bus.ctr(path, "Init"))
    assert err.type == ERROR + "StorageFailed"
    assert "Operation not permitted" in err.text
    assert await bus.prop(path, "Mounted") is False

    await bus.ctr(path, "Remove", "b", [True])
    (listed,) = await bus.manager("ListContainers")
    assert listed == []
    assert leftovers(weak_daemon, [container_id(path)]) == []
