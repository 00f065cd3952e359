"""CreateContainer's options, declared once: name, wire types, meaning.

From this one table come the D-Bus decoding (the a{sv} types), the Varlink
struct (asyncvarlink derives the IDL from it), the checks every value gets
whichever wire it came by (types, ranges, NaN), pyctr's encoding of its
flags, and the option list in the D-Bus documentation (a test holds
dbus/org.pyctrd1.Manager.xml to it). Adding an option is one row here plus
its effect in the core (pyctrd.core.config and the OCI spec).

The core receives a plain dict of checked values, keyed by option name;
what needs the image or the host (user names, paths) it checks itself.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from pyctrd.errors import InvalidArgument

UINT32_MAX = (1 << 32) - 1
UINT64_MAX = (1 << 64) - 1
INT64_MAX = (1 << 63) - 1
MEMORY_MIN = 6 << 20  # podman's floor: less cannot start a container
PIDS_MAX = 1 << 22  # the kernel's PID_MAX_LIMIT; pids.max takes no more
SECCOMP_VALUES = ("default", "unconfined")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


# The struct options' fields, D-Bus order: a(...) items on D-Bus, objects on Varlink
# (their Python classes, for asyncvarlink: ops/optionstructs.py, which the daemon
# alone imports; pyctr needs only the names, and not dataclasses' import time).
STRUCT_FIELDS: dict[str, tuple[str, ...]] = {
    "a(sss)": ("source", "destination", "options"),  # Mount; options e.g. "ro,bind"
    "a(stt)": ("name", "soft", "hard"),  # Ulimit; name as podman's --ulimit
    "a(sqqs)": ("host_ip", "host_port", "container_port", "protocol"),  # PortMapping
    "a(ss)": ("name", "address"),  # HostEntry: one extra /etc/hosts line
}


class Option(NamedTuple):
    name: str
    signatures: tuple[str, ...]  # accepted D-Bus types; the first is the Varlink type
    doc: str
    check: Callable[[Any], None] | None = None  # further checks of a well-typed value


def _finite_non_negative(what: str) -> Callable[[Any], None]:
    def check(value: float) -> None:
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"{what} {value} must be a finite number, 0 or more")
    return check


def _memory(value: int) -> None:
    # runc reads the limit as an int64; the kernel refuses less than a few pages
    # and podman less than 6 MiB.
    if value and not MEMORY_MIN <= value <= INT64_MAX:
        raise InvalidArgument(f"memory_limit {value} is out of range: 0 (no limit) or "
                              f"{MEMORY_MIN}..{INT64_MAX} bytes")


def _pids(value: int) -> None:
    if value > PIDS_MAX:
        raise InvalidArgument(f"pids_limit {value} is out of range: 0 (no limit) or "
                              f"1..{PIDS_MAX}")


def _seccomp(value: str) -> None:
    if value not in SECCOMP_VALUES:
        raise InvalidArgument(f"seccomp {value!r}: use 'default' or 'unconfined'")


def _ulimits(value: list[tuple[str, int, int]]) -> None:
    # Names and the host's ceilings are checked at create (pyctrd.oci.rlimits).
    for name, soft, hard in value:
        if soft > hard:
            raise InvalidArgument(f"ulimit {name!r}: soft limit {soft} is above the hard "
                                  f"limit {hard}")


def _restart_policy(value: str) -> None:
    if value not in RESTART_POLICIES:
        raise InvalidArgument(f"restart_policy {value!r}: use one of "
                              f"{', '.join(RESTART_POLICIES)}")


def _caps(value: list[str]) -> None:
    if any(not name.strip() for name in value):
        raise InvalidArgument("capability names must not be empty")


OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("name", ("s",), "unique name (default: a generated adjective_noun)"),
    Option("labels", ("a{ss}",), "labels, shown as the Labels property"),
    Option("annotations", ("a{ss}",), "OCI annotations"),
    Option("env", ("as",), "environment entries, \"K=V\""),
    Option("workdir", ("s",), "working directory (absolute)"),
    Option("user", ("s",), "\"uid[:gid]\" or a name from the image's /etc/passwd"),
    Option("hostname", ("s",), "host name (default: the ID's first 12 characters)"),
    Option("terminal", ("b",), "give the process a terminal"),
    Option("stdin", ("b",), "keep stdin open for Attach"),
    Option("stop_signal", ("s", "u"), "stop signal, \"SIGTERM\" or 15"),
    Option("stop_timeout", ("u",), "seconds from the stop signal to SIGKILL (default 10)"),
    Option("read_only", ("b",), "mount the root filesystem read-only"),
    Option("mounts", ("a(sss)",), "bind mounts (source, destination, options such as "
           "\"ro,bind\")"),
    Option("memory_limit", ("t",), f"memory limit in bytes (0: none; else {MEMORY_MIN}.."
           "2^63-1)", _memory),
    Option("cpu_quota", ("d",), "CPUs' worth of time, e.g. 0.5 (0: no limit)",
           _finite_non_negative("cpu_quota")),
    Option("pids_limit", ("t",), f"most processes at once (0: no limit; at most {PIDS_MAX})",
           _pids),
    Option("network", ("s",), "\"bridge\" (the default: the default network pyctrd), "
           "\"none\", \"host\", or a network's name or ID"),
    Option("ports", ("a(sqqs)",), "published ports (host_ip or \"\", host_port, "
           "container_port, \"tcp\" or \"udp\"); host_port 0 picks a free one"),
    Option("dns", ("as",), "nameservers for the container's /etc/resolv.conf"),
    Option("dns_search", ("as",), "search domains for its /etc/resolv.conf"),
    Option("add_hosts", ("a(ss)",), "extra /etc/hosts lines (name, address)"),
    Option("network_aliases", ("as",), "extra names under which other containers on the "
           "same network resolve this one"),
    Option("no_new_privileges", ("b",), "set the no_new_privs bit: setuid and file "
           "capabilities gain the process nothing"),
    Option("privileged", ("b",), "all capabilities pyctrd has, the host's devices, no "
           "seccomp filter, nothing masked: as podman's privileged flag"),
    Option("cap_add", ("as",), "capabilities to add (\"NET_ADMIN\" or \"CAP_NET_ADMIN\"; "
           "\"ALL\")", _caps),
    Option("cap_drop", ("as",), "capabilities to drop (as cap_add; \"ALL\" keeps only "
           "those added)", _caps),
    Option("seccomp", ("s",), "\"default\" (containers-common's profile; the default "
           "unless privileged) or \"unconfined\"", _seccomp),
    Option("ulimits", ("a(stt)",), "resource limits (name such as \"nofile\", soft, hard); "
           "nofile and nproc default to podman's 1048576 or pyctrd's own hard limit if "
           "lower", _ulimits),
    Option("restart_policy", ("s",), "\"no\" (the default), \"on-failure\", \"always\" or "
           "\"unless-stopped\": restart after an exit (not after a caller's Stop or Kill)",
           _restart_policy),
    Option("restart_retries", ("u",), "on-failure: give up after this many restarts (0: no "
           "limit)"),
    Option("auto_remove", ("b",), "remove the container (and its object) once it has exited"),
    Option("health_cmd", ("as",), "health check run inside the container; exit 0 = healthy"),
    Option("health_interval", ("u",), "seconds between health checks (default 30; 0: only "
           "on request)"),
    Option("health_timeout", ("u",), "seconds before a health check counts as failed and is "
           "killed (default 30)"),
    Option("health_retries", ("u",), "consecutive failed checks before unhealthy (default 3)"),
    Option("health_start_period", ("u",), "seconds after start during which failed checks "
           "do not count"),
)}

# What an integer of each D-Bus type may hold; a Varlink int has no such bound.
_INT_RANGES = {"u": UINT32_MAX, "t": UINT64_MAX}


def _check_typed(option: Option, signature: str, value: Any) -> Any:
    """``value`` as the plain Python value of ``signature``, or InvalidArgument."""
    name = option.name
    if signature in ("u", "t"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"option {name!r} must be an integer")
        if not 0 <= value <= _INT_RANGES[signature]:
            raise InvalidArgument(f"option {name!r}: {value} is out of range "
                                  f"0..{_INT_RANGES[signature]}")
        return value
    if signature == "d":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgument(f"option {name!r} must be a number")
        return float(value)
    if signature == "b":
        if not isinstance(value, bool):
            raise InvalidArgument(f"option {name!r} must be a boolean")
        return value
    if signature == "s":
        if not isinstance(value, str):
            raise InvalidArgument(f"option {name!r} must be a string")
        return value
    if signature == "as":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"option {name!r} must be a list of strings")
        return list(value)
    if signature == "a{ss}":
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise InvalidArgument(f"option {name!r} must map strings to strings")
        return dict(value)
    if signature == "a(sss)":
        if not isinstance(value, list) or not all(
                isinstance(item, list | tuple) and len(item) == 3
                and all(isinstance(part, str) for part in item) for item in value):
            raise InvalidArgument(f"option {name!r} must be a list of "
                                  "(source, destination, options)")
        return [tuple(item) for item in value]
    if signature == "a(stt)":
        if not isinstance(value, list) or not all(
                isinstance(item, list | tuple) and len(item) == 3
                and isinstance(item[0], str)
                and all(isinstance(n, int) and not isinstance(n, bool) for n in item[1:])
                for item in value):
            raise InvalidArgument(f"option {name!r} must be a list of (name, soft, hard)")
        if any(not 0 <= n <= UINT64_MAX for item in value for n in item[1:]):
            raise InvalidArgument(f"option {name!r}: a limit is out of range 0..{UINT64_MAX}")
        return [tuple(item) for item in value]
    if signature == "a(sqqs)":
        if not isinstance(value, list) or not all(
                isinstance(item, list | tuple) and len(item) == 4
                and isinstance(item[0], str) and isinstance(item[3], str)
                and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 65535
                        for n in item[1:3])
                for item in value):
            raise InvalidArgument(f"option {name!r} must be a list of (host_ip, host_port, "
                                  "container_port, protocol), ports 0..65535")
        return [tuple(item) for item in value]
    if signature == "a(ss)":
        if not isinstance(value, list) or not all(
                isinstance(item, list | tuple) and len(item) == 2
                and all(isinstance(part, str) for part in item) for item in value):
            raise InvalidArgument(f"option {name!r} must be a list of (name, address)")
        return [tuple(item) for item in value]
    raise AssertionError(f"no check for signature {signature}")


def checked_value(option: Option, signature: str, value: Any) -> Any:
    value = _check_typed(option, signature, value)
    if option.check is not None:
        option.check(value)
    return value


def _option(key: str) -> Option:
    option = OPTIONS.get(key)
    if option is None:
        raise InvalidArgument(f"unknown option {key!r}; known options: "
                              f"{', '.join(sorted(OPTIONS))}")
    return option


def decode_dbus(options: Mapping[str, tuple[str, Any]]) -> dict[str, Any]:
    """a{sv} as (signature, value) pairs → checked plain values."""
    plain: dict[str, Any] = {}
    for key, (signature, value) in options.items():
        option = _option(key)
        if signature not in option.signatures:
            raise InvalidArgument(f"option {key!r} must have type "
                                  f"{' or '.join(option.signatures)}, not {signature}")
        plain[key] = checked_value(option, signature, value)
    return plain


def encode_dbus(key: str, value: Any) -> tuple[str, Any]:
    """A plain value → (signature, value) for a{sv}: the client's side of decode_dbus."""
    option = _option(key)
    for signature in option.signatures:
        if signature == "u" and isinstance(value, int) and not isinstance(value, bool):
            return signature, value
        if signature == "s" and isinstance(value, str):
            return signature, value
    signature = option.signatures[0]
    if signature in STRUCT_FIELDS:
        value = [list(item) for item in value]
    return signature, value


def documentation() -> list[str]:
    """One line per option, `name` signature: meaning; for the interface docs."""
    return [f"`{o.name}` {' or '.join(o.signatures)}: {o.doc}" for o in OPTIONS.values()]
