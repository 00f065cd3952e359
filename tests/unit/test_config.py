"""pyctrd.core.config: options and the image resolved into a ContainerConfig."""

import json
import re

import pytest

from pyctrd.core import namegen as names
from pyctrd.core.config import (
    DEFAULT_STOP_TIMEOUT,
    NAME_RE,
    ContainerConfig,
    build_config,
)
from pyctrd.core.image import Image
from pyctrd.errors import InvalidArgument
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
    assert cfg.network == "none"
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


@pytest.mark.parametrize("network", ["none", "host"])
def test_networks(root, network):
    assert build(root, name="web", network=network).network == network


@pytest.mark.parametrize("network", ["bridge", "", "HOST", "slirp4netns"])
def test_bad_network(root, network):
    with pytest.raises(InvalidArgument):
        build(root, name="web", network=network)


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
