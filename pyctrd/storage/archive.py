"""Exporting a root filesystem as a tar.

GNU tar writes the export: it is fast and keeps ownership, modes and xattrs.
(Unpacking is pyctrd's own, in ``unpack``: it must refuse hostile entries and
turn whiteouts into overlayfs' form.)
"""

import os
import subprocess
from pathlib import Path

from pyctrd.errors import StorageFailed

TAR_TIMEOUT = 3600.0


def export_tree(root: Path, fd: int) -> None:
    """Blocking: write ``root`` as an uncompressed tar to ``fd``."""
    argv = ["tar", "--create", "--file=-", f"--directory={root}", "--numeric-owner",
            "--xattrs", "--sparse", "."]
    os.set_blocking(fd, True)
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=fd,
                                stderr=subprocess.PIPE, timeout=TAR_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as err:
        raise StorageFailed("exporting took longer than an hour; gave up") from err
    if result.returncode not in (0, 1):  # 1: files changed while being read
        raise StorageFailed(f"exporting failed: {_tar_error(result.stderr)}")


def _tar_error(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[0].removeprefix("tar: ") if lines else "tar failed without a message"
