"""mount(2) and umount2(2) without forking a helper per call."""

import ctypes
import ctypes.util
import errno
import os
import re
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

MNT_DETACH = 2
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8


def mount(source: str, target: Path, fstype: str, flags: int = 0, data: str = "") -> None:
    rc = _libc.mount(source.encode(), os.fsencode(target), fstype.encode(), flags,
                     data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")


def umount(target: Path, *, lazy: bool = False) -> None:
    """Unmount ``target``; not mounted is fine."""
    rc = _libc.umount2(os.fsencode(target), MNT_DETACH if lazy else 0)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):  # not a mount point; gone already
            return
        # Without CAP_SYS_ADMIN the kernel refuses before it looks whether ``target``
        # is a mount point at all: EPERM says nothing about the mount state.
        if err == errno.EPERM and not is_mounted(target):
            return
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def is_mounted(path: Path) -> bool:
    """``path`` is a mount point of this mount namespace (bind mounts included)."""
    return os.path.realpath(path) in mounted_paths()


def is_mountpoint(path: Path) -> bool:
    return os.path.ismount(path)


def mounted_paths() -> set[str]:
    """Every mount point of this mount namespace, from /proc/self/mountinfo."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return {_unescape(line.split(" ", 5)[4]) for line in f}


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
