"""A container's immutable configuration, resolved from options and its image."""

import os
import re
import secrets
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyctrd.core.exitoptions import check_exit_options
from pyctrd.core.image import Image
from pyctrd.core.namegen import generate_name
from pyctrd.core.netoptions import check_network_options
from pyctrd.core.unixsignals import parse_signal
from pyctrd.errors import InvalidArgument
from pyctrd.oci import capabilities, rlimits, seccomp
from pyctrd.oci.spec import SECCOMP_DEFAULT, SECCOMP_UNCONFINED
from pyctrd.storage.etcfiles import resolve_user

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
DEFAULT_STOP_TIMEOUT = 10
MOUNT_OPTIONS = {"ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "private",
                 "rprivate", "shared", "rshared", "slave", "rslave"}
# API.md's per-container size limits (bytes, UTF-8), checked at create.
LABELS_MAX = 64 << 10  # labels and annotations together
COMMAND_MAX = 128 << 10
ENV_MAX = 1 << 20
HOSTNAME_MAX = 64
# API.md allows up to 2^32-2 ((uid_t)-1 means "unchanged" to the kernel), but
# runc 1.1 refuses ids above 2^31-1 at Start, so that is what create accepts.
ID_MAX = (1 << 31) - 1
# execve refuses (E2BIG) any one argument or environment string of 32 pages or more.
ARG_STRLEN_MAX = (32 * 4096) - 1
PATH_MAX = 4096
# Kernel file systems the runtime sets up: a mount onto or below one could hide
# or replace what confines the container (as runc's CVE-2019-16884 did for /proc).
RESERVED_DESTINATIONS = ("/proc", "/sys", "/dev")
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")


@dataclass(slots=True)
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
    network: str = "none"  # the mode: "bridge", "none", "host", "pasta" (records before: none)
    # Networks (core/networks.py, core/netoptions.py): published ports as
    # (host_ip, host_port, container_port, protocol), resolv.conf and hosts entries.
    ports: list[tuple[str, int, int, str]] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    add_hosts: list[tuple[str, str]] = field(default_factory=list)
    network_aliases: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    no_new_privileges: bool = False
    privileged: bool = False
    # The process's capability set, resolved at create; None (records older than
    # the option): podman's default set.
    capabilities: list[str] | None = None
    seccomp: str = SECCOMP_DEFAULT
    # (name, soft, hard), the defaults included, resolved at create; None: defaults.
    ulimits: list[tuple[str, int, int]] | None = None
    # What happens after an exit (core/restart.py) and health checks (core/health.py).
    restart_policy: str = "no"
    restart_retries: int = 0
    auto_remove: bool = False
    health_cmd: list[str] = field(default_factory=list)
    health_interval: int = 30
    health_timeout: int = 30
    health_retries: int = 3
    health_start_period: int = 0

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "ContainerConfig":
        """From the store; values that repeat across containers (an image, a command,
        capabilities, environments) are shared, not kept once per container: nothing
        changes a config once it is made."""
        record = dict(record)
        record["mounts"] = [tuple(m) for m in record.get("mounts", [])]
        for key in ("ports", "add_hosts"):
            record[key] = [tuple(item) for item in record.get(key, [])]
        if record.get("ulimits") is not None:
            record["ulimits"] = [tuple(u) for u in record["ulimits"]]
        for key in _SHARED_FIELDS:
            if key in record:
                record[key] = shared(record[key])
        return cls(**record)


# The config's fields whose values repeat across containers (not ids, names, times).
_SHARED_FIELDS = ("image_id", "image_ref", "command", "env", "workdir", "user", "mounts",
                  "network", "ports", "dns", "dns_search", "add_hosts", "network_aliases",
                  "labels", "annotations", "capabilities", "seccomp", "ulimits",
                  "restart_policy", "health_cmd")
_SHARED_MAX = 20_000  # distinct values kept; beyond, new ones are simply not shared
_shared: dict[Any, Any] = {}


