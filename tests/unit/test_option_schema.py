"""CreateContainer's option schema (pyctrd.ops.options): both wires, every option.

Each option goes round: plain value → encode_dbus → a real dbus_fast Variant →
decode_dbus, and → the Varlink struct → decode_varlink, and comes back equal.
Wrong types, unknown keys, out-of-range integers and non-finite numbers are
InvalidArgument on either wire.
"""

import math
from dataclasses import fields
from typing import Any

import pytest
from dbus_fast import Variant

from pyctrd.errors import InvalidArgument
from pyctrd.ops.options import (
    INT64_MAX,
    MEMORY_MIN,
    OPTIONS,
    PIDS_MAX,
    STRUCT_FIELDS,
    UINT32_MAX,
    UINT64_MAX,
    decode_dbus,
    documentation,
    encode_dbus,
)
from pyctrd.ops.optionstructs import (
    STRUCTS,
    CreateOptions,
    HostEntry,
    Mount,
    PortMapping,
    Ulimit,
    decode_varlink,
)

# signature → (plain value, its Varlink form, what the decoders give back)
SAMPLES: dict[str, tuple[Any, Any, Any]] = {
    "s": ("web", "web", "web"),
    "b": (True, True, True),
    "u": (15, 15, 15),
    "t": (1 << 40, 1 << 40, 1 << 40),
    "d": (0.5, 0.5, 0.5),
    "as": (["A=1", "B="], ["A=1", "B="], ["A=1", "B="]),
    "a{ss}": ({"a": "b", "c": ""}, {"a": "b", "c": ""}, {"a": "b", "c": ""}),
    "a(sss)": ([("/src", "/dst", "ro,bind"), ("/a", "/b", "")],
               [Mount("/src", "/dst", "ro,bind"), Mount("/a", "/b", "")],
               [("/src", "/dst", "ro,bind"), ("/a", "/b", "")]),
    "a(stt)": ([("nofile", 1024, 2048), ("core", 0, UINT64_MAX)],
               [Ulimit("nofile", 1024, 2048), Ulimit("core", 0, UINT64_MAX)],
               [("nofile", 1024, 2048), ("core", 0, UINT64_MAX)]),
    "a(sqqs)": ([("127.0.0.1", 8080, 80, "tcp"), ("", 0, 53, "udp")],
                [PortMapping("127.0.0.1", 8080, 80, "tcp"), PortMapping("", 0, 53, "udp")],
                [("127.0.0.1", 8080, 80, "tcp"), ("", 0, 53, "udp")]),
    "a(ss)": ([("db", "10.1.2.3")], [HostEntry("db", "10.1.2.3")], [("db", "10.1.2.3")]),
}
# signature → values of the wrong type for it
WRONG: dict[str, list[Any]] = {
    "s": [1, None, b"web", ["web"]],
    "b": ["true", 1, None],
    "u": ["15", 1.5, True, None],
    "t": ["15", 1.5, False, None],
    "d": ["0.5", True, None],
    "as": ["A=1", [1], ["A=1", None], {"A": "1"}],
    "a{ss}": [["a", "b"], {"a": 1}, {1: "a"}, "a=b"],
    "a(sss)": [["/src:/dst"], [("/src", "/dst")], [("/src", "/dst", 1)], "/src"],
    "a(stt)": [["nofile=1"], [("nofile", 1)], [("nofile", "1", 2)], [("nofile", 1, True)],
               [(1, 1, 2)], "nofile"],
    "a(sqqs)": [["8080:80"], [("", 8080, 80)], [("", "8080", 80, "tcp")],
                [("", 70000, 80, "tcp")], [("", 1, 80, 6)], "80"],
    "a(ss)": [["db=10.1.2.3"], [("db",)], [("db", 1)], "db"],
}
# On Varlink, asyncvarlink has already turned each JSON mount into a Mount (or refused
# the call), so a wrong mount is a Mount with a field of the wrong type.
WRONG_VARLINK = {**WRONG, "a(sss)": [[Mount("/src", "/dst", 1)]],  # type: ignore[arg-type]
                 "a(stt)": [[Ulimit("nofile", "1", 2)]],  # type: ignore[arg-type]
                 "a(sqqs)": [[PortMapping("", "1", 80, "tcp")]],  # type: ignore[arg-type]
                 "a(ss)": [[HostEntry("db", 1)]]}  # type: ignore[arg-type]
