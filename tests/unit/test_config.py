"""pyctrd.core.config: options and the image resolved into a ContainerConfig."""

import json
import os
import re

import pytest

from pyctrd.core import namegen as names
from pyctrd.core.config import (
    COMMAND_MAX,
    DEFAULT_STOP_TIMEOUT,
    ID_MAX,
    LABELS_MAX,
    NAME_RE,
    ContainerConfig,
    build_config,
)
from pyctrd.core.image import Image
from pyctrd.errors import InvalidArgument
from pyctrd.oci import capabilities, rlimits
from pyctrd.oci.capabilities import CAPABILITIES, DEFAULT_CAPS
from pyctrd.oci.spec import SpecInput, build_spec
from pyctrd.ops.options import OPTIONS, decode_dbus, encode_dbus
from pyctrd.storage.etcfiles import resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1001:1002:App user:/home/app:/bin/sh
numeric:x:1000:2000::/home/numeric:/bin/sh
broken:x
"""
GROUP = """root:x:0:
wheel:x:10:app
staff:x:50:
"""


def make_image(**overrides) -> Image:
    fields = {
        "id": "1" * 64,
        "reference": "localhost/test:latest",
        "digest": "sha256:" + "2" * 64,
        "size": 1234,
        "created": 1_700_000_000_000_000,
        "layers": ["3" * 64],
        "entrypoint": ["/entry"],
        "cmd": ["--flag", "arg"],
        "env": ["PATH=/usr/bin:/bin", "LANG=C", "HOME=/root"],
        "workdir": "/srv",
        "user": "",
        "stop_signal": "",
        "labels": {"from": "image", "shared": "image"},
    }
    fields.update(overrides)
    return Image(**fields)


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text(PASSWD)
    (r / "etc/group").write_text(GROUP)
    return r


def build(root, command=(), taken=None, image=None, **options):
    return build_config(image or make_image(), root, list(command), options, taken or set())


# command


def test_defaults(root):
    cfg = build(root, name="web")
    assert cfg.name == "web"
    assert cfg.command == ["/entry", "--flag", "arg"]
    assert re.fullmatch(r"[0-9a-f]{64}", cfg.id)
    assert cfg.hostname == cfg.id[:12]
    assert cfg.image_id == "1" * 64
    assert cfg.image_ref == "localhost/test:latest"
    assert cfg.workdir == "/srv"
    assert (cfg.user, cfg.uid, cfg.gid) == ("0:0", 0, 0)
    assert cfg.stop_signal == 15
    assert cfg.stop_timeout == DEFAULT_STOP_TIMEOUT
    assert cfg.network == "bridge"  # the default network (issue 15)
    assert cfg.mounts == []
    assert cfg.terminal is False and cfg.stdin is False and cfg.read_only is False
    assert cfg.labels == {"from": "image", "shared": "image"}
    assert cfg.created > 1_600_000_000_000_000  # µs since the epoch


def test_ids_differ(root):
    assert build(root, name="a").id != build(root, name="b").id


def test_command_replaces_cmd_not_entrypoint_default(root):
    cfg = build(root, ["/bin/echo", "hi"], name="web")
    assert cfg.command == ["/bin/echo", "hi"]


@pytest.mark.parametrize(("entrypoint", "cmd", "expected"), [
    (["/entry"], [], ["/entry"]),
    ([], ["/bin/sh"], ["/bin/sh"]),
    (["/a", "b"], ["c"], ["/a", "b", "c"]),
])
def test_command_from_image(root, entrypoint, cmd, expected):
    cfg = build(root, image=make_image(entrypoint=entrypoint, cmd=cmd), name="web")
    assert cfg.command == expected


def test_no_command_anywhere(root):
    with pytest.raises(InvalidArgument) as info:
        build(root, image=make_image(entrypoint=[], cmd=[]), name="web")
    assert "localhost/test:latest" in str(info.value)
    assert "command" in str(info.value)


# env


def test_env_merge(root):
    cfg = build(root, name="web", env=["LANG=C.UTF-8", "NEW=1", "EMPTY=", "EQ=a=b"])
    assert cfg.env == ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/root", "NEW=1",
                       "EMPTY=", "EQ=a=b"]
    keys = [e.split("=", 1)[0] for e in cfg.env]
    assert len(keys) == len(set(keys))


def test_env_later_option_wins(root):
    cfg = build(root, name="web", env=["X=1", "X=2"])
    assert [e for e in cfg.env if e.startswith("X=")] == ["X=2"]


@pytest.mark.parametrize("entry", ["NOEQUALS", "=value", ""])
def test_env_entry_invalid(root, entry):
    with pytest.raises(InvalidArgument) as info:
        build(root, name="web", env=["OK=1", entry])
    assert repr(entry) in str(info.value)


def test_image_env_entry_invalid(root):
    with pytest.raises(InvalidArgument):
        build(root, image=make_image(env=["BROKEN"]), name="web")


# user


def test_user_by_name(root):
    cfg = build(root, name="web", user="app")
    assert (cfg.user, cfg.uid, cfg.gid) == ("app", 1001, 1002)


def test_user_from_image(root):
    cfg = build(root, image=make_image(user="app"), name="web")
    assert (cfg.uid, cfg.gid) == (1001, 1002)


def test_user_option_overrides_image(root):
    cfg = build(root, image=make_image(user="app"), name="web", user="0")
    assert (cfg.uid, cfg.gid) == (0, 0)


def test_uid_in_passwd_takes_its_gid(root):
    cfg = build(root, name="web", user="1000")
    assert (cfg.uid, cfg.gid) == (1000, 2000)


def test_uid_not_in_passwd_gid_equals_uid(root):
    cfg = build(root, name="web", user="4242")
    assert (cfg.uid, cfg.gid) == (4242, 4242)


def test_uid_without_passwd_file(tmp_path):
    assert resolve_user("1000", tmp_path) == (1000, 1000)
    assert resolve_user("1000:7", tmp_path) == (1000, 7)


@pytest.mark.parametrize(("user", "expected"), [
    ("app:wheel", (1001, 10)),
    ("app:50", (1001, 50)),
    ("1000:staff", (1000, 50)),
    ("1000:3", (1000, 3)),
    ("root", (0, 0)),
    ("daemon", (1, 1)),
    ("0:0", (0, 0)),
])
def test_user_and_group(root, user, expected):
    assert resolve_user(user, root) == expected


@pytest.mark.parametrize("user", ["nobody", "app:nogroup", "broken", "APP", ":wheel"])
def test_unknown_user_or_group(root, user):
    with pytest.raises(InvalidArgument):
        build(root, name="web", user=user)


def test_passwd_symlink_is_not_followed(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:4000:4000::/:/bin/sh\n")
    (outside / "group").write_text("evilgroup:x:4001:\n")
    (root / "etc/passwd").unlink()
    (root / "etc/group").unlink()
    (root / "etc/passwd").symlink_to(outside / "passwd")
    (root / "etc/group").symlink_to(outside / "group")
    with pytest.raises(InvalidArgument):
        resolve_user("evil", root)
    with pytest.raises(InvalidArgument):
        resolve_user("0:evilgroup", root)
    # a uid still works; its gid is not taken from the file outside
    assert resolve_user("4000", root) == (4000, 4000)


def test_relative_passwd_symlink_is_not_followed(root, tmp_path):
    (tmp_path / "passwd").write_text("evil:x:4000:4000::/:/bin/sh\n")
    (root / "etc/passwd").unlink()
    (root / "etc/passwd").symlink_to("../../passwd")
    with pytest.raises(InvalidArgument):
        resolve_user("evil", root)


def test_etc_directory_symlink_is_not_followed(tmp_path):
    # The image's top layer is untrusted: an "etc" that is a symlink (say to the
    # host's /etc) must not be read through either.
    outside = tmp_path / "outside-etc"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:4000:4000::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "etc").symlink_to(outside)
    with pytest.raises(InvalidArgument):
        resolve_user("evil", root)


def test_passwd_that_is_a_directory_is_ignored(tmp_path):
    (tmp_path / "etc/passwd").mkdir(parents=True)
    with pytest.raises(InvalidArgument):
        resolve_user("app", tmp_path)


def test_garbage_uid_in_image_passwd_is_invalid_argument(tmp_path):
    # /etc/passwd comes from an untrusted image: a non-numeric uid field must give
    # a caller's error, not a ValueError from int().
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("app:x:notanumber:1::/:/bin/sh\n")
    with pytest.raises(InvalidArgument):
        resolve_user("app", tmp_path)


def test_unicode_digit_user_is_invalid_argument(root):
    # "²".isdigit() is true but int("²") fails; the user string comes from D-Bus.
    with pytest.raises(InvalidArgument):
        resolve_user("\u00b2", root)
    with pytest.raises(InvalidArgument):
        resolve_user("0:\u00b2", root)


# options and names


@pytest.mark.parametrize("name", [
    "-leading-dash", "has space", "x" * 200, "x" * 129, "_under", ".dot", "a/b", "ü",
    "semi;colon", "new\nline",
])
def test_bad_names(root, name):
    with pytest.raises(InvalidArgument) as info:
        build(root, name=name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("name", ["a", "web-1", "Web_1.2", "0abc", "x" * 128])
def test_good_names(root, name):
    assert build(root, name=name).name == name


def test_generated_name(root):
    cfg = build(root)
    assert NAME_RE.match(cfg.name)
    assert re.fullmatch(r"[a-z]+_[a-z]+\d*", cfg.name)


def test_generated_names_avoid_taken(root):
    every_plain = {f"{a}_{n}" for a in names.ADJECTIVES for n in names.NOUNS}
    free = sorted(every_plain)[0]
    taken = every_plain - {free}
    for _ in range(20):
        cfg = build(root, taken=taken)
        assert cfg.name not in taken
        assert NAME_RE.match(cfg.name)


def test_generated_names_unique_when_all_plain_taken(root):
    taken = {f"{a}_{n}" for a in names.ADJECTIVES for n in names.NOUNS}
    seen = set(taken)
    for _ in range(5):
        name = build(root, taken=seen).name
        assert name not in seen
        seen.add(name)


def test_empty_name_generates(root):
    assert build(root, name="").name


# stop signal, network, workdir


@pytest.mark.parametrize("value", ["SIGKILL", "KILL", "kill", 9, "9"])
def test_stop_signal(root, value):
    assert build(root, name="web", stop_signal=value).stop_signal == 9


def test_stop_signal_from_image(root):
    assert build(root, image=make_image(stop_signal="SIGINT"), name="web").stop_signal == 2


def test_stop_signal_option_overrides_image(root):
    cfg = build(root, image=make_image(stop_signal="SIGINT"), name="web", stop_signal="HUP")
    assert cfg.stop_signal == 1


@pytest.mark.parametrize("value", ["SIGBOGUS", 0, 65])
def test_bad_stop_signal(root, value):
    with pytest.raises(InvalidArgument):
        build(root, name="web", stop_signal=value)


@pytest.mark.parametrize("network", ["none", "host", "bridge"])
def test_networks(root, network):
    assert build(root, name="web", network=network).network == network


@pytest.mark.parametrize("network", ["mynet", "HOST"])
def test_a_network_name_means_a_bridge(root, network):
    # the engine has looked the name up (NoSuchNetwork): core/networks.py
    assert build(root, name="web", network=network).network == "bridge"


def test_ports_need_a_bridge(root):
    with pytest.raises(InvalidArgument, match="bridge"):
        build(root, name="web", network="none", ports=[("", 80, 80, "tcp")])


def test_workdir(root):
    assert build(root, name="web", workdir="/tmp").workdir == "/tmp"
    assert build(root, image=make_image(workdir=""), name="web").workdir == "/"


@pytest.mark.parametrize("workdir", ["relative", "./x", "srv/"])
def test_relative_workdir(root, workdir):
    with pytest.raises(InvalidArgument) as info:
        build(root, name="web", workdir=workdir)
    assert repr(workdir) in str(info.value)


def test_relative_workdir_from_image(root):
    with pytest.raises(InvalidArgument):
        build(root, image=make_image(workdir="app"), name="web")


# mounts


def test_mounts(root, tmp_path):
    cfg = build(root, name="web", mounts=[(str(tmp_path), "/data", "ro,bind"),
                                          (str(tmp_path), "/data2", "")])
    assert cfg.mounts == [(str(tmp_path), "/data", "ro,bind"), (str(tmp_path), "/data2", "")]


@pytest.mark.parametrize("mount", [
    ("/no/such/path/at/all", "/data", "ro"),
    ("relative/source", "/data", "ro"),
    ("{tmp}", "data", "ro"),
    ("{tmp}", "", "ro"),
    ("{tmp}", "/data", "ro,exec-everything"),
    ("{tmp}", "/data", "suid"),
])
def test_bad_mounts(root, tmp_path, mount):
    source, destination, options = mount
    mount = (source.format(tmp=tmp_path), destination, options)
    with pytest.raises(InvalidArgument):
        build(root, name="web", mounts=[mount])


# resources and the rest


def test_resources_and_flags(root):
    cfg = build(root, name="web", memory_limit=64 << 20, cpu_quota=0.5, pids_limit=100,
                terminal=True, stdin=True, read_only=True, stop_timeout=3,
                hostname="box", labels={"shared": "option", "x": "y"},
                annotations={"a": "b"})
    assert cfg.memory_limit == 64 << 20
    assert cfg.cpu_quota == 0.5
    assert cfg.pids_limit == 100
    assert cfg.terminal and cfg.stdin and cfg.read_only
    assert cfg.stop_timeout == 3
    assert cfg.hostname == "box"
    assert cfg.labels == {"from": "image", "shared": "option", "x": "y"}
    assert cfg.annotations == {"a": "b"}


@pytest.mark.parametrize("cpus", [-0.5, -1.0, 1e9])
def test_bad_cpu_quota(root, cpus):
    with pytest.raises(InvalidArgument):
        build(root, name="web", cpu_quota=cpus)


def test_record_round_trip(root, tmp_path):
    cfg = build(root, name="web", mounts=[(str(tmp_path), "/data", "ro")],
                labels={"a": "b"}, env=["X=1"])
    record = cfg.to_record()
    assert ContainerConfig.from_record(record) == cfg
    # through JSON, as the store keeps it: lists come back, mounts become tuples again
    decoded = json.loads(json.dumps(record))
    assert isinstance(decoded["mounts"][0], list)
    again = ContainerConfig.from_record(decoded)
    assert again == cfg
    assert again.mounts == [(str(tmp_path), "/data", "ro")]
    assert isinstance(again.mounts[0], tuple)
    # from_record does not modify its argument
    assert isinstance(decoded["mounts"][0], list)


# issue 13: every option value checked at create; an accepted one builds a spec


def test_record_round_trip_with_security_options(root):
    cfg = build(root, name="web", cap_add=["NET_ADMIN"], ulimits=[("nofile", 100, 200)],
                seccomp="unconfined")
    again = ContainerConfig.from_record(json.loads(json.dumps(cfg.to_record())))
    assert again == cfg
    assert ("nofile", 100, 200) in again.ulimits


def test_records_without_the_new_fields_load(root):
    record = build(root, name="web").to_record()
    for key in ("privileged", "capabilities", "seccomp", "ulimits"):
        del record[key]
    cfg = ContainerConfig.from_record(record)
    assert cfg.capabilities is None and cfg.ulimits is None and cfg.seccomp == "default"


def test_security_defaults(root):
    cfg = build(root, name="web")
    assert cfg.capabilities == sorted(DEFAULT_CAPS, key=CAPABILITIES.index)
    assert cfg.seccomp == "default" and not cfg.privileged
    limits = {name: (soft, hard) for name, soft, hard in cfg.ulimits}
    assert set(limits) == {"nofile", "nproc"}
    for name, (soft, hard) in limits.items():
        assert soft == hard == min(1_048_576, rlimits.current(name)[1])


def test_privileged_has_the_bounding_set_and_no_filter(root):
    cfg = build(root, name="web", privileged=True)
    assert cfg.capabilities == list(capabilities.bounding_set())
    assert cfg.seccomp == "unconfined"
    assert build(root, privileged=True, seccomp="default").seccomp == "default"


@pytest.mark.parametrize(("add", "drop", "expected"), [
    (["NET_ADMIN"], [], {*DEFAULT_CAPS, "CAP_NET_ADMIN"}),
    (["cap_net_admin", "sys_time"], ["CHOWN"],
     {*DEFAULT_CAPS, "CAP_NET_ADMIN", "CAP_SYS_TIME"} - {"CAP_CHOWN"}),
    ([], ["ALL"], set()),
    (["KILL"], ["all"], {"CAP_KILL"}),
])
def test_cap_add_and_drop(root, add, drop, expected):
    assert set(build(root, cap_add=add, cap_drop=drop).capabilities) == expected


def test_cap_add_all_is_the_bounding_set(root):
    assert build(root, cap_add=["ALL"]).capabilities == list(capabilities.bounding_set())


@pytest.mark.parametrize(("add", "drop", "message"), [
    (["NOSUCH"], [], "unknown capability"),
    (["CAP_"], [], "unknown capability"),
    ([], ["CAP_NET_ADMINX"], "unknown capability"),
    (["ALL"], ["ALL"], "together"),
    (["NET_ADMIN"], ["net_admin"], "both added and dropped"),
])
def test_bad_capabilities(root, add, drop, message):
    with pytest.raises(InvalidArgument, match=message):
        build(root, cap_add=add, cap_drop=drop)


def test_a_capability_the_daemon_lacks_is_refused(root, monkeypatch):
    monkeypatch.setattr(capabilities, "bounding_set", lambda: tuple(DEFAULT_CAPS))
    with pytest.raises(InvalidArgument, match="CAP_SYS_ADMIN is not in pyctrd's own"):
        build(root, cap_add=["SYS_ADMIN"])


@pytest.mark.parametrize(("ulimits", "message"), [
    ([("nosuch", 1, 1)], "unknown ulimit"),
    ([("NOFILE", 1, 1)], "unknown ulimit"),
    ([("nofile", 2, 1)], "soft limit 2 is above"),
    ([("nofile", 64, 64), ("nofile", 64, 64)], "given twice"),
    ([("nofile", 0, 0)], "below 64"),
    ([("as", 1 << 20, 1 << 20)], "below"),
])
def test_bad_ulimits(root, ulimits, message):
    with pytest.raises(InvalidArgument, match=message):
        build(root, ulimits=ulimits)


def test_nofile_is_held_to_the_kernels_nr_open(root, monkeypatch):
    monkeypatch.setattr(rlimits, "can_raise", lambda: True)
    monkeypatch.setattr(rlimits, "nr_open", lambda: 4096)
    assert rlimits.defaults()["nofile"] == (4096, 4096)
    with pytest.raises(InvalidArgument, match="nr_open"):
        build(root, ulimits=[("nofile", 64, 4097)])
    assert build(root, ulimits=[("core", 0, (1 << 64) - 1)])


def test_ulimit_above_the_daemons_hard_limit_is_refused(root, monkeypatch):
    monkeypatch.setattr(rlimits, "can_raise", lambda: False)
    hard = rlimits.current("nofile")[1]
    assert build(root, ulimits=[("nofile", hard, hard)])
    with pytest.raises(InvalidArgument, match="cannot raise"):
        build(root, ulimits=[("nofile", 64, hard + 1)])


@pytest.mark.parametrize("hostname", ["a" * 64, "box-1.example.org", "A1", "x"])
def test_good_hostnames(root, hostname):
    assert build(root, hostname=hostname).hostname == hostname


@pytest.mark.parametrize("hostname", ["a" * 65, "a" * 1000, "-box", "box-", "a..b", "a_b",
                                      "box one", "bøx", "a\0b", ".box", "box."])
def test_bad_hostnames(root, hostname):
    with pytest.raises(InvalidArgument, match="hostname"):
        build(root, hostname=hostname)


@pytest.mark.parametrize("user", ["99999999999999999999", "4294967295", "0:4294967295",
                                  "2147483648", "0:2147483648"])
def test_uid_gid_beyond_the_kernels(root, user):
    with pytest.raises(InvalidArgument, match="uid and gid"):
        build(root, user=user)


def test_uid_gid_at_the_kernels_end(root):
    cfg = build(root, user="2147483647:2147483647")
    assert (cfg.uid, cfg.gid) == (ID_MAX, ID_MAX)


def test_size_limits(root):
    build(root, labels={"k": "v" * (LABELS_MAX - 4 - 64)})  # image labels take the rest
    with pytest.raises(InvalidArgument, match="labels and annotations"):
        build(root, labels={"k": "v" * (LABELS_MAX // 2)},
              annotations={"a": "v" * (LABELS_MAX // 2)})
    build(root, command=["x" * (COMMAND_MAX - 1)])
    with pytest.raises(InvalidArgument, match="command"):
        build(root, command=["x" * COMMAND_MAX])
    with pytest.raises(InvalidArgument, match="env"):
        build(root, env=[f"K{i}=" + "v" * 100_000 for i in range(11)])
    with pytest.raises(InvalidArgument, match="NUL"):
        build(root, command=["a\0b"])


@pytest.mark.parametrize("destination", [
    "/", "/proc", "/proc/sys", "/sys", "/sys/fs/cgroup", "/dev", "/dev/shm", "/data/",
    "/data/../proc", "/a/./b", "//data", "data", "", "/d\0x"])
def test_refused_mount_destinations(root, tmp_path, destination):
    with pytest.raises(InvalidArgument, match=r"mount destination|NUL"):
        build(root, mounts=[(str(tmp_path), destination, "")])


@pytest.mark.parametrize("destination", ["/data", "/processes", "/system", "/devices",
                                         "/a/b/c"])
def test_accepted_mount_destinations(root, tmp_path, destination):
    assert build(root, mounts=[(str(tmp_path), destination, "")]).mounts


@pytest.mark.parametrize("cpus", [0.001, 0.0099])
def test_cpu_quota_below_the_kernels_least(root, cpus):
    with pytest.raises(InvalidArgument, match="cpu_quota"):
        build(root, cpu_quota=cpus)


# Boundary values of every option: (value, accepted?). Each goes through the
# schema (as a D-Bus value) and build_config; what is accepted must build a spec
# that runc can take (checked further by tests/integration/test_options.py).
INT64_MAX = (1 << 63) - 1
BOUNDARIES: dict[str, list[tuple[object, bool]]] = {
    "name": [("a" * 128, True), ("a" * 129, False), ("-x", False)],
    "labels": [({"k": "v" * 60_000}, True), ({"k": "v" * (LABELS_MAX + 1)}, False)],
    "annotations": [({"k": "v" * 60_000}, True), ({"k": "v" * (LABELS_MAX + 1)}, False)],
    "env": [(["K=" + "v" * 100_000], True), (["K=" + "v" * 200_000], False),
            ([f"K{i}=" + "v" * 120_000 for i in range(9)], False), (["=v"], False)],
    "workdir": [("/" + "d" * 4000, True), ("/" + "d" * 5000, False), ("rel", False)],
    "user": [("2147483647", True), ("2147483648", False), ("4294967294", False),
             ("99999999999999999999", False), ("0:0", True)],
    "hostname": [("h" * 64, True), ("h" * 65, False), ("h" * 1000, False), ("a.b-c", True)],
    "terminal": [(True, True), (False, True)],
    "stdin": [(True, True)],
    "stop_signal": [("SIGRTMAX", True), (64, True), (65, False), (0, False), ("NOPE", False)],
    "stop_timeout": [(0, True), ((1 << 32) - 1, True), (1 << 32, False)],
    "read_only": [(True, True)],
    "mounts": [([("{tmp}", "/data", "ro")], True), ([("{tmp}", "/proc/x", "")], False),
               ([("{tmp}", "/", "")], False), ([("{tmp}", "/x/../y", "")], False)],
    "memory_limit": [(0, True), (6 << 20, True), ((6 << 20) - 1, False), (INT64_MAX, True),
                     (INT64_MAX + 1, False), ((1 << 64) - 1, False)],
    "cpu_quota": [(0.0, True), (0.01, True), (0.005, False), (float("nan"), False),
                  (float("inf"), False), (-1.0, False), ((os.cpu_count() or 1) * 1000, True),
                  ((os.cpu_count() or 1) * 1000 + 1, False)],
    "pids_limit": [(0, True), (1, True), (1 << 22, True), ((1 << 22) + 1, False),
                   ((1 << 64) - 1, False)],
    "network": [("none", True), ("host", True), ("bridge", True)],
    "ports": [([("", 0, 80, "tcp")], True), ([("127.0.0.1", 8080, 80, "udp")], True),
              ([("", 80, 0, "tcp")], False), ([("", 80, 80, "sctp")], False),
              ([("::1", 80, 80, "tcp")], False), ([("nope", 80, 80, "tcp")], False)],
    "dns": [(["10.0.0.1"], True), (["not-an-address"], False)],
    "dns_search": [(["example.com"], True), (["bad domain"], False)],
    "add_hosts": [([("db", "10.1.2.3")], True), ([("db", "nope")], False),
                  ([("a b", "10.1.2.3")], False)],
    "network_aliases": [(["web"], True), (["-x"], False)],
    "no_new_privileges": [(True, True)],
    "privileged": [(True, True), (False, True)],
    "cap_add": [(["ALL"], True), (["NET_ADMIN", "CAP_SYS_TIME"], True), (["NOPE"], False),
                ([""], False)],
    "cap_drop": [(["ALL"], True), (["chown"], True), (["NOPE"], False)],
    "seccomp": [("default", True), ("unconfined", True), ("", False), ("x", False)],
    "ulimits": [([("nofile", 64, 64)], True), ([("nofile", 63, 64)], False),
                ([("core", 0, (1 << 64) - 1)], True), ([("cpu", 0, 0)], False),
                ([("as", 4 << 30, 4 << 30)], True), ([("as", (4 << 30) - 1, 4 << 30)], False),
                ([("data", 1 << 30, 1 << 30)], True), ([("data", 256 << 20, 1 << 30)], False),
                ([("locks", 0, 0)], True),
                ([("nofile", 2, 1)], False), ([("nosuch", 1, 1)], False),
                ([("nofile", 64, (1 << 64) - 1)], False)],
    "restart_policy": [("no", True), ("on-failure", True), ("always", True),
                       ("unless-stopped", True), ("", False), ("sometimes", False)],
    "restart_retries": [(0, True), (1, False)],  # only with on-failure
    "auto_remove": [(True, True), (False, True)],
    "health_cmd": [(["true"], True), ([], True), ([""], False), (["a\0b"], False)],
    "health_interval": [(0, True), ((1 << 32) - 1, True), (1 << 32, False)],
    "health_timeout": [(1, True), (0, False), ((1 << 32) - 1, True)],
    "health_retries": [(1, True), (0, False)],
    "health_start_period": [(0, True), ((1 << 32) - 1, True)],
}


def test_boundaries_cover_every_option():
    assert set(BOUNDARIES) == set(OPTIONS)


@pytest.mark.parametrize(("name", "value", "accepted"), [
    (name, value, accepted) for name, cases in BOUNDARIES.items()
    for value, accepted in cases])
def test_boundary_values_are_refused_at_create_or_build_a_spec(
        root, tmp_path, name, value, accepted):
    if name == "mounts":
        value = [(m[0].format(tmp=tmp_path), m[1], m[2]) for m in value]  # type: ignore[attr-defined]
    try:
        plain = decode_dbus({name: encode_dbus(name, value)})
        cfg = build(root, **plain)
    except InvalidArgument:
        assert not accepted, f"{name}={str(value)[:80]} was refused"
        return
    assert accepted, f"{name}={str(value)[:80]} was accepted"
    spec = build_spec(spec_input_for(cfg, tmp_path))
    json.dumps(spec, allow_nan=False)  # a NaN or ∞ never reaches config.json
    assert_runc_takes(spec)


def spec_input_for(cfg: ContainerConfig, tmp_path) -> SpecInput:
    """As pyctrd.core.container builds it at Init."""
    return SpecInput(
        cid=cfg.id, rootfs=tmp_path / "merged", args=cfg.command, env=cfg.env,
        cwd=cfg.workdir, uid=cfg.uid, gid=cfg.gid, hostname=cfg.hostname,
        shm_dir=tmp_path / "shm", terminal=cfg.terminal, read_only=cfg.read_only,
        network_host=cfg.network == "host", mounts=cfg.mounts,
        memory_limit=cfg.memory_limit, cpu_quota=cfg.cpu_quota, pids_limit=cfg.pids_limit,
        annotations=cfg.annotations, no_new_privileges=cfg.no_new_privileges,
        capabilities=cfg.capabilities, privileged=cfg.privileged, seccomp=cfg.seccomp,
        ulimits=cfg.ulimits)


def assert_runc_takes(spec: dict) -> None:
    """What runc 1.1 and the kernel refuse at Start, held against the spec."""
    process, linux = spec["process"], spec["linux"]
    assert 0 <= process["user"]["uid"] <= ID_MAX and 0 <= process["user"]["gid"] <= ID_MAX
    assert len(spec["hostname"].encode()) <= 64
    assert all(len(e.encode()) < 128 << 10 for e in [*process["args"], *process["env"]])
    for limit in process["rlimits"]:
        assert limit["soft"] <= limit["hard"] <= (1 << 64) - 1
    resources = linux["resources"]
    if "memory" in resources:
        assert 6 << 20 <= resources["memory"]["limit"] <= INT64_MAX
    if "cpu" in resources:
        assert resources["cpu"]["quota"] >= 1000
    if "pids" in resources:
        assert 0 < resources["pids"]["limit"] <= 1 << 22
    for mount in spec["mounts"][6:]:  # the caller's, after the runtime's own six
        destination = mount["destination"]
        assert destination.startswith("/") and os.path.normpath(destination) == destination
        assert not any(destination == d or destination.startswith(d + "/")
                       for d in ("/proc", "/sys", "/dev")) and destination != "/"
    caps = process["capabilities"]["bounding"]
    assert set(caps) <= set(capabilities.bounding_set())
