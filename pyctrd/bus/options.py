"""CreateContainer's a{sv} options: check each variant's D-Bus type, unwrap it.

Meaning (names, ranges, paths) is the core's to check; the wire types are ours.
"""

from typing import Any

from dbus_fast import Variant

from pyctrd.errors import InvalidArgument

OPTION_SIGNATURES: dict[str, tuple[str, ...]] = {
    "name": ("s",),
    "labels": ("a{ss}",),
    "annotations": ("a{ss}",),
    "env": ("as",),
    "workdir": ("s",),
    "user": ("s",),
    "hostname": ("s",),
    "terminal": ("b",),
    "stdin": ("b",),
    "stop_signal": ("s", "u"),
    "stop_timeout": ("u",),
    "read_only": ("b",),
    "mounts": ("a(sss)",),
    "memory_limit": ("t",),
    "cpu_quota": ("d",),
    "pids_limit": ("t",),
    "network": ("s",),
}


def unwrap_options(options: dict[str, Variant]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for key, variant in options.items():
        expected = OPTION_SIGNATURES.get(key)
        if expected is None:
            known = ", ".join(sorted(OPTION_SIGNATURES))
            raise InvalidArgument(f"unknown option {key!r}; known options: {known}")
        if variant.signature not in expected:
            raise InvalidArgument(
                f"option {key!r} must have type {' or '.join(expected)}, "
                f"not {variant.signature}"
            )
        value = variant.value
        if variant.signature == "a(sss)":
            value = [tuple(item) for item in value]
        plain[key] = value
    return plain