# a D-Bus type that no option accepts alongside its own
OTHER_SIGNATURE = {"s": "b", "b": "s", "u": "s", "t": "u", "d": "t", "as": "s",
                   "a{ss}": "as", "a(sss)": "as", "a(stt)": "a(sss)", "a(sqqs)": "a(stt)",
                   "a(ss)": "a(sss)"}

EACH = sorted((name, sig) for name, option in OPTIONS.items() for sig in option.signatures)
# Options whose values are held to a narrower range than their type's samples.
OPTION_SAMPLES: dict[str, tuple[Any, Any, Any]] = {
    "pids_limit": (4096, 4096, 4096),
    "seccomp": ("unconfined", "unconfined", "unconfined"),
    "restart_policy": ("always", "always", "always"),
}


def sample(name: str, signature: str) -> tuple[Any, Any, Any]:
    return OPTION_SAMPLES.get(name) or SAMPLES[signature]


def test_every_signature_in_the_schema_has_samples() -> None:
    used = {sig for option in OPTIONS.values() for sig in option.signatures}
    assert used <= set(SAMPLES) and used <= set(WRONG), used - set(SAMPLES) - set(WRONG)


@pytest.mark.parametrize(("name", "signature"), EACH)
def test_dbus_round_trip(name: str, signature: str) -> None:
    plain, _varlink, back = sample(name, signature)
    wire_signature, wire = encode_dbus(name, plain)
    assert wire_signature == signature
    variant = Variant(wire_signature, wire)  # dbus_fast checks the value fits the type
    assert decode_dbus({name: (variant.signature, variant.value)}) == {name: back}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_varlink_round_trip(name: str) -> None:
    _plain, varlink, back = sample(name, OPTIONS[name].signatures[0])
    assert decode_varlink(CreateOptions(**{name: varlink})) == {name: back}


def test_all_options_at_once_on_both_wires() -> None:
    firsts = {name: sample(name, option.signatures[0]) for name, option in OPTIONS.items()}
    expected = {name: back for name, (_p, _v, back) in firsts.items()}
    dbus = {name: encode_dbus(name, plain) for name, (plain, _v, _b) in firsts.items()}
    assert decode_dbus(dbus) == expected
    assert decode_varlink(CreateOptions(**{n: v for n, (_p, v, _b) in firsts.items()})) == \
        expected


def test_absent_options_decode_to_nothing() -> None:
    assert decode_dbus({}) == {}
    assert decode_varlink(None) == {}
    assert decode_varlink(CreateOptions()) == {}


def test_the_varlink_struct_has_every_option_and_no_other() -> None:
    assert [f.name for f in fields(CreateOptions)] == list(OPTIONS)
    assert len(documentation()) == len(OPTIONS)


def test_stop_signal_goes_as_a_name_or_a_number() -> None:
    assert encode_dbus("stop_signal", "SIGTERM") == ("s", "SIGTERM")
    assert encode_dbus("stop_signal", 15) == ("u", 15)
    assert decode_dbus({"stop_signal": ("u", 15)}) == {"stop_signal": 15}
    assert decode_dbus({"stop_signal": ("s", "TERM")}) == {"stop_signal": "TERM"}


@pytest.mark.parametrize(("name", "signature"), EACH)
def test_wrong_type_under_the_right_signature(name: str, signature: str) -> None:
    for wrong in WRONG[signature]:
        with pytest.raises(InvalidArgument, match=repr(name)):
            decode_dbus({name: (signature, wrong)})


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_signature_the_option_does_not_take(name: str) -> None:
    option = OPTIONS[name]
    other = OTHER_SIGNATURE[option.signatures[0]]
    assert other not in option.signatures
    plain = SAMPLES[other][0]
    with pytest.raises(InvalidArgument, match="must have type"):
        decode_dbus({name: (other, plain)})


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_wrong_type_on_varlink(name: str) -> None:
    for wrong in WRONG_VARLINK[OPTIONS[name].signatures[0]]:
        if wrong is None:
            continue  # null is "absent" on Varlink
        with pytest.raises(InvalidArgument, match=repr(name)):
            decode_varlink(CreateOptions(**{name: wrong}))


def test_unknown_key() -> None:
    with pytest.raises(InvalidArgument, match="unknown option 'devices'"):
        decode_dbus({"devices": ("as", ["/dev/fuse"])})
    with pytest.raises(InvalidArgument, match="unknown option 'devices'"):
        encode_dbus("devices", ["/dev/fuse"])
    with pytest.raises(TypeError):  # asyncvarlink refuses the field before we see it
        CreateOptions(devices=["/dev/fuse"])  # type: ignore[call-arg]


