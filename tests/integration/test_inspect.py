"""Container.Inspect: everything about a container as podman-inspect-shaped JSON."""

import json
import re
from pathlib import Path

from conftest import container_id

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
MEMORY = 64 * 1024 * 1024


async def inspect(bus, path: str) -> dict:
    (text,) = await bus.ctr(path, "Inspect")
    return json.loads(text)


async def make(bus) -> str:
    return await bus.create(
        ["sh", "-c", "echo hi; exec sleep 1000"], env=["FOO=bar", "EMPTY="],
        labels={"team": "blue"}, workdir="/tmp", hostname="box", memory_limit=MEMORY,
        stop_timeout=7)


async def test_configured(bus, daemon):
    path = await make(bus)
    info = await inspect(bus, path)
    assert info["Id"] == container_id(path)
    assert info["Name"] == await bus.prop(path, "Name")
    assert info["Path"] == "sh" and info["Args"] == ["-c", "echo hi; exec sleep 1000"]
    assert info["Config"]["Cmd"] == ["sh", "-c", "echo hi; exec sleep 1000"]
    assert {"FOO=bar", "EMPTY="} <= set(info["Config"]["Env"])
    assert info["Config"]["Labels"] == {"team": "blue"}
    assert info["Config"]["WorkingDir"] == "/tmp"
    assert info["Config"]["Hostname"] == "box"
    assert info["Config"]["StopTimeout"] == 7
    assert info["HostConfig"]["Memory"] == MEMORY
    assert info["Image"] == daemon.image_id == await bus.prop(path, "ImageId")
    assert info["ImageName"] == await bus.prop(path, "Image")
    assert info["LogPath"] == await bus.prop(path, "LogPath")
    assert RFC3339.match(info["Created"])
    state = info["State"]
    assert state["Status"] == "configured"
    assert (state["Running"], state["Pid"], state["ConmonPid"]) == (False, 0, 0)
    assert state["StartedAt"] == "" and state["FinishedAt"] == ""
    assert info["OCISpec"] is None  # no runtime spec before Init


async def test_running(bus):
    path = await make(bus)
    await bus.ctr(path, "Start")
    info = await inspect(bus, path)
    state = info["State"]
    assert state["Status"] == "running" and state["Running"] is True
    assert state["Pid"] == await bus.prop(path, "PID") > 0
    conmon = state["ConmonPid"]
    assert Path(f"/proc/{conmon}/comm").read_text().strip() == "conmon"
    assert info["Id"].encode() in Path(f"/proc/{conmon}/cmdline").read_bytes()
    assert RFC3339.match(state["StartedAt"])
    spec = info["OCISpec"]
    assert spec["process"]["args"] == ["sh", "-c", "echo hi; exec sleep 1000"]
    assert {"FOO=bar", "EMPTY="} <= set(spec["process"]["env"])
    assert spec["process"]["cwd"] == "/tmp"
    assert spec["hostname"] == "box"
    assert spec["linux"]["resources"]["memory"]["limit"] == MEMORY
    assert info["Mounted"] is True
    assert spec["root"]["path"] == info["Mountpoint"] == info["GraphDriver"]["Data"]["MergedDir"]


async def test_exited(bus):
    path = await bus.run(["sh", "-c", "exit 5"])
    assert await bus.ctr(path, "Wait") == [5]
    state = (await inspect(bus, path))["State"]
    assert state["Status"] == "exited" and state["Running"] is False
    assert state["ExitCode"] == 5 and state["ConmonPid"] == 0 and state["Pid"] == 0
    assert RFC3339.match(state["FinishedAt"])


async def test_mounts_are_listed(bus, tmp_path):
    path = await bus.create(["true"], mounts=[(str(tmp_path), "/data", "ro,bind")])
    info = await inspect(bus, path)
    assert info["Mounts"] == [{"Source": str(tmp_path), "Destination": "/data",
                               "Options": ["ro", "bind"]}]
