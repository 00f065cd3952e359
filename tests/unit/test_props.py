"""The property tables (pyctrd.ops.properties) against API.md, as the bus serves them."""

from dataclasses import fields
from types import SimpleNamespace

import pytest

from pyctrd.bus.container import ContainerObject
from pyctrd.bus.image import ImageObject
from pyctrd.bus.manager import ManagerObject
from pyctrd.bus.props import EMITS_CHANGED, variants
from pyctrd.core.config import ContainerConfig
from pyctrd.core.container import ContainerStatus
from pyctrd.core.image import Image
from pyctrd.core.state import State
from pyctrd.ops.properties import (
    CONTAINER_PROPERTIES,
    IMAGE_PROPERTIES,
    MANAGER_PROPERTIES,
    changed,
)

# API.md, org.pyctrd1.Container properties
API_CONTAINER = {
    "Id": "s", "Name": "s", "Image": "s", "ImageId": "s", "Command": "as", "State": "s",
    "PID": "i", "ExitCode": "i", "OOMKilled": "b", "Mounted": "b", "Mountpoint": "s",
    "CreatedTimestamp": "t", "StartedTimestamp": "t", "FinishedTimestamp": "t",
    "Labels": "a{ss}", "LogPath": "s", "StopSignal": "u", "StopTimeout": "u",
    "Terminal": "b",
    # Additions (issue 17)
    "RestartPolicy": "s", "RestartCount": "u", "Health": "s", "AutoRemove": "b",
    # Additions (issue 15)
    "Networks": "as", "IPAddress": "s", "Ports": "a(sqqs)",
}
# API.md, org.pyctrd1.Image properties
API_IMAGE = {
    "Id": "s", "Reference": "s", "Digest": "s", "Size": "t", "CreatedTimestamp": "t",
    "Layers": "as", "Entrypoint": "as", "Cmd": "as", "Env": "as", "WorkingDir": "s",
    "User": "s", "References": "as",  # References: API.md's Additions
}
API_MANAGER = {"Version": "s", "Runtime": "s", "ContainerCount": "u", "ImageCount": "u"}
# API.md, Additions: "Properties that never change after an object appears".
API_CONST_CONTAINER = {"Id", "Name", "Image", "ImageId", "Command", "CreatedTimestamp",
                       "LogPath", "StopSignal", "StopTimeout", "Terminal"}


def signatures(table):
    return {name: row.signature for name, row in table.items()}


def test_container_properties_match_api():
    assert len(API_CONTAINER) == 19 + 4 + 3
    assert signatures(CONTAINER_PROPERTIES) == API_CONTAINER


def test_image_properties_match_api():
    assert len(API_IMAGE) == 12
    assert signatures(IMAGE_PROPERTIES) == API_IMAGE


def test_manager_properties_match_api():
    assert signatures(MANAGER_PROPERTIES) == API_MANAGER


def test_const_rows_cover_the_api_list():
    const = {name for name, row in CONTAINER_PROPERTIES.items() if row.const}
    assert API_CONST_CONTAINER.issubset(const)
    # what changes is never const
    assert not const & {"State", "PID", "ExitCode", "OOMKilled", "Mounted", "Mountpoint",
                        "StartedTimestamp", "FinishedTimestamp"}


@pytest.mark.parametrize(("make", "table"), [
    (lambda: ContainerObject(None, None), CONTAINER_PROPERTIES),  # type: ignore[arg-type]
    (lambda: ImageObject(None, None), IMAGE_PROPERTIES),  # type: ignore[arg-type]
    (lambda: ManagerObject(None), MANAGER_PROPERTIES)])  # type: ignore[arg-type]
def test_introspection_annotates_exactly_the_const_rows(make, table):
    props = {p.name: p for p in make().introspect().properties}
    assert set(props) == set(table)
    for name, row in table.items():
        expected = {EMITS_CHANGED: "const"} if row.const else {}
        assert props[name].annotations == expected, name
        assert props[name].signature == row.signature


def fake_container(**status):
    config = ContainerConfig(
        id="c" * 64, name="web", image_id="i" * 64, image_ref="localhost/x:latest",
        command=["/bin/sh"], env=["SECRET=1"], workdir="/", user="0", uid=0, gid=0,
        hostname="h", created=111, terminal=True, stop_signal=15, stop_timeout=10,
        labels={"a": "b"})
    return SimpleNamespace(id=config.id, name=config.name, config=config,
                           status=ContainerStatus(**status), log_path="/var/log/x.log")


