"""CreateContainer's a{sv} as the bus decodes it through the ops option schema."""

import math
import re
from pathlib import Path

import pytest
from dbus_fast import Variant

from pyctrd.bus.manager import create_options
from pyctrd.errors import InvalidArgument
from pyctrd.oci import rlimits
from pyctrd.ops.operations import privileged_requests
from pyctrd.ops.options import OPTIONS

GOOD = {
    "name": Variant("s", "web"),
    "labels": Variant("a{ss}", {"a": "b"}),
    "annotations": Variant("a{ss}", {"c": "d"}),
    "env": Variant("as", ["A=1", "B=2"]),
    "workdir": Variant("s", "/srv"),
    "user": Variant("s", "1000:1000"),
    "hostname": Variant("s", "box"),
    "terminal": Variant("b", True),
    "stdin": Variant("b", False),
    "stop_signal": Variant("s", "SIGINT"),
    "stop_timeout": Variant("u", 5),
    "read_only": Variant("b", True),
    "mounts": Variant("a(sss)", [["/src", "/dst", "ro"], ["/a", "/b", ""]]),
    "memory_limit": Variant("t", 1 << 30),
    "cpu_quota": Variant("d", 0.5),
    "pids_limit": Variant("t", 64),
    "network": Variant("s", "host"),
    "no_new_privileges": Variant("b", True),
    "privileged": Variant("b", True),
    "cap_add": Variant("as", ["NET_ADMIN"]),
    "cap_drop": Variant("as", ["CAP_CHOWN"]),
    "seccomp": Variant("s", "unconfined"),
    "ulimits": Variant("a(stt)", [["nofile", 1024, 2048]]),
    "restart_policy": Variant("s", "on-failure"),
    "restart_retries": Variant("u", 3),
    "auto_remove": Variant("b", False),
    "health_cmd": Variant("as", ["true"]),
    "health_interval": Variant("u", 5),
    "health_timeout": Variant("u", 2),
    "health_retries": Variant("u", 2),
    "health_start_period": Variant("u", 1),
    "ports": Variant("a(sqqs)", [["127.0.0.1", 8080, 80, "tcp"]]),
    "dns": Variant("as", ["10.0.0.1"]),
    "dns_search": Variant("as", ["example.com"]),
    "add_hosts": Variant("a(ss)", [["db", "10.1.2.3"]]),
    "network_aliases": Variant("as", ["web"]),
}


API_MD = Path(__file__).resolve().parents[3] / "shared" / "API.md"


def api_md_option_types() -> dict[str, tuple[str, ...]]:
    """CreateContainer's options and their D-Bus types as shared/API.md states them:
    the prose list of the first round and the table of the second."""
    if not API_MD.exists():
        pytest.skip(f"{API_MD} is not here (CI and sessions have shared/ beside the repo)")
    text = API_MD.read_text()
    prose = text[text.index("- `CreateContainer("):text.index("- `GetContainer(")]
    found = {name: tuple(types.split(" or ")) for name, types in re.findall(
        r"`(\w+)` ((?:[a-z{}()]+)(?: or [a-z{}()]+)?)", prose)}
    table = text[text.index("## New CreateContainer options"):]
    table = table[:table.index("\n## ")]
    for names, types in re.findall(r"^\| (`[^|]+`) \| ([^ |]+) \|", table, re.M):
        for name in re.findall(r"`(\w+)`", names):
            found[name] = (types,)
    return found


def test_schema_types_are_the_contracts():
    contract = api_md_option_types()
    assert {name: o.signatures for name, o in OPTIONS.items()} == {
        name: contract[name] for name in OPTIONS}, "pyctrd/ops/options.py differs from API.md"


def test_good_options_cover_the_schema():
    assert set(GOOD) == set(OPTIONS)


def test_all_good_options_decode():
    plain = create_options(GOOD)
    assert plain == {
        "name": "web", "labels": {"a": "b"}, "annotations": {"c": "d"},
        "env": ["A=1", "B=2"], "workdir": "/srv", "user": "1000:1000", "hostname": "box",
        "terminal": True, "stdin": False, "stop_signal": "SIGINT", "stop_timeout": 5,
        "read_only": True, "mounts": [("/src", "/dst", "ro"), ("/a", "/b", "")],
        "memory_limit": 1 << 30, "cpu_quota": 0.5, "pids_limit": 64, "network": "host",
        "no_new_privileges": True, "privileged": True, "cap_add": ["NET_ADMIN"],
        "cap_drop": ["CAP_CHOWN"], "seccomp": "unconfined", "ulimits": [("nofile", 1024, 2048)],
        "restart_policy": "on-failure", "restart_retries": 3, "auto_remove": False,
        "health_cmd": ["true"], "health_interval": 5, "health_timeout": 2, "health_retries": 2,
        "health_start_period": 1,
        "ports": [("127.0.0.1", 8080, 80, "tcp")], "dns": ["10.0.0.1"],
        "dns_search": ["example.com"], "add_hosts": [("db", "10.1.2.3")],
        "network_aliases": ["web"],
    }
    assert all(type(m) is tuple for m in plain["mounts"])
    assert not any(isinstance(v, Variant) for v in plain.values())


