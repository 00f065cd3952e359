"""A container's overlay upper dir as an OCI layer (Commit).

What overlayfs records as a deletion (a 0/0 character device) becomes an OCI
whiteout ``.wh.NAME``; a directory overlayfs marks opaque (it replaced the
lower one) gets ``.wh..wh..opq``. Entries are written in sorted order, owners
numeric only, hard links kept, and the gzip header has no time, so the same
changes make the same layer.
"""

import contextlib
import gzip
import os
import stat
import tarfile
from pathlib import Path

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def write_upper_layer(upper: Path, dest: Path, compresslevel: int = 6) -> None:
    """Write ``upper``'s changes as a gzip'd layer tar to ``dest``."""
    with open(dest, "xb") as raw, \
            gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                          compresslevel=compresslevel, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if upper.is_dir():
            _add_tree(tar, upper)


def _add_tree(tar: tarfile.TarFile, upper: Path) -> None:
    stack = [""]
    while stack:  # iterative: any depth
        rel = stack.pop()
        directory = upper / rel if rel else upper
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                parent, _, base = name.rpartition("/")
                info = tarfile.TarInfo(f"{parent}/{WHITEOUT}{base}" if parent
                                       else f"{WHITEOUT}{base}")
                info.mode = 0o600
                tar.addfile(info)
                continue
            info = tar.gettarinfo(entry.path, name)
            info.uname = info.gname = ""
            if info.isreg():
                with open(entry.path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if entry.is_dir(follow_symlinks=False):
                if _opaque(entry.path):
                    marker = tarfile.TarInfo(f"{name}/{OPAQUE}")
                    marker.mode = 0o600
                    tar.addfile(marker)
                stack.append(name)


def _opaque(path: str) -> bool:
    for attr in OPAQUE_XATTRS:
        with contextlib.suppress(OSError):
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
    return False
