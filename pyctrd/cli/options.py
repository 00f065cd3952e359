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
from typing import Any

from dbus_fast import Variant

from pyctrd.cli.errors import CliError
from pyctrd.errors import InvalidArgument
from pyctrd.ops.options import decode_dbus, encode_dbus

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

    Only host paths: pyctrd has no named volumes. A source starting with "."
    is relative to the current directory, as podman takes it.
    """
    parts = spec.split(":")
    if len(parts) < 2 or len(parts) > 3 or not parts[0] or not parts[1]:
        raise CliError(f"invalid volume {spec!r}: give HOST-PATH:CONTAINER-PATH[:OPTIONS]")
    source, destination = parts[0], parts[1]
    options = parts[2] if len(parts) == 3 else ""
    if source.startswith("."):
        source = os.path.normpath(os.path.join(cwd or os.getcwd(), source))
    if not source.startswith("/"):
        raise CliError(f"invalid volume {spec!r}: {source!r} is not an absolute host path "
                       "(pyctrd has no named volumes)")
    if not destination.startswith("/"):
        raise CliError(f"invalid volume {spec!r}: the container path {destination!r} "
                       "must be absolute")
    opts = [o for o in options.split(",") if o]
    if "ro" in opts and "rw" in opts:
        raise CliError(f"invalid volume {spec!r}: both ro and rw")
    return source, destination, ",".join(opts)


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
    if args.volume:
        given["volume"] = [parse_volume(v) for v in args.volume]
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


def create_options(args: argparse.Namespace,
                   environ: Mapping[str, str] | None = None) -> dict[str, Variant]:
    """The CreateContainer options (a{sv}) for the create/run flags in ``args``.

    Each value is typed by the option schema and checked as the daemon will
    check it (ranges, NaN), so a bad value fails here with the daemon's words.
    """
    typed = {FLAG_OPTIONS[dest]: encode_dbus(FLAG_OPTIONS[dest], value)
             for dest, value in flag_values(args, environ).items()}
    try:
        decode_dbus(typed)
    except InvalidArgument as err:
        raise CliError(str(err)) from None
    return {key: Variant(signature, value) for key, (signature, value) in typed.items()}
