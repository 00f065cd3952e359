"""A container's immutable configuration, resolved from options and its image."""

import os
import re
import secrets
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyctrd.core.image import Image
from pyctrd.core.namegen import generate_name
from pyctrd.core.unixsignals import parse_signal
from pyctrd.errors import InvalidArgument
from pyctrd.storage.etcfiles import resolve_user

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
DEFAULT_STOP_TIMEOUT = 10
NETWORKS = ("none", "host")
MOUNT_OPTIONS = {"ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "private",
                 "rprivate", "shared", "rshared", "slave", "rslave"}



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
    no_new_privileges: bool = False

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
    """Resolve ``options`` against the image, checking what needs the image or host.

    ``options`` are plain values keyed by option name, already checked for
    type and range by the option schema (pyctrd.ops.options), which is the
    one list of them.
    """
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
        no_new_privileges=options.get("no_new_privileges", False),
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
