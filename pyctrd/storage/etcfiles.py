"""Users and groups of an image, read from its layers as overlayfs would merge them.

The image is untrusted: /etc/passwd and /etc/group are read without following
any symlink (which could point at the host's files), and whiteouts and opaque
directories are honoured as overlayfs honours them.
"""

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from pyctrd.errors import InvalidArgument
from pyctrd.storage import overlayxattrs


def _is_number(text: str) -> bool:
    # str.isdigit() accepts "²" and other digits int() refuses.
    return text.isascii() and text.isdigit()


def resolve_user(user: str, image_root: Path | Sequence[Path]) -> tuple[int, int]:
    """'uid[:gid]' or a user name (with optional ':group') from the image.

    ``image_root`` is a root directory or the image's layer directories, top
    first; /etc/passwd and /etc/group are read as overlayfs would show them.
    """
    layers = [image_root] if isinstance(image_root, Path) else list(image_root)
    name, _, group = user.partition(":")
    if _is_number(name):
        uid = int(name)
        gid = _lookup(layers, "passwd", name, by_id=True, field_index=3)
        gid = gid if gid is not None else uid
    else:
        entry = _passwd_entry(layers, name)
        if entry is None:
            raise InvalidArgument(f"user {name!r} is not in the image's /etc/passwd; "
                                  "use uid[:gid] or a user the image has")
        if not (_is_number(entry[2]) and _is_number(entry[3])):
            raise InvalidArgument(f"user {name!r} has a malformed entry in the image's "
                                  "/etc/passwd; use uid[:gid]")
        uid, gid = int(entry[2]), int(entry[3])
    if group:
        if _is_number(group):
            gid = int(group)
        else:
            found = _lookup(layers, "group", group, by_id=False, field_index=2)
            if found is None:
                raise InvalidArgument(f"group {group!r} is not in the image's /etc/group")
            gid = found
    return uid, gid


def _passwd_entry(layers: list[Path], name: str) -> list[str] | None:
    for fields in _colon_file(layers, "passwd"):
        if len(fields) >= 4 and fields[0] == name:
            return fields
    return None


def _lookup(layers: list[Path], filename: str, key: str, *, by_id: bool,
            field_index: int) -> int | None:
    for fields in _colon_file(layers, filename):
        if len(fields) <= field_index:
            continue
        if (fields[2] if by_id else fields[0]) == key and _is_number(fields[field_index]):
            return int(fields[field_index])
    return None


def _colon_file(layers: list[Path], filename: str) -> list[list[str]]:
    # The image is untrusted: a symlinked etc/ or passwd could point at the host.
    text = _read_etc_file(layers, filename)
    return [line.split(":") for line in text.splitlines()] if text else []


class _Hidden(Exception):
    """The file is not visible in the merged image: look no further down."""


def _read_etc_file(layers: list[Path], filename: str) -> str:
    """etc/``filename`` of the merged layers (top first), without following any symlink.

    The top-most layer with an entry decides: a regular file is read; a
    whiteout, a symlink or anything else hides the file (a symlink is never
    followed, not even inside the image); an opaque etc/ hides lower layers.
    """
    try:
        for layer in layers:
            found = _read_in_layer(layer, filename)
            if found is not None:
                return found
    except _Hidden:
        return ""
    return ""


def _read_in_layer(layer: Path, filename: str) -> str | None:
    """The file's text; None if this layer has no entry for it; _Hidden if it hides it."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        layer_fd = os.open(layer, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            etc_fd = os.open("etc", flags | os.O_DIRECTORY, dir_fd=layer_fd)
        except FileNotFoundError:
            return None
        except OSError as err:  # a symlink, a whiteout, a file: no etc/ below
            raise _Hidden from err
        try:
            opaque = _is_opaque(etc_fd)
            try:
                fd = os.open(filename, flags | os.O_NONBLOCK, dir_fd=etc_fd)
            except FileNotFoundError:
                if opaque:
                    raise _Hidden from None
                return None
            except OSError as err:
                raise _Hidden from err
        finally:
            os.close(etc_fd)
    finally:
        os.close(layer_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Hidden
        return os.read(fd, 1 << 20).decode(errors="replace")
    finally:
        os.close(fd)


def _is_opaque(dir_fd: int) -> bool:
    try:
        return os.getxattr(dir_fd, overlayxattrs.opaque()) == b"y"
    except OSError:
        return False