def _of_signature(signature: str) -> list[str]:
    return [name for name, option in OPTIONS.items() if signature in option.signatures]


@pytest.mark.parametrize(("signature", "value"), [
    ("u", UINT32_MAX + 1), ("u", -1), ("t", -1), ("t", UINT64_MAX + 1),
])
def test_integer_out_of_range(signature: str, value: int) -> None:
    names = _of_signature(signature)
    assert names
    for name in names:
        with pytest.raises(InvalidArgument, match="out of range"):
            decode_dbus({name: (signature, value)})
        if OPTIONS[name].signatures[0] == signature:
            with pytest.raises(InvalidArgument, match="out of range"):
                decode_varlink(CreateOptions(**{name: value}))


def test_integer_range_ends_are_accepted() -> None:
    assert decode_dbus({"stop_timeout": ("u", UINT32_MAX), "memory_limit": ("t", INT64_MAX),
                        "pids_limit": ("t", 0)}) == \
        {"stop_timeout": UINT32_MAX, "memory_limit": INT64_MAX, "pids_limit": 0}


@pytest.mark.parametrize(("name", "value"), [
    ("memory_limit", UINT64_MAX), ("memory_limit", INT64_MAX + 1),
    ("memory_limit", MEMORY_MIN - 1), ("memory_limit", 1), ("pids_limit", PIDS_MAX + 1),
    ("pids_limit", UINT64_MAX)])
def test_integer_beyond_what_the_kernel_takes(name: str, value: int) -> None:
    with pytest.raises(InvalidArgument, match=f"{name} {value} is out of range"):
        decode_dbus({name: ("t", value)})
    with pytest.raises(InvalidArgument, match=f"{name} {value} is out of range"):
        decode_varlink(CreateOptions(**{name: value}))


@pytest.mark.parametrize("value", ["", "Default", "runtime/default", "/etc/seccomp.json"])
def test_seccomp_is_one_of_two_values(value: str) -> None:
    with pytest.raises(InvalidArgument, match="seccomp"):
        decode_dbus({"seccomp": ("s", value)})


def test_ulimit_soft_above_hard_and_limits_out_of_range() -> None:
    with pytest.raises(InvalidArgument, match="soft limit 3 is above the hard limit 2"):
        decode_dbus({"ulimits": ("a(stt)", [["nofile", 3, 2]])})
    with pytest.raises(InvalidArgument, match="out of range"):
        decode_varlink(CreateOptions(ulimits=[Ulimit("nofile", 0, UINT64_MAX + 1)]))
    with pytest.raises(InvalidArgument, match="out of range"):
        decode_varlink(CreateOptions(ulimits=[Ulimit("nofile", -1, 1)]))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.5])
def test_cpu_quota_must_be_finite_and_not_negative(value: float) -> None:
    with pytest.raises(InvalidArgument, match="cpu_quota"):
        decode_dbus({"cpu_quota": ("d", value)})
    with pytest.raises(InvalidArgument, match="cpu_quota"):
        decode_varlink(CreateOptions(cpu_quota=value))


def test_cpu_quota_takes_an_integer_as_a_number() -> None:
    assert decode_dbus({"cpu_quota": ("d", 2)}) == {"cpu_quota": 2.0}
    assert decode_varlink(CreateOptions(cpu_quota=0)) == {"cpu_quota": 0.0}


def test_varlink_mounts_are_mount_structs() -> None:
    options = CreateOptions(name="web", mounts=[Mount("/srv", "/data", "ro")],
                            terminal=True)
    assert decode_varlink(options) == {"name": "web", "mounts": [("/srv", "/data", "ro")],
                                       "terminal": True}
    assert decode_varlink(CreateOptions(mounts=[])) == {"mounts": []}


def test_struct_fields_are_the_varlink_structs_fields() -> None:
    """pyctr encodes struct options by STRUCT_FIELDS' names; the daemon decodes them
    with the dataclasses asyncvarlink sees: the same names, in D-Bus order."""
    assert STRUCT_FIELDS.keys() == STRUCTS.keys()
    for signature, struct in STRUCTS.items():
        assert tuple(f.name for f in fields(struct)) == STRUCT_FIELDS[signature]


def test_pyctr_does_not_import_dataclasses() -> None:
    """~7 ms of every pyctr start: the option table must not need it."""
    import subprocess
    import sys
    code = ("import sys, pyctrd.cli.main, pyctrd.cli.commands.runvarlink, "
            "pyctrd.cli.commands.ps, pyctrd.cli.options; "
            "print('dataclasses' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