def test_empty():
    assert create_options({}) == {}


def test_stop_signal_as_number():
    assert create_options({"stop_signal": Variant("u", 9)}) == {"stop_signal": 9}


def test_unknown_key():
    with pytest.raises(InvalidArgument) as info:
        create_options({"name": Variant("s", "x"), "colour": Variant("s", "red")})
    assert "'colour'" in str(info.value)
    assert "name" in str(info.value)  # lists known options


@pytest.mark.parametrize(("key", "variant", "expected"), [
    ("name", Variant("i", 1), "s"),
    ("terminal", Variant("s", "true"), "b"),
    ("stop_timeout", Variant("i", 5), "u"),
    ("stop_timeout", Variant("t", 5), "u"),
    ("memory_limit", Variant("u", 5), "t"),
    ("cpu_quota", Variant("i", 1), "d"),
    ("env", Variant("s", "A=1"), "as"),
    ("labels", Variant("a{sv}", {"a": Variant("s", "b")}), "a{ss}"),
    ("mounts", Variant("a(ss)", [["/a", "/b"]]), "a(sss)"),
    ("mounts", Variant("as", ["/a:/b"]), "a(sss)"),
    ("stop_signal", Variant("i", 9), "s or u"),
    ("stop_signal", Variant("b", True), "s or u"),
])
def test_wrong_signature(key, variant, expected):
    with pytest.raises(InvalidArgument) as info:
        create_options({key: variant})
    message = str(info.value)
    assert repr(key) in message
    assert expected in message
    assert variant.signature in message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.5])
def test_cpu_quota_must_be_finite_and_not_negative(value):
    with pytest.raises(InvalidArgument) as info:
        create_options({"cpu_quota": Variant("d", value)})
    assert "cpu_quota" in str(info.value)


def test_values_beyond_the_wire_type_are_out_of_range():
    # A Variant checks nothing when built; a value beyond its type never decodes.
    for key, signature, value in (("stop_timeout", "u", 1 << 32),
                                  ("memory_limit", "t", 1 << 64),
                                  ("pids_limit", "t", -1)):
        with pytest.raises(InvalidArgument) as info:
            create_options({key: Variant(signature, value, verify=False)})
        assert "out of range" in str(info.value), key


# what needs org.pyctrd1.container.create-privileged (API.md)


@pytest.mark.parametrize(("options", "named"), [
    ({"privileged": True}, "privileged"),
    ({"cap_add": ["NET_ADMIN"]}, "added capabilities"),
    ({"cap_add": ["ALL"]}, "added capabilities"),
    ({"seccomp": "unconfined"}, "no seccomp filter"),
    ({"ulimits": [("core", 1, (1 << 64) - 1)]}, "raised ulimits (core)"),
    ({"ulimits": [("nofile", 1, (1 << 64) - 1)]}, "raised ulimits (nofile)"),
    ({"mounts": [("/", "/host", "")]}, "host mounts"),
    ({"network": "host"}, "the host's network"),
])
def test_privileged_requests_name_each_escape(options, named):
    assert named in privileged_requests(options)


@pytest.mark.parametrize("options", [
    {}, {"privileged": False}, {"cap_add": []}, {"cap_drop": ["ALL"]},
    {"seccomp": "default"}, {"ulimits": [("nofile", 64, 128), ("core", 0, 0)]},
    {"no_new_privileges": True}, {"network": "none"},
    {"mounts": [("data", "/data", "")]},  # a named volume reaches no host path
])
def test_what_confines_more_needs_only_create(options):
    assert privileged_requests(options) == []


def test_default_ulimits_are_not_a_raise():
    defaults = rlimits.defaults()
    assert privileged_requests({"ulimits": [(name, soft, hard) for name, (soft, hard)
                                            in defaults.items()]}) == []
