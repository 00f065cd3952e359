"""pyctrd.bus.props: the property tables against API.md."""

from types import SimpleNamespace

import pytest

from pyctrd.bus.props import (
    CONTAINER_PROPERTIES,
    IMAGE_PROPERTIES,
    STATUS_TO_PROPERTIES,
    changed_properties,
    image_variants,
    variants,
)
from pyctrd.core.config import ContainerConfig
from pyctrd.core.container import ContainerStatus
from pyctrd.core.image import Image
from pyctrd.core.state import State

# API.md, org.pyctrd1.Container properties
API_CONTAINER = {
    "Id": "s", "Name": "s", "Image": "s", "ImageId": "s", "Command": "as", "State": "s",
    "PID": "i", "ExitCode": "i", "OOMKilled": "b", "Mounted": "b", "Mountpoint": "s",
    "CreatedTimestamp": "t", "StartedTimestamp": "t", "FinishedTimestamp": "t",
    "Labels": "a{ss}", "LogPath": "s", "StopSignal": "u", "StopTimeout": "u",
    "Terminal": "b",
}
# API.md, org.pyctrd1.Image properties
API_IMAGE = {
    "Id": "s", "Reference": "s", "Digest": "s", "Size": "t", "CreatedTimestamp": "t",
    "Layers": "as", "Entrypoint": "as", "Cmd": "as", "Env": "as", "WorkingDir": "s",
    "User": "s",
}


def test_container_properties_match_api():
    assert len(API_CONTAINER) == 19
    assert {n: sig for n, (sig, _) in CONTAINER_PROPERTIES.items()} == API_CONTAINER


def test_image_properties_match_api():
    assert len(API_IMAGE) == 11
    assert {n: sig for n, (sig, _) in IMAGE_PROPERTIES.items()} == API_IMAGE


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
    }
    assert type(plain["State"]) is str
    # nothing secret in properties
    assert "SECRET=1" not in repr(plain)


def test_selected_names():
    c = fake_container(state=State.EXITED, exit_code=3)
    got = variants(CONTAINER_PROPERTIES, c, ["State", "ExitCode"])
    assert {k: v.value for k, v in got.items()} == {"State": "exited", "ExitCode": 3}


def test_image_variants():
    image = Image(id="i" * 64, reference="r", digest="sha256:x", size=5, created=6,
                  layers=["l"], entrypoint=["e"], cmd=["c"], env=["E=1"], workdir="/w",
                  user="u")
    got = {k: v.value for k, v in image_variants(image).items()}
    assert got == {"Id": "i" * 64, "Reference": "r", "Digest": "sha256:x", "Size": 5,
                   "CreatedTimestamp": 6, "Layers": ["l"], "Entrypoint": ["e"],
                   "Cmd": ["c"], "Env": ["E=1"], "WorkingDir": "/w", "User": "u"}


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
def test_changed_properties(changes, expected):
    assert changed_properties(changes) == expected


def test_every_status_field_is_mapped_or_internal():
    from dataclasses import fields
    internal = {"conmon_pid", "needs_cleanup", "user_mounted", "removing"}
    status_fields = {f.name for f in fields(ContainerStatus)}
    assert set(STATUS_TO_PROPERTIES) == status_fields - internal
    for props in STATUS_TO_PROPERTIES.values():
        assert set(props) <= set(CONTAINER_PROPERTIES)
