"""Named volumes (shared/API.md "Named volumes"): Manager and Volume objects, mounts
by name, an image's VOLUME as an anonymous volume, polkit, and pyctr's volume verbs."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MANAGER, MANAGER_PATH, Client
from dbus_fast import Variant
from dbus_fast.errors import DBusError

from integration.system_bus import (
    Polkitd,
    SystemBus,
    SystemDaemon,
    call_as,
    polkit_system,
)
from integration.test_image_store import oci_archive

VOLUME = "org.pyctrd1.Volume"
ERROR = "org.pyctrd1.Error."
NOBODY = 65534


async def remove_volume(bus: Client, name: str) -> None:
    with contextlib.suppress(DBusError):  # already gone is fine in clean-up
        await bus.manager("RemoveVolume", "sb", [name, True])


async def run_to_exit(bus: Client, command: list[str], **options: Any) -> int:
    path = await bus.run(command, **options)
    (code,) = await bus.ctr(path, "Wait")
    await bus.ctr(path, "Remove", "b", [False])
    bus.created.remove(path)
    return int(code)


async def test_data_outlives_its_container_and_is_seen_by_another(bus: Client,
                                                                  daemon: Any) -> None:
    name = "pyctrd-test-data"
    recorder = await bus.recorder()
    try:
        code = await run_to_exit(bus, ["sh", "-c", "echo kept > /data/f"],
                                 mounts=[(name, "/data", "")])
        assert code == 0
        # made on first use, under <root>/volumes/<name>/_data as podman's
        (path,) = await bus.manager("GetVolume", "s", [name])
        props = await bus.get_all(path, VOLUME)
        assert props["Name"] == name and props["Driver"] == "local"
        assert props["Mountpoint"] == str(daemon.root / "volumes" / name / "_data")
        assert props["InUse"] is False  # its container is gone
        assert (Path(props["Mountpoint"]) / "f").read_text() == "kept\n"
        added = recorder.select("InterfacesAdded")
        assert any(m.body[0] == path and VOLUME in m.body[1] for m in added)

        reader = await bus.run(["cat", "/data/f"], mounts=[(name, "/data", "ro")])
        (code,) = await bus.ctr(reader, "Wait")
        assert code == 0
        log = Path(await bus.prop(reader, "LogPath")).read_text()
        assert "kept" in log
        assert [n for n, _m, _p in (await bus.manager("ListVolumes"))[0]].count(name) == 1
    finally:
        await recorder.stop()
        await remove_volume(bus, name)


async def test_a_new_volume_belongs_to_its_containers_user(bus: Client,
                                                           daemon: Any) -> None:
    name = "pyctrd-test-owner"
    try:
        code = await run_to_exit(bus, ["sh", "-c", "echo x > /data/f"], user="1000:1000",
                                 mounts=[(name, "/data", "")])
        assert code == 0
        data = daemon.root / "volumes" / name / "_data"
        assert (data.stat().st_uid, data.stat().st_gid) == (1000, 1000)
    finally:
        await remove_volume(bus, name)


async def test_in_use_until_force_removes_its_containers(bus: Client, daemon: Any) -> None:
    name = "pyctrd-test-inuse"
    (path,) = await bus.manager("CreateVolume", "sa{sv}",
                                [name, {"labels": Variant("a{ss}", {"a": "b"})}])
    try:
        assert (await bus.get_all(path, VOLUME))["Labels"] == {"a": "b"}
        recorder = await bus.recorder()
        user = await bus.run(["sleep", "1000"], mounts=[(name, "/data", "")])
        await recorder.wait_property(path, "InUse", True, VOLUME)  # emitted with its value
        await recorder.stop()
        assert await bus.get_property(path, VOLUME, "InUse") is True
        err = await bus.fails(bus.manager("RemoveVolume", "sb", [name, False]))
        assert err.type == ERROR + "InUse", err
        err = await bus.fails(bus.call(path, VOLUME, "Remove", "b", [False]))
        assert err.type == ERROR + "InUse", err
        recorder = await bus.recorder()
        await bus.call(path, VOLUME, "Remove", "b", [True])
        bus.created.remove(user)
        await recorder.wait_for(lambda m: m.member == "InterfacesRemoved" and m.body[0] == path
                                and VOLUME in m.body[1], 10.0)
        await recorder.stop()
        assert not (daemon.root / "volumes" / name).exists()
        err = await bus.fails(bus.manager("GetContainer", "s", [user.rsplit("/", 1)[1]]))
        assert err.type == ERROR + "NoSuchContainer"
        err = await bus.fails(bus.manager("GetVolume", "s", [name]))
        assert err.type == ERROR + "NoSuchVolume"
    finally:
        await remove_volume(bus, name)


async def test_created_twice_and_bad_names_are_refused(bus: Client) -> None:
    (path,) = await bus.manager("CreateVolume", "sa{sv}", ["", {}])
    name = (await bus.get_all(path, VOLUME))["Name"]
    try:
        assert len(name) == 64
        err = await bus.fails(bus.manager("CreateVolume", "sa{sv}", [name, {}]))
        assert err.type == ERROR + "Exists"
        for bad in ("-x", "a/b", "a b"):
            err = await bus.fails(bus.manager("CreateVolume", "sa{sv}", [bad, {}]))
            assert err.type == ERROR + "InvalidArgument", bad
        # a create that fails leaves no volume it would have made
        err = await bus.fails(bus.create(["true"], mounts=[("pyctrd-test-undone", "/d", ""),
                                                           ("/tmp", "relative", "")]))
        assert err.type == ERROR + "InvalidArgument", err
        err = await bus.fails(bus.manager("GetVolume", "s", ["pyctrd-test-undone"]))
        assert err.type == ERROR + "NoSuchVolume", err
    finally:
        await remove_volume(bus, name)


async def test_image_volume_is_anonymous_and_goes_with_its_container(
        bus: Client, daemon: Any, busybox_tar: Path, tmp_path: Path) -> None:
    archive = oci_archive(tmp_path / "vol.tar", [busybox_tar.read_bytes()],
                          Cmd=["sh"], Volumes={"/cache": {}, "/given": {}})
    await bus.import_image(archive, "pyctrd-test-volimage:latest")
    before = {n for n, _m, _p in (await bus.manager("ListVolumes"))[0]}
    given = str(tmp_path)
    path = await bus.create(["sh", "-c", "touch /cache/x"], image="pyctrd-test-volimage:latest",
                            mounts=[(given, "/given", "")])
    after = {n: m for n, m, _p in (await bus.manager("ListVolumes"))[0]}
    new = set(after) - before
    assert len(new) == 1, new  # /given is a mount already: only /cache gets one
    (anonymous,) = new
    await bus.ctr(path, "Start")
    (code,) = await bus.ctr(path, "Wait")
    assert code == 0
    assert (Path(after[anonymous]) / "x").exists()
    await bus.ctr(path, "Remove", "b", [False])
    bus.created.remove(path)
    assert anonymous not in {n for n, _m, _p in (await bus.manager("ListVolumes"))[0]}
    assert not (daemon.root / "volumes" / anonymous).exists()


# -- polkit: a volume name is no host path


@pytest.fixture(scope="module")
def polkit_env(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[SystemBus, Polkitd, SystemDaemon]]:
    with polkit_system("volumes", tmp_path_factory.mktemp("pyctrd-vol"), busybox_tar,
                       mock=True) as env:
        yield env


def _create(mounts: list[list[str]]) -> dict[str, Any]:
    return {"path": MANAGER_PATH, "interface": MANAGER, "member": "CreateContainer",
            "signature": "sasa{sv}", "body": ["busybox", ["true"], {
                "network": {"variant": ["s", "none"]},
                "mounts": {"variant": ["a(sss)", mounts]}}]}


async def test_volume_mount_needs_only_container_create(
        polkit_env: tuple[SystemBus, Polkitd, SystemDaemon], client_factory: Any) -> None:
    bus, polkit, _daemon = polkit_env
    root = await client_factory(bus.address)
    polkit.set_allowed(["org.pyctrd1.container.create"])
    polkit.clear_calls()
    try:
        named, host = call_as(NOBODY, bus.address, [
            _create([["pyctrd-test-polkit", "/data", ""]]),
            _create([["/", "/host", ""]])])["results"]
        assert "reply" in named, named
        root.created.append(named["reply"][0])
        assert host.get("error") == "org.freedesktop.DBus.Error.AccessDenied", host
        assert "create-privileged" in host["message"]
        asked = [action for _subject, action, _details, _flags in polkit.check_calls()]
        assert asked == ["org.pyctrd1.container.create", "org.pyctrd1.container.create",
                         "org.pyctrd1.container.create-privileged"], asked
        create_volume = {"path": MANAGER_PATH, "interface": MANAGER,
                         "member": "CreateVolume", "signature": "sa{sv}",
                         "body": ["pyctrd-test-polkit2", {}]}
        (made,) = call_as(NOBODY, bus.address, [create_volume])["results"]
        assert "reply" in made, made
        polkit.set_allowed([])
        remove = {"path": MANAGER_PATH, "interface": MANAGER, "member": "RemoveVolume",
                  "signature": "sb", "body": ["pyctrd-test-polkit2", False]}
        (denied,) = call_as(NOBODY, bus.address, [remove])["results"]
        assert denied.get("error") == "org.freedesktop.DBus.Error.AccessDenied", denied
    finally:
        polkit.set_allowed([])
        for name in ("pyctrd-test-polkit", "pyctrd-test-polkit2"):
            await remove_volume(root, name)


# -- pyctr volume …


def test_pyctr_volume_verbs(daemon: Any) -> None:
    from integration.cli_support import ok, pyctr
    address = daemon.bus_address
    name = "pyctrd-test-cli-vol"
    try:
        assert ok(address, "volume", "create", "--label", "k=v", name).strip() == name
        again = pyctr(address, "volume", "create", name)
        assert again.returncode == 125
        assert again.stderr.strip() == (f"Error: volume with name {name} already exists: "
                                        "volume already exists"), again.stderr
        assert ok(address, "volume", "create", "--ignore", name).strip() == name
        assert name in ok(address, "volume", "ls", "-q").split()
        table = ok(address, "volume", "ls", "--filter", f"name={name}").splitlines()
        assert table[0].split() == ["DRIVER", "VOLUME", "NAME"]
        assert table[1].split() == ["local", name]
        assert ok(address, "volume", "ls", "--format", "{{.Name}} {{.Labels.k}}",
                  "--filter", "label=k=v").strip() == f"{name} v"
        (shown,) = json.loads(ok(address, "volume", "inspect", name))
        assert shown["Name"] == name and shown["Driver"] == "local"
        assert shown["Mountpoint"].endswith(f"/volumes/{name}/_data")
        assert ok(address, "volume", "inspect", "--format", "{{.Mountpoint}}",
                  name).strip() == shown["Mountpoint"]
        cid = ok(address, "run", "-d", "-v", f"{name}:/data", "busybox",
                 "sleep", "1000").strip()
        try:
            (mount,) = json.loads(ok(address, "inspect", "--format", "{{json .Mounts}}",
                                     cid))
            assert (mount["Type"], mount["Name"], mount["Destination"], mount["RW"]) == (
                "volume", name, "/data", True), mount
            used = pyctr(address, "volume", "rm", name)
            assert used.returncode == 2 and "volume is being used" in used.stderr, used.stderr
            assert ok(address, "volume", "ls", "-q", "--filter",
                      "dangling=true").split().count(name) == 0
        finally:
            ok(address, "rm", "-f", cid)
        assert pyctr(address, "volume", "exists", name).returncode == 0
        pruned = ok(address, "volume", "prune", "-f").split()
        assert name in pruned
        assert pyctr(address, "volume", "exists", name).returncode == 1
        missing = pyctr(address, "volume", "rm", name)
        assert missing.returncode == 1
        assert missing.stderr.strip() == (f'Error: no volume with name "{name}" found: '
                                          "no such volume"), missing.stderr
    finally:
        pyctr(address, "volume", "rm", "-f", name)


# -- Varlink: io.pyctrd.Volume


def test_varlink_volume_create_get_list_remove(daemon: Any) -> None:
    from integration.test_varlink import REPO, cli, socket_of
    sock = socket_of(daemon)
    iface = "io.pyctrd.Volume"
    live = cli(sock, "org.varlink.service.GetInterfaceDescription",
               {"interface": iface}).reply["description"]
    assert live == (REPO / "varlink" / f"{iface}.varlink").read_text()
    made = cli(sock, f"{iface}.Create", {"name": "pyctrd-test-vl",
                                         "labels": {"a": "b"}}).reply["volume"]
    try:
        assert made["labels"] == {"a": "b"} and made["driver"] == "local"
        assert made["in_use"] is False and made["created_timestamp"] > 0
        got = cli(sock, f"{iface}.Get", {"name": "pyctrd-test-vl"}).reply["volume"]
        assert got["mountpoint"] == made["mountpoint"]
        names = [v["name"] for v in cli(sock, f"{iface}.List").reply["volumes"]]
        assert "pyctrd-test-vl" in names
        again = cli(sock, f"{iface}.Create", {"name": "pyctrd-test-vl"})
        assert again.error is not None and again.error["error"] == f"{iface}.Exists"
    finally:
        cli(sock, f"{iface}.Remove", {"name": "pyctrd-test-vl", "force": True})
    missing = cli(sock, f"{iface}.Get", {"name": "pyctrd-test-vl"})
    assert missing.error is not None and missing.error["error"] == f"{iface}.NoSuchVolume"


# -- a restart: records from the store, users from the containers' mounts


async def test_volumes_survive_a_daemon_restart(fresh_daemon: Any, client_factory: Any) -> None:
    from integration.test_recovery import restart
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    (path,) = await bus.manager("CreateVolume", "sa{sv}",
                                ["kept", {"labels": Variant("a{ss}", {"k": "v"})}])
    user = await bus.create(["true"], mounts=[("kept", "/data", "")])
    before = await bus.get_all(path, VOLUME)
    d.kill9()
    bus = await restart(d, client_factory)
    assert await bus.get_all(path, VOLUME) == before
    assert before["InUse"] is True
    objects = (await bus.call("/org/pyctrd1", "org.freedesktop.DBus.ObjectManager",
                              "GetManagedObjects"))[0]
    assert VOLUME in objects[path]
    await bus.ctr(user, "Remove", "b", [False])
    assert await bus.get_property(path, VOLUME, "InUse") is False