def shared(value: Any) -> Any:
    """One object for equal values: strings, and lists and dicts of plain values (which
    must then never be changed in place). A value that cannot be a key is kept as is."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= 256 else value
    if isinstance(value, list):
        key: Any = (list, tuple(value))
    elif isinstance(value, dict):
        key = (dict, tuple(value.items()))
    else:
        return value
    try:
        found = _shared.get(key)
    except TypeError:  # unhashable items (a list inside): not shared
        return value
    if found is not None:
        return found
    if len(_shared) < _SHARED_MAX:
        if isinstance(value, list):
            value = [shared(item) for item in value]
        else:
            value = {shared(k): shared(v) for k, v in value.items()}
        _shared[key] = value
    return value


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
    _check_size("command", _bytes(argv), COMMAND_MAX)
    _check_strings("command", argv)
    env = _merge_env(image.env, options.get("env", []))
    _check_size("env", _bytes(env), ENV_MAX)
    _check_strings("env", env)
    user = options.get("user", image.user) or "0:0"
    uid, gid = resolve_user(user, image_root)
    if not (0 <= uid <= ID_MAX and 0 <= gid <= ID_MAX):
        raise InvalidArgument(f"user {user!r}: uid and gid must be 0..{ID_MAX}")
    stop_signal = parse_signal(options.get("stop_signal", image.stop_signal or "SIGTERM"))
    # A network's name means a bridge (the engine has looked it up: core/networks.py).
    network = options.get("network", "bridge")
    if network not in ("none", "host", "pasta"):  # pasta: a user's own daemon's
        network = "bridge"
    network_options = check_network_options(options, network)
    workdir = options.get("workdir", image.workdir) or "/"
    if not workdir.startswith("/") or len(workdir.encode()) > PATH_MAX or "\0" in workdir:
        raise InvalidArgument(f"workdir {workdir[:100]!r} must be an absolute path "
                              f"of at most {PATH_MAX} bytes")
    labels = {**image.labels, **options.get("labels", {})}
    annotations = dict(options.get("annotations", {}))
    _check_size("labels and annotations", _bytes(labels) + _bytes(annotations), LABELS_MAX)
    hostname = options.get("hostname") or cid[:12]
    _check_hostname(hostname)
    privileged = options.get("privileged", False)
    caps = _capabilities(privileged, options.get("cap_add", []), options.get("cap_drop", []))
    confinement = options.get("seccomp",
                              SECCOMP_UNCONFINED if privileged else SECCOMP_DEFAULT)
    if confinement not in (SECCOMP_DEFAULT, SECCOMP_UNCONFINED):
        raise InvalidArgument(f"seccomp {confinement!r}: use 'default' or 'unconfined'")
    if confinement == SECCOMP_DEFAULT:
        seccomp.ensure_available()  # refused now rather than failing at Start
    ulimits = rlimits.resolve(options.get("ulimits", []))
    exit_options = check_exit_options(options)
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
        hostname=hostname,
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
        annotations=annotations,
        no_new_privileges=options.get("no_new_privileges", False),
        privileged=privileged,
        capabilities=caps,
        seccomp=confinement,
        ulimits=ulimits,
        **exit_options,
        **network_options,
    )


def now_us() -> int:
    return time.time_ns() // 1000


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*base, *extra]:
        key, sep, value = item.partition("=")
        if not sep or not key or "\0" in item:
            raise InvalidArgument(f"environment entry {item[:100]!r} is not of the form "
                                  "KEY=VALUE")
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def _bytes(value: Sequence[str] | dict[str, str]) -> int:
    """Bytes of strings (keys and values of a dict), one NUL-or-'=' each as stored."""
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else list(value)
    return sum(len(item.encode()) + 1 for item in items)


def _check_size(what: str, size: int, limit: int) -> None:
    if size > limit:
        raise InvalidArgument(f"{what} take {size} bytes; the limit is {limit}")


def _check_strings(what: str, items: Sequence[str]) -> None:
    """What execve takes: no NUL inside, none of 128 KiB or more."""
    for item in items:
        if "\0" in item:
            raise InvalidArgument(f"{what} must not contain NUL characters")
        if len(item.encode()) > ARG_STRLEN_MAX:
            raise InvalidArgument(f"{what}: an entry of {len(item.encode())} bytes is longer "
                                  f"than execve takes ({ARG_STRLEN_MAX})")


def _check_no_nul(what: str, items: Sequence[str]) -> None:
    if any("\0" in item for item in items):
        raise InvalidArgument(f"{what} must not contain NUL characters")


def _check_hostname(hostname: str) -> None:
    """RFC 1123: dot-separated labels of letters, digits and inner hyphens."""
    if len(hostname.encode()) > HOSTNAME_MAX or not all(
            _HOSTNAME_LABEL.match(label) for label in hostname.split(".")):
        raise InvalidArgument(
            f"hostname {hostname[:100]!r} must be at most {HOSTNAME_MAX} bytes of letters, "
            "digits, '-' and '.' (RFC 1123), each part starting and ending with a letter "
            "or digit")


def _capabilities(privileged: bool, add: list[str], drop: list[str]) -> list[str]:
    """podman's rules: privileged starts from all the daemon can grant; then
    cap_add/cap_drop."""
    available = capabilities.bounding_set()
    base = available if privileged else capabilities.DEFAULT_CAPS
    return capabilities.merge(base, add, drop, available)


def _check_destination(destination: str) -> None:
    if (not os.path.isabs(destination) or os.path.normpath(destination) != destination
            or destination.startswith("//") or len(destination.encode()) > PATH_MAX):
        raise InvalidArgument(f"mount destination {destination[:100]!r} must be an "
                              "absolute, normalized path (no '..', '.', '//' or trailing '/')")
    if destination == "/" or any(destination == reserved or destination.startswith(
            reserved + "/") for reserved in RESERVED_DESTINATIONS):
        raise InvalidArgument(f"mount destination {destination!r}: nothing may be mounted "
                              "on / or onto or below /proc, /sys or /dev")


def _check_mount(mount: tuple[str, str, str]) -> tuple[str, str, str]:
    source, destination, options = mount
    _check_no_nul("mounts", mount)
    if not os.path.isabs(source) or not os.path.exists(source):
        raise InvalidArgument(f"mount source {source!r} must be an existing absolute path")
    _check_destination(destination)
    bad = [o for o in options.split(",") if o and o not in MOUNT_OPTIONS]
    if bad:
        raise InvalidArgument(f"mount option {bad[0]!r} is not supported")
    return (source, destination, options)


def _check_cpus(cpus: float) -> float:
    # The kernel's least CFS quota is 1 ms per 100 ms period: 0.01 CPU.
    if cpus and not 0.01 <= cpus <= (os.cpu_count() or 1) * 1000:
        raise InvalidArgument(f"cpu_quota {cpus} is out of range: 0 (no limit) or "
                              f"0.01..{(os.cpu_count() or 1) * 1000}")
    return float(cpus)
