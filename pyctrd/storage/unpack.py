"""Applying one layer tar to an empty directory, safely, in overlayfs' form.

Every entry is created relative to an fd of its parent directory, which is
opened without following symlinks (see ``beneath``), so nothing can land
outside the layer: ``..`` and absolute names are refused, an entry below a
symlink is refused, hard links must point at an earlier entry of the same
layer. Errors a hostile or broken archive causes are InvalidArgument; the
caller deletes the half-made directory.

Docker/OCI whiteouts become what overlayfs reads: ``.wh.NAME`` a 0/0
character device NAME, ``.wh..wh..opq`` the xattr trusted.overlay.opaque=y on
its directory. Ownership (numeric), modes with setuid/setgid/sticky, xattrs,
hard links, symlinks, device nodes and modification times are kept.

Depth is not bounded by recursion, PATH_MAX or fds: parents are opened by
pieces (``beneath``) or from the last parent, directories are dated by inode
in an iterative walk at the end (``trees``). Sparse members (GNU and pax
sparse tars) are written with holes and count by their data; in other files
a run of zeros a read chunk long becomes a hole too. Every file's bytes are
charged to the import's ``ByteBudget`` before they are read, so a bomb is
refused at its header with StorageFailed naming the limit.
"""

import base64
import errno
import os
import stat
import tarfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyctrd.errors import InvalidArgument, StorageFailed
from pyctrd.storage import beneath, overlayxattrs, trees
from pyctrd.storage.streams import CHUNK, Reader

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
AUFS_META_PREFIX = ".wh..wh."  # aufs' own bookkeeping (.wh..wh.plnk, ...): dropped
# overlayfs trusts these on lower layers; an archive must not forge them
FORBIDDEN_XATTR_PREFIXES = overlayxattrs.ALL_PREFIXES
# the disk's problems, not the archive's
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM}
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
NODE_TYPES = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
              tarfile.FIFOTYPE: stat.S_IFIFO}


class ByteBudget:
    """The bytes one import may still unpack (``import_max_bytes``); None: no limit."""

    def __init__(self, limit: int | None, what: str = "import_max_bytes") -> None:
        self.limit = limit
        self.what = what
        self.used = 0
        self._lock = threading.Lock()  # layers of one image may unpack in threads

    def charge(self, size: int, name: str) -> None:
        with self._lock:
            if self.limit is not None and self.used + size > self.limit:
                raise StorageFailed(
                    f"the image unpacks to more than {self.limit} bytes ({self.what}; "
                    f"reached at {name[:200]!r}); refusing it")
            self.used += size


@dataclass(frozen=True)
class LayerStats:
    size: int  # bytes of regular file content
    entries: int


def unpack_layer(stream: Reader, dest: Path, budget: ByteBudget | None = None) -> LayerStats:
    """Blocking: unpack the (uncompressed) layer tar ``stream`` into new directory ``dest``.

    Reads the tar up to its end-of-archive marker; the caller drains the rest.
    File data is charged to ``budget`` (StorageFailed once over it).
    """
    dest.mkdir(mode=0o755)
    os.chmod(dest, 0o755)  # whatever the umask; a "./" entry may change it
    root_fd = os.open(dest, beneath.DIR_FLAGS)
    unpacker = _Unpacker(root_fd, budget or ByteBudget(None))
    try:
        try:
            # tarfile's stream copies its whole buffer on every read: with the
            # default 10 KiB, many small files unpack 3x faster than with 1 MiB
            tar = tarfile.open(fileobj=stream, mode="r|",  # type: ignore[call-overload]  # noqa: SIM115
                               bufsize=tarfile.RECORDSIZE)
        except tarfile.ReadError as err:
            raise InvalidArgument(f"not a tar archive ({err})") from err
        with tar:
            for member in tar_members(tar):
                unpacker.apply(tar, member)
        unpacker.finish()
        return LayerStats(size=unpacker.size, entries=unpacker.entries)
    finally:
        unpacker.close()
        os.close(root_fd)


