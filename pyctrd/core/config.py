"""A container's immutable configuration, resolved from options and its image."""

import os
import re
import secrets
import stat
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyctrd.core.image import Image
from pyctrd.core.namegen import generate_name
from pyctrd.core.unixsignals import parse_signal
from pyctrd.errors import InvalidArgument

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
DEFAULT_STOP_TIMEOUT = 10
NETWORKS = ("none", "host")
MOUNT_OPTIONS = {"ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "private",
                 "rprivate", "shared", "rshared", "slave", "rslave"}

OPTION_NAMES = frozenset({
    "name", "labels", "annotations", "env", "workdir", "user", "hostname", "terminal",
    "stdin", "stop_signal", "stop_timeout", "read_only", "mounts", "memory_limit",
    "cpu_quota", "pids_limit", "network",
})


@dataclass
class ContainerConfig:
    id: str
    name: str
    image_id: str
    image_ref: str
    command: list[str]
    env: list[str]
    workdir: str
    user: str
    uid: int
    gid: int
    hostname: str
    created: int
    terminal: bool = False
    stdin: bool = False
    stop_signal: int = 15
    stop_timeout: int = DEFAULT_STOP_TIMEOUT
    read_only: bool = False
    mounts: list[tuple[str, str, str]] = field(default_factory=list)
    memory_limit: int = 0
    cpu_quota: float = 0.0
    pids_limit: int = 0
    network: str = "none"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "ContainerConfig":
        record = dict(record)
        record["mounts"] = [tuple(m) for m in record.get("mounts", [])]
        return cls(**record)


def build_config(image: Image, image_root: Path | Sequence[Path], command: list[str],
                 options: dict[str, Any],
                 taken_names: Collection[str]) -> ContainerConfig:
    """Validate ``options`` (plain Python values) and resolve them against the image."""
    unknown = set(options) - OPTION_NAMES
    if unknown:
        known = ", ".join(sorted(OPTION_NAMES))
        raise InvalidArgument(f"unknown option {sorted(unknown)[0]!r}; known options: {known}")
    cid = secrets.token_hex(32)
    name = options.get("name") or generate_name(taken_names)
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f"invalid name {name!r}: use letters, digits, '_', '.' and '-', starting with "
            "a letter or digit"
        )
    argv = list(command) or [*image.entrypoint, *image.cmd]
    if not argv:
        raise InvalidArgument(
            f"no command given and image {image.reference} has no Entrypoint or Cmd; "
            "pass a command"
        )
    env = _merge_env(image.env, options.get("env", []))
    user = options.get("user", image.user) or "0:0"
    uid, gid = resolve_user(user, image_root)
    stop_signal = parse_signal(options.get("stop_signal", image.stop_signal or "SIGTERM"))
    network = options.get("network", "none")
    if network not in NETWORKS:
        raise InvalidArgument(f"network {network!r} is not supported; use 'none' or 'host'")
    workdir = options.get("workdir", image.workdir) or "/"
    if not workdir.startswith("/"):
        raise InvalidArgument(f"workdir {workdir!r} must be an absolute path")
    labels = {**image.labels, **options.get("labels", {})}
    return ContainerConfig(
        id=cid,
        name=name,
        image_id=image.id,
        image_ref=image.reference,
        command=argv,
        env=env,
        workdir=workdir,
        user=user,
        uid=uid,
        gid=gid,
        hostname=options.get("hostname") or cid[:12],
        created=now_us(),
        terminal=options.get("terminal", False),
        stdin=options.get("stdin", False),
        stop_signal=stop_signal,
        stop_timeout=options.get("stop_timeout", DEFAULT_STOP_TIMEOUT),
        read_only=options.get("read_only", False),
        mounts=[_check_mount(m) for m in options.get("mounts", [])],
        memory_limit=options.get("memory_limit", 0),
        cpu_quota=_check_cpus(options.get("cpu_quota", 0.0)),
        pids_limit=options.get("pids_limit", 0),
        network=network,
        labels=labels,
        annotations=dict(options.get("annotations", {})),
    )


def now_us() -> int:
    return time.time_ns() // 1000


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*base, *extra]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"environment entry {item!r} is not of the form KEY=VALUE")
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


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
        return os.getxattr(dir_fd, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def _check_mount(mount: tuple[str, str, str]) -> tuple[str, str, str]:
    source, destination, options = mount
    if not os.path.isabs(source) or not os.path.exists(source):
        raise InvalidArgument(f"mount source {source!r} must be an existing absolute path")
    if not os.path.isabs(destination):
        raise InvalidArgument(f"mount destination {destination!r} must be an absolute path")
    bad = [o for o in options.split(",") if o and o not in MOUNT_OPTIONS]
    if bad:
        raise InvalidArgument(f"mount option {bad[0]!r} is not supported")
    return (source, destination, options)


def _check_cpus(cpus: float) -> float:
    if cpus < 0 or cpus > os.cpu_count() * 1000:  # type: ignore[operator]
        raise InvalidArgument(f"cpu_quota {cpus} is out of range")
    return float(cpus)
