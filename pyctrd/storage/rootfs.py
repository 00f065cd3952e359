"""Each container's root filesystem: an overlay of its image's layers.

The container owns ``upper`` and ``work``; ``merged`` is the mountpoint.
A private tmpfs backs its /dev/shm, as libpod does.
"""

import errno
import shutil
from dataclasses import dataclass
from pathlib import Path

from pyctrd.errors import StorageFailed
from pyctrd.storage import mounts

SHM_SIZE = "65536k"


@dataclass(frozen=True)
class RootfsPaths:
    lower: list[Path]  # top layer first, as overlayfs wants
    container_dir: Path
    shm_dir: Path

    @property
    def upper(self) -> Path:
        return self.container_dir / "upper"

    @property
    def work(self) -> Path:
        return self.container_dir / "work"

    @property
    def merged(self) -> Path:
        return self.container_dir / "merged"


def create(paths: RootfsPaths) -> None:
    for d in (paths.upper, paths.work, paths.merged):
        d.mkdir(parents=True, exist_ok=True, mode=0o755)


def mount_rootfs(paths: RootfsPaths) -> Path:
    if mounts.is_mountpoint(paths.merged):
        return paths.merged
    create(paths)
    lower = ":".join(str(p) for p in paths.lower)
    options = f"lowerdir={lower},upperdir={paths.upper},workdir={paths.work}"
    try:
        mounts.mount("overlay", paths.merged, "overlay", 0, options)
    except OSError as err:
        raise StorageFailed(f"mounting the root filesystem failed: {err.strerror}") from err
    return paths.merged


def unmount_rootfs(paths: RootfsPaths) -> None:
    try:
        mounts.umount(paths.merged)
    except OSError as err:
        if err.errno != errno.EBUSY:
            raise StorageFailed(f"unmounting {paths.merged} failed: {err.strerror}") from err
        mounts.umount(paths.merged, lazy=True)


def mount_shm(paths: RootfsPaths) -> None:
    paths.shm_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if mounts.is_mountpoint(paths.shm_dir):
        return
    flags = mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC
    try:
        mounts.mount("shm", paths.shm_dir, "tmpfs", flags, f"mode=1777,size={SHM_SIZE}")
    except OSError as err:
        raise StorageFailed(f"mounting /dev/shm failed: {err.strerror}") from err


def unmount_shm(paths: RootfsPaths) -> None:
    mounts.umount(paths.shm_dir, lazy=True)


def destroy(paths: RootfsPaths) -> None:
    """Unmount everything and delete the container's storage."""
    unmount_shm(paths)
    unmount_rootfs(paths)
    if mounts.is_mountpoint(paths.merged) or mounts.is_mountpoint(paths.shm_dir):
        raise StorageFailed(f"{paths.merged} is still mounted; not deleting its storage")
    shutil.rmtree(paths.container_dir, ignore_errors=True)
    shutil.rmtree(paths.shm_dir, ignore_errors=True)


class RootfsStorage:
    """The functions above as the core's storage port (core.ports.RootfsPort)."""

    def mount_rootfs(self, paths: RootfsPaths) -> Path:
        return mount_rootfs(paths)

    def unmount_rootfs(self, paths: RootfsPaths) -> None:
        unmount_rootfs(paths)

    def mount_shm(self, paths: RootfsPaths) -> None:
        mount_shm(paths)

    def unmount_shm(self, paths: RootfsPaths) -> None:
        unmount_shm(paths)

    def destroy(self, paths: RootfsPaths) -> None:
        destroy(paths)

    def mounted_paths(self) -> set[str]:
        return mounts.mounted_paths()