def test_container_getters_give_values_of_their_signature():
    c = fake_container(state=State.RUNNING, pid=42, started=222, mounted=True,
                       mountpoint="/m")
    got = variants(CONTAINER_PROPERTIES, c)  # Variant() checks the value's type
    plain = {k: v.value for k, v in got.items()}
    assert plain == {
        "Id": "c" * 64, "Name": "web", "Image": "localhost/x:latest", "ImageId": "i" * 64,
        "Command": ["/bin/sh"], "State": "running", "PID": 42, "ExitCode": 0,
        "OOMKilled": False, "Mounted": True, "Mountpoint": "/m", "CreatedTimestamp": 111,
        "StartedTimestamp": 222, "FinishedTimestamp": 0, "Labels": {"a": "b"},
        "LogPath": "/var/log/x.log", "StopSignal": 15, "StopTimeout": 10, "Terminal": True,
        "RestartPolicy": "no", "RestartCount": 0, "Health": "", "AutoRemove": False,
        "Networks": [], "IPAddress": "", "Ports": [],
    }
    assert type(plain["State"]) is str
    # nothing secret in properties
    assert "SECRET=1" not in repr(plain)


def test_selected_rows():
    c = fake_container(state=State.EXITED, exit_code=3)
    rows = [CONTAINER_PROPERTIES["State"], CONTAINER_PROPERTIES["ExitCode"]]
    got = variants(CONTAINER_PROPERTIES, c, rows)
    assert {k: v.value for k, v in got.items()} == {"State": "exited", "ExitCode": 3}


def test_image_variants():
    image = Image(id="i" * 64, reference="r", digest="sha256:x", size=5, created=6,
                  layers=["l"], entrypoint=["e"], cmd=["c"], env=["E=1"], workdir="/w",
                  user="u")
    got = {k: v.value for k, v in variants(IMAGE_PROPERTIES, image).items()}
    assert got == {"Id": "i" * 64, "Reference": "r", "Digest": "sha256:x", "Size": 5,
                   "CreatedTimestamp": 6, "Layers": ["l"], "Entrypoint": ["e"],
                   "Cmd": ["c"], "Env": ["E=1"], "WorkingDir": "/w", "User": "u",
                   "References": ["r"]}


def test_manager_variants_read_the_engine():
    engine = SimpleNamespace(version="1.2", oci_runtime_path="/usr/sbin/runc",
                             containers={"a": 1, "b": 2}, images={"i": 3})
    got = {k: v.value for k, v in variants(MANAGER_PROPERTIES, engine).items()}
    assert got == {"Version": "1.2", "Runtime": "/usr/sbin/runc", "ContainerCount": 2,
                   "ImageCount": 1}
    assert [r.name for r in changed(MANAGER_PROPERTIES, ["containers"])] == [
        "ContainerCount"]
    assert [r.name for r in changed(MANAGER_PROPERTIES, ["images"])] == ["ImageCount"]


@pytest.mark.parametrize(("changes", "expected"), [
    ({"state": State.RUNNING}, ["State"]),
    ({"pid": 1}, ["PID"]),
    ({"exit_code": 1}, ["ExitCode"]),
    ({"oom_killed": True}, ["OOMKilled"]),
    ({"mounted": True}, ["Mounted"]),
    ({"mountpoint": "/m"}, ["Mountpoint"]),
    ({"started": 1}, ["StartedTimestamp"]),
    ({"finished": 1}, ["FinishedTimestamp"]),
    ({"conmon_pid": 5}, []),
    ({"needs_cleanup": True}, []),
    ({"user_mounted": True}, []),
    ({}, []),
    ({"state": State.EXITED, "exit_code": 0, "pid": 0, "conmon_pid": 0, "finished": 9},
     ["State", "PID", "ExitCode", "FinishedTimestamp"]),
    ({"mountpoint": "", "mounted": False, "user_mounted": False}, ["Mounted", "Mountpoint"]),
])
def test_changed_rows(changes, expected):
    assert [row.name for row in changed(CONTAINER_PROPERTIES, changes)] == expected


def test_every_status_field_is_followed_or_internal():
    internal = {"conmon_pid", "init_pid", "needs_cleanup", "user_mounted", "removing",
                "stopped_by_user", "restart_streak", "restart_at", "health_failures",
                "health_log", "netns"}
    status_fields = {f.name for f in fields(ContainerStatus)}
    # RestartPolicy and AutoRemove follow config fields (changing nothing yet).
    followed = {row.follows for row in CONTAINER_PROPERTIES.values()
                if not row.const} - {"restart_policy", "auto_remove"}
    assert followed == status_fields - internal
