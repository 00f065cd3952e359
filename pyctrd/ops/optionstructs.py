"""CreateContainer's options as Varlink types: the CreateOptions struct and its items.

asyncvarlink derives the Varlink IDL from Python types, so the option table
(ops/options.py) is turned into dataclasses here: one per struct option, and
CreateOptions with every option, each absent (null) unless given. The daemon
imports this; pyctr does not (dataclasses alone cost it ~7 ms of start-up).
"""

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any

from pyctrd.ops.options import OPTIONS, STRUCT_FIELDS, checked_value


@dataclass
class Mount:
    """One bind mount: a(sss) on D-Bus."""

    source: str
    destination: str
    options: str  # comma-separated, e.g. "ro,bind"


@dataclass
class Ulimit:
    """One resource limit: a(stt) on D-Bus."""

    name: str  # as podman's --ulimit: "nofile", "nproc", "core", ...
    soft: int
    hard: int


@dataclass
class PortMapping:
    """One published port: a(sqqs) on D-Bus."""

    host_ip: str  # "" for every address
    host_port: int  # 0: pick a free one at Start
    container_port: int
    protocol: str  # "tcp" or "udp"


@dataclass
class HostEntry:
    """One extra /etc/hosts line: a(ss) on D-Bus."""

    name: str
    address: str


STRUCTS: dict[str, type] = {"a(sss)": Mount, "a(stt)": Ulimit, "a(sqqs)": PortMapping,
                            "a(ss)": HostEntry}
# D-Bus signature → Varlink/Python type
_TYPES: dict[str, Any] = {
    "s": str, "b": bool, "u": int, "t": int, "d": float,
    "as": list[str], "a{ss}": dict[str, str], "a(sss)": list[Mount],
    "a(stt)": list[Ulimit], "a(sqqs)": list[PortMapping], "a(ss)": list[HostEntry],
}


def varlink_type(signature: str) -> Any:
    return _TYPES[signature]


def _varlink_field(name: str, signature: str) -> tuple[str, Any, Any]:
    return (name, varlink_type(signature) | None, field(default=None))


# The Varlink struct: every option, each absent (null) unless given.
CreateOptions: type = make_dataclass(
    "CreateOptions", [_varlink_field(o.name, o.signatures[0]) for o in OPTIONS.values()])
CreateOptions.__doc__ = ("The D-Bus CreateContainer option keys; an absent field takes "
                         "its default.")


def decode_varlink(options: Any) -> dict[str, Any]:
    """A CreateOptions (or None) → checked plain values."""
    if options is None:
        return {}
    plain: dict[str, Any] = {}
    for f in fields(options):
        value = getattr(options, f.name)
        if value is None:
            continue
        option = OPTIONS[f.name]
        signature = option.signatures[0]
        if signature in STRUCTS:
            value = [tuple(getattr(item, part) for part in STRUCT_FIELDS[signature])
                     for item in value]
        plain[f.name] = checked_value(option, signature, value)
    return plain
