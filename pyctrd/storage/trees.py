"""Walking and deleting directory trees of any depth, without following symlinks.

Python 3.11's ``shutil.rmtree`` and ``os.walk`` recurse once per directory
level: an image or a container's process that nests a few thousand
directories makes them raise RecursionError. Here the walk keeps a list per
level and one directory fd open at a time: it goes down by ``openat(name,
O_NOFOLLOW)`` and back up by ``openat("..")``, checked against the inode it
came from, so neither the depth nor the fd limit bounds it, and a tree moved
under it is noticed (ESTALE) instead of followed.

Mount points are never entered: a tree that has one below it is reported
with EBUSY (and the rest is deleted), so a removal cannot reach into a
mounted filesystem or a bind-mounted host directory.
"""

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyctrd.storage import mounts

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PERMISSION = (errno.EACCES, errno.EPERM)


@dataclass
class _Level:
    name: str  # in its parent ("" for the top)
    ident: tuple[int, int]  # (st_dev, st_ino)
    subdirs: list[str] = field(default_factory=list)  # still to visit


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _open_child(parent_fd: int, name: str) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        # not root (a session daemon): a directory made mode 000 by the container
        os.chmod(name, 0o700, dir_fd=parent_fd, follow_symlinks=False)
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)


def _walk(top_fd: int, on_dir: Callable[[int, list[os.DirEntry[str]]], None],
          on_leave: Callable[[int, str], None] | None, errors: list[OSError]) -> None:
    """Visit every directory below and including ``top_fd`` (which stays open).

    ``on_dir(fd, non_directory_entries)`` runs once per directory, before its
    subdirectories; ``on_leave(parent_fd, name)`` after them (post-order).
    Problems are appended to ``errors``; the walk goes on past them.
    """
    fd = os.dup(top_fd)
    try:
        levels = [_Level("", _ident(os.fstat(fd)))]
        _list(fd, levels[-1], on_dir, errors)
        while levels:
            level = levels[-1]
            if level.subdirs:
                name = level.subdirs.pop()
                try:
                    child = _open_child(fd, name)
                except FileNotFoundError:
                    continue
                except OSError as err:
                    errors.append(err)
                    continue
                ident = _ident(os.fstat(child))
                if ident[0] != level.ident[0]:  # another filesystem mounted here
                    os.close(child)
                    errors.append(OSError(errno.EBUSY, "a mount point is below it", name))
                    continue
                os.close(fd)
                fd = child
                levels.append(_Level(name, ident))
                _list(fd, levels[-1], on_dir, errors)
                continue
            levels.pop()
            if not levels:
                break
            parent = os.open("..", DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            if _ident(os.fstat(fd)) != levels[-1].ident:
                raise OSError(errno.ESTALE, "the tree was moved while being walked")
            if on_leave is not None:
                on_leave(fd, level.name)
    finally:
        os.close(fd)


def _list(fd: int, level: _Level, on_dir: Callable[[int, list[os.DirEntry[str]]], None],
          errors: list[OSError]) -> None:
    others = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    level.subdirs.append(entry.name)
                else:
                    others.append(entry)
    except OSError as err:
        errors.append(err)
        return
    on_dir(fd, others)


def visit_dirs(top_fd: int, on_dir: Callable[[int, list[os.DirEntry[str]]], None]) -> None:
    """Call ``on_dir(dir_fd, non_directory_entries)`` for every directory of the tree
    (the top included), at any depth, never crossing into a mount; raises the first
    problem met after the walk."""
    errors: list[OSError] = []
    _walk(top_fd, on_dir, None, errors)
    if errors:
        raise errors[0]


def tree_size(root: Path) -> int:
    """The bytes of every non-directory entry below ``root`` (st_size), at any depth."""
    total = 0

    def add(fd: int, entries: list[os.DirEntry[str]]) -> None:
        nonlocal total
        for entry in entries:
            with contextlib.suppress(OSError):
                total += entry.stat(follow_symlinks=False).st_size

    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError:
        return 0
    try:
        _walk(fd, add, None, [])
    finally:
        os.close(fd)
    return total


def remove_tree(path: Path | str, *, check_mounts: bool = True) -> None:
    """Delete ``path`` and everything below it, whatever the depth; gone already is fine.

    Raises OSError for what could not be deleted, after deleting all else: EBUSY
    when something below is a mount point (checked against the mount table first
    unless ``check_mounts`` is false, and by device while walking).
    """
    path = os.path.abspath(path)
    if check_mounts:
        prefix = path.rstrip("/") + "/"
        below = sorted(p for p in mounts.mounted_paths() if p.startswith(prefix) or p == path)
        if below:
            raise OSError(errno.EBUSY, f"{below[0]} is mounted; not deleting {path}")
    parent, name = os.path.split(path)
    try:
        parent_fd = os.open(parent or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        remove_at(parent_fd, name)
    finally:
        os.close(parent_fd)


def remove_quietly(path: Path | str) -> list[OSError]:
    """``remove_tree`` for clean-ups that must go on: the problem (if any) returned."""
    try:
        remove_tree(path)
    except OSError as err:
        return [err]
    return []


def remove_at(parent_fd: int, name: str) -> None:
    """Delete the entry ``name`` of directory ``parent_fd``: a file, or a whole tree."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        _unlink(parent_fd, name, [])
        return
    errors: list[OSError] = []
    try:
        fd = _open_child(parent_fd, name)
    except FileNotFoundError:
        return
    try:
        if _ident(os.fstat(fd)) != _ident(st):
            raise OSError(errno.ESTALE, "replaced while being deleted", name)
        _walk(fd, lambda dfd, entries: _unlink_all(dfd, entries, errors),
              lambda pfd, child: _rmdir(pfd, child, errors), errors)
    finally:
        os.close(fd)
    _rmdir(parent_fd, name, errors)
    if errors:
        raise errors[0]


def _unlink_all(fd: int, entries: list[os.DirEntry[str]], errors: list[OSError]) -> None:
    for entry in entries:
        _unlink(fd, entry.name, errors)


def _unlink(fd: int, name: str, errors: list[OSError]) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    except OSError as err:
        if err.errno in _PERMISSION and _make_writable(fd):
            _unlink(fd, name, errors)
        else:
            errors.append(err)


def _rmdir(fd: int, name: str, errors: list[OSError]) -> None:
    try:
        os.rmdir(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    except OSError as err:
        if err.errno in _PERMISSION and _make_writable(fd):
            _rmdir(fd, name, errors)
        elif err.errno == errno.ENOTEMPTY and errors:
            pass  # something below could not go: that is the problem to report
        else:
            errors.append(err)


def _make_writable(fd: int) -> bool:
    """A read-only directory (for a non-root daemon): allow deleting in it, once."""
    mode = os.fstat(fd).st_mode
    if mode & 0o300 == 0o300:
        return False  # already writable: the refusal has another cause
    os.fchmod(fd, stat.S_IMODE(mode) | 0o700)
    return True
