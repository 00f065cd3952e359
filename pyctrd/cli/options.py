"""create/run flags → CreateContainer's a{sv} options, parsed as podman parses them.

Parsing only: nothing here talks to the daemon, so it is unit-tested directly.
The D-Bus types come from the daemon's option schema (pyctrd.ops.options), not
from here. Values the daemon checks against the host or image (paths exist,
signal names) are passed as given.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyctrd.cli.errors import CliError
from pyctrd.errors import InvalidArgument
from pyctrd.ops.options import OPTIONS, STRUCT_FIELDS, decode_dbus, encode_dbus

if TYPE_CHECKING:
    from dbus_fast import Variant  # imported when used: run over Varlink goes without

_MEMORY = re.compile(r"^(\d+(?:\.\d+)?) ?([bkmgtp])?(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MEMORY_MIN = 6 << 20  # podman's floor: less cannot start a container


def parse_memory(text: str) -> int:
    """"512m", "1g", "1.5GiB", "100000" (bytes) → bytes; units are binary, as podman's."""
    match = _MEMORY.match(text.strip())
    if not match:
        raise CliError(f"invalid memory limit {text!r}: give a number with an optional "
                       "unit b, k, m, g (e.g. 512m or 1g)")
    number, unit = match.groups()
    size = int(float(number) * _UNITS[(unit or "").lower()])
    if size == 0:
        return 0  # podman: no limit
    if size < MEMORY_MIN:
        raise CliError(f"memory limit {text!r} is below the minimum of 6m")
    return size


def parse_cpus(text: str) -> float:
    """--cpus: how many CPUs' worth of time, a decimal such as 0.5 or 2."""
    try:
        cpus = float(text)
    except ValueError:
        raise CliError(f"invalid --cpus {text!r}: give a number of CPUs such as 0.5 or 2") \
            from None
    if not cpus >= 0 or cpus == float("inf"):  # also refuses nan
        raise CliError(f"invalid --cpus {text!r}: it must be 0 (no limit) or more")
    return cpus


