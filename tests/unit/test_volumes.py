"""core/volumes.py on a real SQLite store and a temp directory."""

from pathlib import Path

import pytest

from pyctrd.core.image import defaults_from_config
from pyctrd.core.volumes import Volumes, anonymous_mounts, check_name, delete_tree
from pyctrd.database import Database
from pyctrd.errors import Exists, InUse, InvalidArgument, NoSuchVolume
from pyctrd.ops.names import volume_path


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def volume_added(self, volume) -> None:
        self.seen.append(("added", volume.name))

    def volume_changed(self, volume, fields) -> None:
        self.seen.append(("changed", volume.name))

    def volume_removed(self, volume) -> None:
        self.seen.append(("removed", volume.name))


@pytest.fixture
def volumes(tmp_path: Path) -> Volumes:
    return Volumes(tmp_path / "volumes", Database(tmp_path / "db.sqlite"))


def test_named_mount_creates_on_first_use_and_counts_users(volumes: Volumes) -> None:
    seen = Recorder()
    volumes.add_listener(seen)
    mounts = volumes.resolve_mounts([("data", "/data", "ro"), ("/etc", "/host-etc", "")])
    data = volumes.lookup("data")
    assert mounts == [(data.mountpoint, "/data", "ro"), ("/etc", "/host-etc", "")]
    assert Path(data.mountpoint).is_dir() and data.mountpoint.endswith("/data/_data")
    assert volumes.resolve_mounts([("data", "/x", "")])[0][0] == data.mountpoint  # same one
    volumes.joined("c1", mounts)
    volumes.joined("c2", mounts)
    assert data.in_use
    with pytest.raises(InUse):
        volumes.remove(data)
    assert volumes.left("c1") == [] and data.in_use
    volumes.left("c2")
    assert not data.in_use
    (Path(data.mountpoint) / "f").write_text("x")
    trash = volumes.remove(data)
    assert trash is not None and (trash / "_data" / "f").exists()  # moved aside: name free
    assert not Path(data.mountpoint).exists()
    delete_tree(trash)
    assert not trash.exists()
    with pytest.raises(NoSuchVolume):
        volumes.lookup("data")
    assert seen.seen == [("added", "data"), ("changed", "data"), ("changed", "data"),
                         ("removed", "data")]


def test_records_survive_a_restart(tmp_path: Path, volumes: Volumes) -> None:
    made = volumes.create("keep", {"a": "b"})
    trash = volumes.remove(volumes.create("gone"))  # a crash before its data was deleted
    assert trash is not None and trash.exists()
    again = Volumes(tmp_path / "volumes", Database(tmp_path / "db.sqlite"))
    again.load()
    assert not trash.exists()
    kept = again.lookup("keep")
    assert (kept.labels, kept.created, kept.mountpoint) == (made.labels, made.created,
                                                            made.mountpoint)
    with pytest.raises(Exists):
        again.create("keep")


def test_anonymous_volumes_skip_paths_already_mounted(volumes: Volumes) -> None:
    found = anonymous_mounts(volumes, "cid", ["/cache", "/given", "/cache/"],
                             [("/tmp", "/given", "")])
    assert [destination for _s, destination, _o in found] == ["/cache"]
    (volume,) = volumes.volumes.values()
    assert volume.anonymous_for == "cid" and len(volume.name) == 64
    volumes.joined("cid", found)
    assert volumes.left("cid") == [volume]


@pytest.mark.parametrize("name", ["", "-x", ".x", "a/b", "a b", "x" * 256, "../etc"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_name(name)


def test_paths_are_bus_escaped() -> None:
    assert volume_path("web-data.1") == "/org/pyctrd1/volume/web_2ddata_2e1"
    assert volume_path("1abc") == "/org/pyctrd1/volume/_31abc"


def test_image_config_volumes_are_read() -> None:
    found = defaults_from_config({"config": {"Volumes": {"/b": {}, "/a": {}}}})
    assert found["volumes"] == ["/a", "/b"]
    assert defaults_from_config({"config": {}})["volumes"] == []
    with pytest.raises(InvalidArgument):
        defaults_from_config({"config": {"Volumes": ["/a"]}})


def test_pyctr_mount_and_volume_flags_take_names() -> None:
    from pyctrd.cli.errors import CliError
    from pyctrd.cli.options import parse_mount, parse_volume
    assert parse_volume("data:/data") == ("data", "/data", "")
    assert parse_mount("type=volume,source=data,target=/d,ro") == ("data", "/d", "ro")
    for bad in ("type=volume,target=/d", "type=volume,source=/x,target=/d"):
        with pytest.raises(CliError, match="--mount"):
            parse_mount(bad)
    with pytest.raises(CliError, match="volume name"):
        parse_volume("a b:/data")


def test_anonymous_volumes_of_unknown_containers_are_swept(volumes: Volumes) -> None:
    kept = volumes.create("", anonymous_for="stored")
    gone = volumes.create("", anonymous_for="gone")
    named = volumes.create("named")
    volumes.sweep_anonymous({"stored"})
    assert set(volumes.volumes) == {kept.name, named.name}
    assert not Path(gone.mountpoint).exists()
