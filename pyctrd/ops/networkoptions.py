"""CreateNetwork's options, declared once for both wires (as ops.options is for
CreateContainer): D-Bus a{sv} decoding, the Varlink struct, pyctr's encoding."""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pyctrd.errors import InvalidArgument

# name → (D-Bus signature, meaning)
NETWORK_OPTIONS: dict[str, tuple[str, str]] = {
    "subnet": ("s", "CIDR (default: the next free /24 in 10.86.0.0/16)"),
    "gateway": ("s", "gateway address (default: the subnet's first)"),
    "internal": ("b", "no route out"),
    "dns": ("b", "containers resolve each other by name and alias (default true)"),
    "labels": ("a{ss}", "labels"),
}


@dataclass
class NetworkOptions:
    """CreateNetwork's options; an absent (null) field takes its default."""

    subnet: str | None = None
    gateway: str | None = None
    internal: bool | None = None
    dns: bool | None = None
    labels: dict[str, str] | None = None


def _check(key: str, signature: str, value: Any) -> Any:
    ok = {"s": isinstance(value, str), "b": isinstance(value, bool),
          "a{ss}": isinstance(value, dict) and all(
              isinstance(k, str) and isinstance(v, str) for k, v in value.items())}[signature]
    if not ok:
        raise InvalidArgument(f"network option {key!r} must have type {signature}")
    return dict(value) if signature == "a{ss}" else value


def decode_dbus(options: Mapping[str, tuple[str, Any]]) -> dict[str, Any]:
    plain = {}
    for key, (signature, value) in options.items():
        if key not in NETWORK_OPTIONS:
            raise InvalidArgument(f"unknown network option {key!r}; known options: "
                                  f"{', '.join(NETWORK_OPTIONS)}")
        expected = NETWORK_OPTIONS[key][0]
        if signature != expected:
            raise InvalidArgument(f"network option {key!r} must have type {expected}, "
                                  f"not {signature}")
        plain[key] = _check(key, expected, value)
    return plain


def decode_varlink(options: NetworkOptions | None) -> dict[str, Any]:
    if options is None:
        return {}
    return {f.name: _check(f.name, NETWORK_OPTIONS[f.name][0], getattr(options, f.name))
            for f in fields(options) if getattr(options, f.name) is not None}


def encode_dbus(key: str, value: Any) -> tuple[str, Any]:
    return NETWORK_OPTIONS[key][0], value
