"""Each container's root filesystem: an overlay of its image's layers.

The container owns ``upper`` and ``work``; ``merged`` is the mountpoint.
A private tmpfs backs its /dev/shm, as libpod does.

mount(2) takes overlay's options in one page. When the layers' full paths do
not fit (some 40 layers), they are given by their short links (``l/<name>``,
see storage.layers) relative to the layer store, by a short-lived helper
process started there: the daemon itself never changes its directory.
"""

import errno
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pyctrd.errors import StorageFailed
from pyctrd.storage import mounts, overlayxattrs
from pyctrd.storage.trees import remove_tree

SHM_SIZE = "65536k"
OPTIONS_MAX = 4000  # bytes of mount data: a page (4096) with room to spare
HELPER_TIMEOUT = 30.0
# mount(2) from the helper's working directory; exits with the errno on failure
_MOUNT_HELPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.mount(b"overlay", os.fsencode(sys.argv[1]), b"overlay", 0, os.fsencode(sys.argv[2])):
    sys.exit(ctypes.get_errno() or 1)
"""


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
    rest = f",upperdir={paths.upper},workdir={paths.work}{overlayxattrs.mount_options()}"
    options = "lowerdir=" + ":".join(str(p) for p in paths.lower) + rest
    try:
        if len(options.encode()) <= OPTIONS_MAX:
            mounts.mount("overlay", paths.merged, "overlay", 0, options)
        else:
            store, links = short_lowers(paths.lower)
            options = "lowerdir=" + ":".join(links) + rest
            if len(options.encode()) > OPTIONS_MAX:
                raise StorageFailed(f"the image's {len(links)} layers do not fit in "
                                    "overlayfs' mount options even by their short links")
            _mount_from(store, paths.merged, options)
    except OSError as err:
        raise StorageFailed(f"mounting the root filesystem failed: {err.strerror}") from err
    return paths.merged


def short_lowers(lower: list[Path]) -> tuple[Path, list[str]]:
    """The layer store's directory and each lowerdir as ``l/<name>`` relative to it.

    ``lower`` are ``<store>/<diff id>/diff``; each layer's ``link`` file names its
    symlink in ``<store>/l``."""
    store = lower[0].parent.parent
    links = []
    for diff in lower:
        layer_dir = diff.parent
        try:
            name = (layer_dir / "link").read_text().strip()
            target = (store / "l" / name).readlink()
        except OSError as err:
            raise StorageFailed(f"layer {layer_dir.name[:12]} has no short link "
                                f"({err.strerror}); restart pyctrd to make it") from err
        if layer_dir.parent != store or str(target) != f"../{layer_dir.name}/diff":
            raise StorageFailed(f"layer {layer_dir.name[:12]}'s short link is wrong; "
                                "restart pyctrd to make it again")
        links.append(f"l/{name}")
    return store, links


def _mount_from(directory: Path, target: Path, options: str) -> None:
    """mount(2) of an overlay by a helper whose working directory is ``directory``."""
    try:
        result = subprocess.run([sys.executable, "-I", "-S", "-c", _MOUNT_HELPER,
                                 str(target), options], cwd=directory,
                                stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=HELPER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as err:
        raise StorageFailed("mounting the root filesystem took too long") from err
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        if detail:  # the helper itself failed (a Python error)
            raise OSError(errno.EIO, detail[-1])
        code = result.returncode if 0 < result.returncode < 256 else errno.EIO
        raise OSError(code, os.strerror(code))


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
    try:
        # iterative, at any depth the container's processes made; never into a mount
        remove_tree(paths.container_dir)
        remove_tree(paths.shm_dir)
    except OSError as err:
        raise StorageFailed(f"deleting the storage of {paths.container_dir.name[:12]} "
                            f"failed: {err.strerror or err}") from err


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