def parse_volume(spec: str, cwd: str | None = None) -> tuple[str, str, str]:
    """-v SRC:DST[:OPTIONS] → (source, destination, options) for the mounts option.

    A source starting with "/" is a host path, one starting with "." is
    relative to the current directory (as podman takes it); any other names a
    volume, which the daemon creates on first use.
    """
    parts = spec.split(":")
    if len(parts) < 2 or len(parts) > 3 or not parts[0] or not parts[1]:
        raise CliError(f"invalid volume {spec!r}: give HOST-PATH:CONTAINER-PATH[:OPTIONS]")
    source, destination = parts[0], parts[1]
    options = parts[2] if len(parts) == 3 else ""
    if source.startswith("."):
        source = os.path.normpath(os.path.join(cwd or os.getcwd(), source))
    if not source.startswith("/") and not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", source):
        raise CliError(f"invalid volume {spec!r}: {source!r} is neither an absolute host "
                       "path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
    if not destination.startswith("/"):
        raise CliError(f"invalid volume {spec!r}: the container path {destination!r} "
                       "must be absolute")
    opts = [o for o in options.split(",") if o]
    if "ro" in opts and "rw" in opts:
        raise CliError(f"invalid volume {spec!r}: both ro and rw")
    return source, destination, ",".join(opts)


_MOUNT_KEYS = {"source": "src", "src": "src", "destination": "dst", "dst": "dst",
               "target": "dst"}


def parse_mount(spec: str) -> tuple[str, str, str]:
    """--mount type=bind,source=/a,target=/b[,readonly|ro[=true]][,bind-propagation=…]
    → the same mount as -v /a:/b[:ro]; type=volume,source=NAME as -v NAME:/b; other
    types are refused naming the flag."""
    fields: dict[str, str] = {}
    options: list[str] = []
    kind = "bind"
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if key == "type":
            if value not in ("bind", "volume"):
                raise CliError(f"--mount type={value}: pyctrd makes bind and volume mounts "
                               "only (type=bind, type=volume)")
            kind = value
        elif key in _MOUNT_KEYS:
            fields[_MOUNT_KEYS[key]] = value
        elif key in ("readonly", "ro"):
            if not sep or value in ("true", "1"):
                options.append("ro")
        elif key in ("bind-propagation", "relabel", "bind-nonrecursive"):
            continue  # pyctrd's bind mounts are private and recursive, as podman's default
        else:
            raise CliError(f"--mount {spec!r}: pyctr does not know the option {key!r}")
    source = "NAME" if kind == "volume" else "HOST-PATH"
    if not fields.get("src") or "dst" not in fields:
        raise CliError(f"--mount {spec!r}: give type={kind},source={source},target=PATH")
    if kind == "volume" and fields["src"].startswith(("/", ".")):
        raise CliError(f"--mount {spec!r}: a volume's source is its name, not a path")
    return parse_volume(f"{fields['src']}:{fields['dst']}" + (":ro" if options else ""))


def parse_env(items: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """-e K=V as given; -e K takes K from our own environment (skipped if unset)."""
    environ = os.environ if environ is None else environ
    env = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key:
            raise CliError(f"invalid environment variable {item!r}: give KEY=VALUE or KEY")
        if sep:
            env.append(item)
        elif key in environ:
            env.append(f"{key}={environ[key]}")
    return env


def parse_labels(items: list[str]) -> dict[str, str]:
    """-l K=V (or K alone, an empty value)."""
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise CliError(f"invalid label {item!r}: give KEY=VALUE")
        labels[key] = value
    return labels


def parse_entrypoint(text: str) -> list[str]:
    """--entrypoint: a command, or a JSON array of its argv as podman accepts too."""
    if text.lstrip().startswith("["):
        try:
            argv = json.loads(text)
        except json.JSONDecodeError as err:
            raise CliError(f"invalid --entrypoint {text!r}: {err}") from None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise CliError(f"invalid --entrypoint {text!r}: a JSON array of strings")
        return argv
    return [text] if text else []


def parse_stop_signal(text: str) -> int | str:
    """A number goes as u, a name as s; the daemon checks that it is a signal."""
    return int(text) if text.isdigit() else text


def container_command(args: argparse.Namespace, image_entrypoint: list[str]) -> list[str]:
    """The argv to create with, with podman's meaning of image and flags.

    A command replaces the image's Cmd but follows its Entrypoint; --entrypoint
    replaces the Entrypoint and drops the Cmd. [] lets the daemon use the image's.
    """
    if args.entrypoint is not None:
        argv = parse_entrypoint(args.entrypoint) + list(args.command)
        if not argv:
            raise CliError("--entrypoint '' leaves no command: give one after the image")
        return argv
    if args.command:
        return [*image_entrypoint, *args.command]
    return []


# create/run flags (argparse's dest) → the CreateContainer option each sets. A unit
# test holds every option named here to the schema, pyctrd.ops.options.OPTIONS.
FLAG_OPTIONS: dict[str, str] = {
    "name": "name", "env": "env", "workdir": "workdir", "user": "user",
    "hostname": "hostname", "label": "labels", "volume": "mounts", "memory": "memory_limit",
    "cpus": "cpu_quota", "pids_limit": "pids_limit", "network": "network",
    "read_only": "read_only", "stop_signal": "stop_signal", "stop_timeout": "stop_timeout",
    "tty": "terminal", "interactive": "stdin",
    "security-opt no-new-privileges": "no_new_privileges",
    "privileged": "privileged", "cap_add": "cap_add", "cap_drop": "cap_drop",
    "security-opt seccomp": "seccomp", "ulimit": "ulimits",
    # options the daemon's schema may not have yet: sent only if it has them
    "publish": "ports", "dns": "dns", "dns_search": "dns_search", "add_host": "add_hosts",
    "network_alias": "network_aliases", "restart": "restart_policy",
    "restart retries": "restart_retries", "rm": "auto_remove", "health_cmd": "health_cmd",
    "health_interval": "health_interval", "health_timeout": "health_timeout",
    "health_retries": "health_retries", "health_start_period": "health_start_period",
}
# dest → the flag a user typed, for messages
FLAG_NAMES: dict[str, str] = {
    "publish": "--publish", "dns": "--dns", "dns_search": "--dns-search",
    "add_host": "--add-host", "network_alias": "--network-alias", "restart": "--restart",
    "restart retries": "--restart", "rm": "--rm", "health_cmd": "--health-cmd",
    "health_interval": "--health-interval", "health_timeout": "--health-timeout",
    "health_retries": "--health-retries", "health_start_period": "--health-start-period",
}
UNLIMITED = (1 << 64) - 1  # RLIM_INFINITY; podman's -1 and "unlimited"


def parse_capabilities(items: list[str]) -> list[str]:
    """--cap-add/--cap-drop, repeatable and comma-separated as podman takes them."""
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


def _limit(text: str, spec: str) -> int:
    if text in ("-1", "unlimited"):
        return UNLIMITED
    if not text.isdigit():
        raise CliError(f"invalid --ulimit {spec!r}: limits are numbers, -1 or unlimited")
    return int(text)


def parse_ulimit(spec: str) -> tuple[str, int, int]:
    """--ulimit NAME=SOFT[:HARD] (podman's form); HARD defaults to SOFT."""
    name, sep, limits = spec.partition("=")
    if not sep or not name or not limits:
        raise CliError(f"invalid --ulimit {spec!r}: give NAME=SOFT[:HARD], e.g. "
                       "nofile=1024:2048")
    soft_text, _, hard_text = limits.partition(":")
    soft = _limit(soft_text, spec)
    return name, soft, _limit(hard_text, spec) if hard_text else soft


def flag_values(args: argparse.Namespace,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """dest → the option's plain value, for each create/run flag that was given."""
    given: dict[str, Any] = {}
    if args.name:
        given["name"] = args.name
    if args.env:
        given["env"] = parse_env(args.env, environ)
    if args.workdir:
        given["workdir"] = args.workdir
    if args.user:
        given["user"] = args.user
    if args.hostname:
        given["hostname"] = args.hostname
    if args.label:
        given["label"] = parse_labels(args.label)
    mounts = [parse_volume(v) for v in args.volume] + \
        [parse_mount(m) for m in getattr(args, "mount", None) or []]
    if mounts:
        given["volume"] = mounts
    driver = getattr(args, "log_driver", None)
    if driver not in (None, "k8s-file"):
        raise CliError(f"--log-driver {driver}: pyctrd keeps every container's log as "
                       "k8s-file")
    if args.memory:
        given["memory"] = parse_memory(args.memory)
    if args.cpus:
        given["cpus"] = parse_cpus(args.cpus)
    if args.pids_limit is not None:
        given["pids_limit"] = max(args.pids_limit, 0)  # podman: -1 (or 0) is no limit
    if args.network:
        given["network"] = args.network
    if args.read_only:
        given["read_only"] = True
    if args.stop_signal:
        given["stop_signal"] = parse_stop_signal(args.stop_signal)
    if args.stop_timeout is not None:
        if args.stop_timeout < 0:
            raise CliError("--stop-timeout must be 0 or more seconds")
        given["stop_timeout"] = args.stop_timeout
    if args.tty:
        given["tty"] = True
    if args.interactive:
        given["interactive"] = True
    if args.privileged:
        given["privileged"] = True
    if args.cap_add:
        given["cap_add"] = parse_capabilities(args.cap_add)
    if args.cap_drop:
        given["cap_drop"] = parse_capabilities(args.cap_drop)
    if args.ulimit:
        given["ulimit"] = [parse_ulimit(u) for u in args.ulimit]
    given.update(parse_security_opts(args.security_opt))
    given.update(_network_values(args))
    return given


_PORT = re.compile(r"^(?:(?:\[?([0-9a-fA-F.:]*)\]?):)?(?:(\d*):)?(\d+)(?:/(tcp|udp))?$")


def parse_publish(spec: str) -> list[tuple[str, int, int, str]]:
    """-p [IP:][HOSTPORT:]PORT[/PROTO] (ranges as START-END on both sides)."""
    proto = "tcp"
    body = spec
    if "/" in spec:
        body, proto = spec.rsplit("/", 1)
        if proto not in ("tcp", "udp"):
            raise CliError(f'invalid --publish "{spec}": the protocol is tcp or udp')
    parts = body.rsplit(":", 2)
    host_ip, host, container = "", "", parts[-1]
    if len(parts) == 2:
        host = parts[0]
    elif len(parts) == 3:
        host_ip, host = parts[0].strip("[]"), parts[1]

    def span(text: str) -> tuple[int, int]:
        first, _, last = text.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise CliError(f'invalid --publish "{spec}": ports are numbers (or ranges)')
        lo, hi = int(first), int(last or first)
        if not 0 < lo <= hi <= 65535:
            raise CliError(f'invalid --publish "{spec}": ports are 1 to 65535')
        return lo, hi

    c_lo, c_hi = span(container)
    if host:
        h_lo, h_hi = span(host)
        if h_hi - h_lo != c_hi - c_lo:
            raise CliError(f'invalid --publish "{spec}": the ranges differ in length')
    else:
        h_lo = 0
    return [(host_ip, h_lo + i if h_lo else 0, c_lo + i, proto)
            for i in range(c_hi - c_lo + 1)]


def parse_restart(text: str) -> tuple[str, int | None]:
    policy, _, retries = text.partition(":")
    if policy not in ("no", "on-failure", "always", "unless-stopped"):
        raise CliError(f'invalid --restart "{text}": give no, on-failure[:N], always or '
                       "unless-stopped")
    if retries and (policy != "on-failure" or not retries.isdigit()):
        raise CliError(f'invalid --restart "{text}": only on-failure takes a number of retries')
    return policy, int(retries) if retries else None


def parse_seconds(flag: str, text: str) -> int:
    """A Go duration (30s, 1m) or plain seconds → whole seconds."""
    if text.isdigit():
        return int(text)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?", text)
    if not text or not match:
        raise CliError(f'invalid argument "{text}" for "{flag}" flag: give a duration '
                       "such as 30s or 1m")
    hours, minutes, secs = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def _network_values(args: argparse.Namespace) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if getattr(args, "network", None):
        if args.network.startswith("container:"):
            raise CliError("--network container:ID: pyctrd cannot share another container's "
                           "network namespace")
        if args.network != "pasta" and args.network.startswith(
                ("ns:", "slirp4netns", "pasta", "private")):  # pasta: a user's own daemon
            raise CliError(f"--network {args.network}: pyctrd offers bridge, none, host, "
                           "pasta or a network's name")
    if getattr(args, "publish", None):
        given["publish"] = [p for spec in args.publish for p in parse_publish(spec)]
    for dest in ("dns", "dns_search", "network_alias"):
        if getattr(args, dest, None):
            given[dest] = list(getattr(args, dest))
    if getattr(args, "add_host", None):
        hosts = []
        for item in args.add_host:
            name, sep, address = item.partition(":")
            if not sep or not name or not address:
                raise CliError(f'invalid --add-host "{item}": give NAME:IP')
            hosts.append((name, address))
        given["add_host"] = hosts
    if getattr(args, "restart", None):
        policy, retries = parse_restart(args.restart)
        given["restart"] = policy
        if retries is not None:
            given["restart retries"] = retries
    if getattr(args, "rm", False) and getattr(args, "detach", False):
        given["rm"] = True
    if getattr(args, "no_healthcheck", False):
        if getattr(args, "health_cmd", None):
            raise CliError("--no-healthcheck and --health-cmd contradict each other")
    elif getattr(args, "health_cmd", None):
        text = args.health_cmd
        given["health_cmd"] = parse_entrypoint(text) if text.lstrip().startswith("[") \
            else ["/bin/sh", "-c", text]
    for dest in ("health_interval", "health_timeout", "health_start_period"):
        value = getattr(args, dest, None)
        if value:
            flag = "--" + dest.replace("_", "-")
            given[dest] = 0 if value == "disable" else parse_seconds(flag, value)
    if getattr(args, "health_retries", None) is not None:
        given["health_retries"] = args.health_retries
    return given


def parse_security_opts(items: list[str]) -> dict[str, Any]:
    """--security-opt as podman takes it: "no-new-privileges" or "...=true|false",
    "seccomp=unconfined" (or "seccomp=default"; pyctr takes no profile files).
    Keyed as in FLAG_OPTIONS ("security-opt <name>")."""
    given: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if name == "seccomp":
            if value not in ("unconfined", "default"):
                raise CliError(f"unsupported --security-opt {item!r}: pyctr knows "
                               "seccomp=unconfined and seccomp=default (no profile files)")
            given["security-opt seccomp"] = value
            continue
        if name != "no-new-privileges":
            raise CliError(f"unsupported --security-opt {item!r}: pyctr knows "
                           "no-new-privileges and seccomp=unconfined")
        if sep and value not in ("true", "false"):
            raise CliError(f"invalid --security-opt {item!r}: give true or false")
        given[f"security-opt {name}"] = value != "false"
    return given


def typed_options(args: argparse.Namespace,
                  environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, Any]]:
    """The CreateContainer options for the create/run flags in ``args``, as
    (D-Bus signature, plain value) pairs.

    Each value is typed by the option schema and checked as the daemon will
    check it (ranges, NaN), so a bad value fails here with the daemon's words.
    """
    values = flag_values(args, environ)
    for dest in values:
        if dest in FLAG_NAMES and FLAG_OPTIONS[dest] not in OPTIONS:  # not in the schema yet
            raise CliError(f"{FLAG_NAMES.get(dest, '--' + dest)}: this pyctrd has no "
                           f"`{FLAG_OPTIONS[dest]}` option yet")
    typed = {FLAG_OPTIONS[dest]: encode_dbus(FLAG_OPTIONS[dest], value)
             for dest, value in values.items()}
    try:
        decode_dbus(typed)
    except InvalidArgument as err:
        raise CliError(str(err)) from None
    return typed


def create_options(args: argparse.Namespace,
                   environ: Mapping[str, str] | None = None) -> dict[str, Variant]:
    """The CreateContainer options (a{sv}) for the create/run flags in ``args``."""
    from dbus_fast import Variant
    return {key: Variant(signature, value)
            for key, (signature, value) in typed_options(args, environ).items()}


def varlink_create_options(args: argparse.Namespace,
                           environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The same options as Varlink Create's CreateOptions struct (JSON); None when
    one has no exact Varlink form (then D-Bus carries them)."""
    struct: dict[str, Any] = {}
    for key, (signature, value) in typed_options(args, environ).items():
        option = OPTIONS[key]
        if signature != option.signatures[0]:
            if option.signatures[0] != "s" or signature != "u":
                return None
            value = str(value)  # a signal number: the daemon reads "15" as 15
        elif signature.startswith("a("):  # a list of structs: objects with named fields
            names = STRUCT_FIELDS[signature]
            value = [dict(zip(names, item, strict=True)) for item in value]
        struct[key] = value
    return struct