def tar_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The entries of a streamed tar; a corrupt archive is the caller's InvalidArgument."""
    while True:
        try:
            member = tar.next()
        except tarfile.TarError as err:
            raise InvalidArgument(f"the tar archive is corrupt: {err}") from err
        if member is None:
            return
        tar.members.clear()  # type: ignore[attr-defined]  # read once: keep no headers
        yield member


def clean_name(name: str) -> tuple[str, ...]:
    """An entry name as path components inside the layer; InvalidArgument if it leaves it."""
    if name.startswith("/"):
        raise InvalidArgument(f"the archive has an absolute path {name!r}; refusing it")
    # list operations in C: a deep tree's names are long, and there are many
    split = name.split("/")
    parts = tuple(split) if "" not in split and "." not in split \
        else tuple(p for p in split if p not in ("", "."))
    if ".." in parts:
        raise InvalidArgument(f"the archive has a path with '..' ({name!r}); refusing it")
    return parts


class _Unpacker:
    def __init__(self, root_fd: int, budget: ByteBudget) -> None:
        self.root_fd = root_fd
        self.budget = budget
        self.size = 0
        self.entries = 0
        # Entries come grouped by directory: keep the last parent open.
        self._parent_key: tuple[str, ...] | None = None
        self._parent_fd = -1
        # A directory's mtime changes as entries land in it: set them at the end,
        # by inode (paths of deep trees would take memory quadratic in the depth).
        self._dir_times: dict[tuple[int, int], tuple[int, int]] = {}

    def close(self) -> None:
        if self._parent_fd >= 0:
            os.close(self._parent_fd)
            self._parent_fd = -1

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = clean_name(member.name)
        if AUFS_META_PREFIX in member.name and any(
                p.startswith(AUFS_META_PREFIX) and p != OPAQUE_MARKER for p in parts):
            return
        self.entries += 1
        try:
            if not parts:
                self._apply_root(member)
            elif parts[-1].startswith(WHITEOUT_PREFIX):
                self._apply_whiteout(parts, member)
            else:
                self._apply_entry(tar, parts, member)
        except OSError as err:
            raise _describe(err, member.name) from err
        except tarfile.TarError as err:  # the data of an entry ends early
            raise InvalidArgument(f"the tar archive is corrupt at {member.name!r}: {err}") \
                from err

    # parents

    def _parent(self, parts: tuple[str, ...]) -> int:
        key = parts[:-1]
        current = self._parent_key
        if key == current:
            return self._parent_fd
        if current is not None and len(key) > len(current) and key[:len(current)] == current:
            # below the last parent (a deep tree comes this way): go on from there
            fd = self._open_dir(key[len(current):], member_name="/".join(parts), create=True,
                                base=self._parent_fd)
        else:
            fd = self._open_dir(key, member_name="/".join(parts), create=True)
        self.close()
        self._parent_fd, self._parent_key = fd, key
        return fd

    def _open_dir(self, parts: tuple[str, ...], *, member_name: str, create: bool,
                  base: int = -1) -> int:
        try:
            return beneath.open_dir(self.root_fd if base < 0 else base, parts, create=create)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
                raise InvalidArgument(
                    f"the archive's entry {member_name!r} lies below a symbolic link or a "
                    "file; refusing it") from err
            raise

    # entries

    def _apply_root(self, member: tarfile.TarInfo) -> None:
        if not member.isdir():
            raise InvalidArgument(f"the archive's root entry {member.name!r} is not a directory")
        _set_owner_mode_xattrs(self.root_fd, member)
        self._dir_times[_ident(self.root_fd)] = _times(member)

    def _apply_whiteout(self, parts: tuple[str, ...], member: tarfile.TarInfo) -> None:
        parent = self._parent(parts)
        if parts[-1] == OPAQUE_MARKER:
            os.setxattr(parent, overlayxattrs.opaque(), b"y")
            return
        target = parts[-1].removeprefix(WHITEOUT_PREFIX)
        if target in ("", ".", ".."):
            raise InvalidArgument(f"the archive has a whiteout without a name ({member.name!r})")
        _remove(parent, target)
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=parent)
        os.chown(target, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)

    def _apply_entry(self, tar: tarfile.TarFile, parts: tuple[str, ...],
                     member: tarfile.TarInfo) -> None:
        parent = self._parent(parts)
        name = parts[-1]
        if member.isdir():
            self._make_dir(parent, name, parts, member)
            return
        if member.islnk():
            self._make_hardlink(parent, name, parts, member)
            return
        _remove(parent, name)
        if member.isfile():
            self._make_file(tar, parent, name, member)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent)  # written, never followed
            _set_meta_by_name(parent, name, member)
        elif member.type in NODE_TYPES:
            os.mknod(name, NODE_TYPES[member.type] | 0o600,
                     os.makedev(member.devmajor, member.devminor), dir_fd=parent)
            _set_meta_by_name(parent, name, member)
        else:
            raise InvalidArgument(f"the archive's entry {member.name!r} has a type pyctrd "
                                  f"cannot unpack ({member.type!r})")

    def _make_dir(self, parent: int, name: str, parts: tuple[str, ...],
                  member: tarfile.TarInfo) -> None:
        existing = _lstat(parent, name)
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            _remove(parent, name)
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, beneath.DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
        try:
            _set_owner_mode_xattrs(fd, member)
            self._dir_times[_ident(fd)] = _times(member)
        finally:
            os.close(fd)

    def _make_file(self, tar: tarfile.TarFile, parent: int, name: str,
                   member: tarfile.TarInfo) -> None:
        sparse = _sparse_blocks(member)
        self.budget.charge(member.size if sparse is None else sum(s for _, s in sparse),
                           member.name)
        fd = os.open(name, FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            if sparse is None:
                source = tar.extractfile(member)
                assert source is not None
                _copy_with_holes(source, fd, member.size)
            else:
                _copy_sparse(tar, member, sparse, fd)
            _set_owner_mode_xattrs(fd, member)
            os.utime(fd, ns=_times(member))
        finally:
            os.close(fd)
        self.size += member.size

    def _make_hardlink(self, parent: int, name: str, parts: tuple[str, ...],
                       member: tarfile.TarInfo) -> None:
        target = clean_name(member.linkname)
        if target == parts:
            return  # a link to itself: the entry is already there
        if not target:
            raise InvalidArgument(f"the archive's hard link {member.name!r} points at the "
                                  "layer's root")
        try:
            target_parent = self._open_dir(target[:-1], member_name=member.linkname,
                                           create=False)
        except FileNotFoundError:
            target_parent = -1
        try:
            if target_parent < 0 or _lstat(target_parent, target[-1]) is None:
                raise InvalidArgument(
                    f"the archive's hard link {member.name!r} points at {member.linkname!r}, "
                    "which is not an earlier entry of the same layer")
            _remove(parent, name)
            try:
                # no AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself
                os.link(target[-1], name, src_dir_fd=target_parent, dst_dir_fd=parent,
                        follow_symlinks=False)
            except PermissionError as err:
                raise InvalidArgument(f"the archive's hard link {member.name!r} points at a "
                                      "directory") from err
        finally:
            if target_parent >= 0:
                os.close(target_parent)

    def finish(self) -> None:
        if not self._dir_times:
            return
        self.close()

        def date(fd: int, _entries: object) -> None:
            times = self._dir_times.get(_ident(fd))
            if times is not None:
                os.utime(fd, ns=times)

        trees.visit_dirs(self.root_fd, date)


def _sparse_blocks(member: tarfile.TarInfo) -> list[tuple[int, int]] | None:
    """A sparse member's data blocks (offset, size); None for an ordinary file."""
    if not member.issparse():
        return None
    blocks: Any = member.sparse  # typeshed has no type for it
    return [(int(off), int(size)) for off, size in blocks if size > 0]


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _copy_with_holes(source: Reader, fd: int, size: int) -> None:
    """Copy a member's data; a chunk of zeros is skipped (a hole) rather than written."""
    while data := source.read(CHUNK):
        if not data.rstrip(b"\0"):
            os.lseek(fd, len(data), os.SEEK_CUR)
            continue
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    os.ftruncate(fd, size)  # a trailing hole, which the skip left unwritten


def _copy_sparse(tar: tarfile.TarFile, member: tarfile.TarInfo,
                 blocks: list[tuple[int, int]], fd: int) -> None:
    """A sparse member: its data blocks, stored one after another in the archive, each
    written at its offset; the holes between them never read nor written. (tarfile's own
    reader returns the holes as zeros: 10 GiB of them for a 10 KiB archive.)"""
    raw = tar.fileobj
    assert raw is not None
    raw.seek(member.offset_data)  # forward only: the stream is where the data starts
    for offset, size in blocks:
        if offset + size > member.size:
            raise InvalidArgument(f"the sparse file {member.name!r} has data past its size")
        position = offset
        while size > 0:
            data = raw.read(min(size, CHUNK))
            if not data:
                raise InvalidArgument(f"the tar archive is corrupt at {member.name!r}: "
                                      "its data ends early")
            os.pwrite(fd, data, position)
            position += len(data)
            size -= len(data)
    os.ftruncate(fd, member.size)


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove(parent: int, name: str) -> None:
    """Make room for an entry: a later entry of the same name replaces an earlier one."""
    existing = _lstat(parent, name)
    if existing is None:
        return
    if stat.S_ISDIR(existing.st_mode):
        trees.remove_at(parent, name)  # any depth
    else:
        os.unlink(name, dir_fd=parent)


def _set_owner_mode_xattrs(fd: int, member: tarfile.TarInfo) -> None:
    os.fchown(fd, member.uid, member.gid)
    os.fchmod(fd, member.mode & 0o7777)  # after chown, which clears setuid/setgid
    for key, value in _xattrs(member):
        _setxattr(fd, key, value)


def _set_meta_by_name(parent: int, name: str, member: tarfile.TarInfo) -> None:
    """Symlinks and device nodes cannot be opened for writing: set by name below ``parent``."""
    os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
    if not member.issym():  # a symlink's mode means nothing; chmod would follow it
        os.chmod(name, member.mode & 0o7777, dir_fd=parent)
    xattrs = list(_xattrs(member))
    if xattrs:
        # setxattr has no dir_fd; this path goes through the verified parent fd
        path = f"/proc/self/fd/{parent}/{name}"
        for key, value in xattrs:
            _setxattr(path, key, value, follow_symlinks=False)
    os.utime(name, ns=_times(member), dir_fd=parent, follow_symlinks=False)


def _setxattr(target: int | str, key: str, value: bytes, *, follow_symlinks: bool = True
              ) -> None:
    try:
        os.setxattr(target, key, value, follow_symlinks=follow_symlinks)
    except OSError as err:
        if err.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return  # the filesystem does not keep this kind (e.g. security.selinux)
        raise


def _xattrs(member: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key.removeprefix("SCHILY.xattr.")
            data = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key.removeprefix("LIBARCHIVE.xattr."))
            try:
                data = base64.b64decode(value + "=" * (-len(value) % 4))
            except ValueError as err:
                raise InvalidArgument(f"the archive has a malformed xattr {name!r}") from err
        else:
            continue
        if name.startswith(FORBIDDEN_XATTR_PREFIXES):
            continue
        yield name, data


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    mtime = _pax_ns(member.pax_headers.get("mtime"))
    if mtime is None:
        mtime = int(member.mtime) * 1_000_000_000 if isinstance(member.mtime, int) \
            else round(member.mtime * 1_000_000_000)
    atime = _pax_ns(member.pax_headers.get("atime"))
    return (mtime if atime is None else atime), mtime


def _pax_ns(text: str | None) -> int | None:
    """Nanoseconds from a pax time ("1700000000.123456789") without float rounding."""
    if not text:
        return None
    whole, _, frac = text.partition(".")
    if not (whole.lstrip("-").isascii() and whole.lstrip("-").isdigit()
            and (not frac or (frac.isascii() and frac.isdigit()))):
        return None
    ns = int(whole.lstrip("-")) * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if whole.startswith("-") else ns


def _describe(err: OSError, name: str) -> Exception:
    if isinstance(err, InvalidArgument):
        return err
    text = err.strerror or str(err)
    if err.errno in STORAGE_ERRNOS:
        return StorageFailed(f"unpacking {name!r} failed: {text}")
    return InvalidArgument(f"cannot unpack the archive's entry {name!r}: {text}")
