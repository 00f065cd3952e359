"""Opening directories beneath a root fd without following any symlink.

openat2(2) with RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH does it in one system
call; where the kernel lacks it, a walk of openat(O_NOFOLLOW) calls does the
same one component at a time.
"""

import ctypes
import ctypes.util
import errno
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_OPENAT2 = 437  # the same number on every architecture (a post-5.x syscall)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
PIECE_BYTES = 3072  # of a path handed to openat2 at once (PATH_MAX is 4096)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_have_openat2 = True


def open_dir(root_fd: int, parts: tuple[str, ...], *, create: bool) -> int:
    """An fd of the directory ``parts`` below ``root_fd``; missing ones made if ``create``.

    Raises OSError: ELOOP or ENOTDIR when a component is a symlink or no
    directory, ENOENT when one is missing and ``create`` is false.
    """
    if not parts:
        return os.dup(root_fd)
    if not _have_openat2:
        return _walk(root_fd, parts, create)
    # A deep path passes PATH_MAX: resolve it in pieces, each beneath the last.
    fd = os.dup(root_fd)
    try:
        for piece in _pieces(parts):
            try:
                child = _openat2(fd, "/".join(piece))
            except FileNotFoundError:
                if not create:
                    raise
                child = _walk(fd, piece, create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pieces(parts: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``parts`` cut into runs whose joined length stays well below PATH_MAX."""
    pieces: list[tuple[str, ...]] = []
    start, length = 0, 0
    for i, part in enumerate(parts):
        size = len(os.fsencode(part)) + 1
        if length + size > PIECE_BYTES and i > start:
            pieces.append(parts[start:i])
            start, length = i, 0
        length += size
    pieces.append(parts[start:])
    return pieces


def _openat2(root_fd: int, path: str) -> int:
    global _have_openat2
    how = _OpenHow(DIR_FLAGS, 0, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(SYS_OPENAT2, ctypes.c_int(root_fd), ctypes.c_char_p(os.fsencode(path)),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd >= 0:
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):  # old kernel, or a seccomp filter refusing it
        _have_openat2 = False
        return _walk(root_fd, tuple(path.split("/")), create=False)
    if err == errno.EXDEV:  # RESOLVE_BENEATH refused: report it as a link problem
        err = errno.ELOOP
    raise OSError(err, os.strerror(err), path)


def _walk(root_fd: int, parts: tuple[str, ...], create: bool) -> int:
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                child = os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd
