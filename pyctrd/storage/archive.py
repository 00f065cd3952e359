"""Unpacking a root-filesystem tarball from a caller's fd, and exporting one.

Both run GNU tar as a subprocess: it is fast, keeps ownership, modes and
xattrs, and refuses members with ``..`` or absolute paths. The blocking
copy loop runs in a worker thread so the daemon's event loop never waits on
a slow or hostile writer.
"""

import contextlib
import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyctrd.errors import InvalidArgument, StorageFailed

CHUNK = 1 << 20
TAR_TIMEOUT = 3600.0

# magic bytes → GNU tar's decompression flag
COMPRESSIONS: list[tuple[bytes, str]] = [
    (b"\x1f\x8b", "--gzip"),
    (b"\x28\xb5\x2f\xfd", "--zstd"),
    (b"\xfd7zXZ\x00", "--xz"),
    (b"BZh", "--bzip2"),
]


@dataclass(frozen=True)
class Unpacked:
    digest: str  # sha256 of the archive as received
    archive_size: int


def compression_flag(head: bytes) -> list[str]:
    for magic, flag in COMPRESSIONS:
        if head.startswith(magic):
            return [flag]
    return []


def unpack_tarball(fd: int, dest: Path) -> Unpacked:
    """Blocking: read a (possibly compressed) tarball from ``fd`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o755)
    os.set_blocking(fd, True)  # the worker thread may block; the loop never does
    head = _read_some(fd)
    if not head:
        raise InvalidArgument("the archive is empty; pass a file descriptor of a tar archive")
    argv = ["tar", "--extract", "--file=-", f"--directory={dest}", "--numeric-owner",
            "--same-owner", "--same-permissions", "--xattrs", "--xattrs-include=*",
            *compression_flag(head)]
    digest = hashlib.sha256()
    size = 0
    # stderr goes to a file: a pipe could fill up while we are busy writing stdin.
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=errors)
        assert proc.stdin is not None
        try:
            chunk = head
            while chunk:
                digest.update(chunk)
                size += len(chunk)
                proc.stdin.write(chunk)
                chunk = _read_some(fd)
        except BrokenPipeError:
            pass  # tar gave up; its stderr says why
        except OSError as err:
            proc.kill()
            raise InvalidArgument(f"reading the archive failed: {err.strerror}") from err
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.wait(timeout=TAR_TIMEOUT)
        errors.seek(0)
        stderr = errors.read()
    if proc.returncode != 0:
        raise InvalidArgument(f"not a valid tar archive: {_tar_error(stderr)}")
    return Unpacked(digest=digest.hexdigest(), archive_size=size)


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


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _read_some(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, CHUNK)
        except InterruptedError:
            continue


def _tar_error(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[0].removeprefix("tar: ") if lines else "tar failed without a message"
