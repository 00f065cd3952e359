"""Network namespaces kept as bind-mounted nsfs files (as `ip netns add` does).

A namespace made before the runtime creates the container lives on its own:
netavark configures it, the OCI spec names its path, and it outlives the
container's processes until pyctrd unmounts it.
"""

import contextlib
import ctypes
import errno
import os
import shutil
import subprocess
from pathlib import Path

from pyctrd.errors import RuntimeFailed

UNSHARE_TIMEOUT = 10.0
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def create(path: Path) -> None:
    """A new, empty network namespace bound at ``path`` (RuntimeFailed if not)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if is_mounted(path):
        return  # made already (an Init retried after a crash)
    path.touch(mode=0o600)
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    try:
        # util-linux binds the new namespace's nsfs file onto ``path``: no fork of our
        # own (the daemon's threads must keep their namespace).
        result = subprocess.run([unshare, f"--net={path}", "true"], capture_output=True,
                                timeout=UNSHARE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        remove(path)
        raise RuntimeFailed(f"could not make a network namespace at {path}: {err}") from err
    if result.returncode != 0:
        remove(path)
        raise RuntimeFailed(f"could not make a network namespace at {path}: "
                            f"{result.stderr.decode(errors='replace').strip()}")


def remove(path: Path) -> None:
    """Unmount and delete ``path``; nothing there is no error."""
    if _umount(path) not in (0, errno.EINVAL, errno.ENOENT):
        raise RuntimeFailed(f"could not unmount the network namespace {path}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def is_mounted(path: Path) -> bool:
    """``path`` holds a namespace (an nsfs mount), not the empty file below it."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


def _umount(path: Path) -> int:
    if _libc.umount2(os.fsencode(path), _MNT_DETACH) == 0:
        return 0
    return ctypes.get_errno()
