"""The Manager and the ObjectManager: objects, their announcements, counts; concurrency."""

import asyncio
import os

from dbus_fast import DBusError

MANAGER_PATH = "/org/pyctrd1"
MANAGER = "org.pyctrd1.Manager"
CONTAINER = "org.pyctrd1.Container"
IMAGE = "org.pyctrd1.Image"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
COOPERATIVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]

CONTAINER_PROPERTIES = {
    "Id": "s", "Name": "s", "Image": "s", "ImageId": "s", "Command": "as", "State": "s",
    "PID": "i", "ExitCode": "i", "OOMKilled": "b", "Mounted": "b", "Mountpoint": "s",
    "CreatedTimestamp": "t", "StartedTimestamp": "t", "FinishedTimestamp": "t",
    "Labels": "a{ss}", "LogPath": "s", "StopSignal": "u", "StopTimeout": "u",
    "Terminal": "b",
    # API.md's Additions
    "RestartPolicy": "s", "RestartCount": "u", "Health": "s", "AutoRemove": "b",
    "Networks": "as", "IPAddress": "s", "Ports": "a(sqqs)",
}
IMAGE_PROPERTIES = {
    "Id": "s", "Reference": "s", "Digest": "s", "Size": "t", "CreatedTimestamp": "t",
    "Layers": "as", "Entrypoint": "as", "Cmd": "as", "Env": "as", "WorkingDir": "s",
    "User": "s", "References": "as",
}


async def managed_objects(bus):
    (objects,) = await bus.call(MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects")
    return objects


async def test_manager_properties(bus, daemon):
    props = await bus.get_all(MANAGER_PATH, MANAGER)
    assert set(props) == {"Version", "Runtime", "ContainerCount", "ImageCount"}
    assert props["Version"] == "0.1.0"
    assert props["Runtime"].endswith("/runc")
    assert props["ImageCount"] >= 1
    (containers,) = await bus.manager("ListContainers")
    assert props["ContainerCount"] == len(containers)


async def test_get_managed_objects(bus, daemon):
    path = await bus.create(["sh", "-c", "exit 0"], name="om-listed", labels={"a": "b"},
                            stop_signal="SIGINT", stop_timeout=3)
    objects = await managed_objects(bus)
    assert path in objects
    assert CONTAINER in objects[path]
    values = objects[path][CONTAINER]
    assert set(values) == set(CONTAINER_PROPERTIES)
    for name, signature in CONTAINER_PROPERTIES.items():
        assert values[name].signature == signature, name
    assert values["Id"].value == path.rsplit("/", 1)[1]
    assert values["Name"].value == "om-listed"
    assert values["State"].value == "configured"
    assert values["Image"].value == "busybox"
    assert values["ImageId"].value == daemon.image_id
    assert values["Command"].value == ["sh", "-c", "exit 0"]
    assert values["Labels"].value == {"a": "b"}
    assert values["StopSignal"].value == 2
    assert values["StopTimeout"].value == 3
    assert values["Terminal"].value is False
    assert values["PID"].value == 0

    assert daemon.image_path in objects
    image = objects[daemon.image_path][IMAGE]
    assert set(image) == set(IMAGE_PROPERTIES)
    for name, signature in IMAGE_PROPERTIES.items():
        assert image[name].signature == signature, name
    assert image["Id"].value == daemon.image_id
    assert image["Reference"].value == "busybox"
    assert image["References"].value == ["busybox"]
    assert image["Digest"].value == f"sha256:{daemon.image_id}"
    assert image["Size"].value > 100_000

    # GetAll on the object agrees with GetManagedObjects
    assert await bus.get_all(path, CONTAINER) == {k: v.value for k, v in values.items()}

    # every container, image, network, volume and job is there, and nothing else
    (containers,) = await bus.manager("ListContainers")
    (images,) = await bus.manager("ListImages")
    (networks,) = await bus.manager("ListNetworks")
    (volumes,) = await bus.manager("ListVolumes")
    (jobs,) = await bus.manager("ListJobs")
    assert set(objects) == ({c[4] for c in containers} | {i[3] for i in images}
                            | {n[3] for n in networks} | {v[2] for v in volumes} | set(jobs))


async def test_list_containers_and_images(bus, daemon):
    path = await bus.create(["true"], name="listed-one")
    (containers,) = await bus.manager("ListContainers")
    row = next(c for c in containers if c[4] == path)
    assert list(row) == [path.rsplit("/", 1)[1], "listed-one", "busybox", "configured", path]
    (images,) = await bus.manager("ListImages")
    row = next(i for i in images if i[0] == daemon.image_id)
    assert row[1] == "busybox"
    assert row[2] > 100_000
    assert row[3] == daemon.image_path
    (image_path,) = await bus.manager("GetImage", "s", ["busybox"])
    assert image_path == daemon.image_path
    (image_path,) = await bus.manager("GetImage", "s", [daemon.image_id[:12]])
    assert image_path == daemon.image_path
    (by_name,) = await bus.manager("GetContainer", "s", ["listed-one"])
    (by_prefix,) = await bus.manager("GetContainer", "s", [path.rsplit("/", 1)[1][:20]])
    assert by_name == by_prefix == path


async def test_added_removed_announcements(bus):
    rec = await bus.recorder()
    before = await bus.manager_prop("ContainerCount")
    path = await bus.create(["true"], name="om-announced")
    cid = path.rsplit("/", 1)[1]

    added = await rec.wait_for(lambda m: m.member == "InterfacesAdded" and m.body[0] == path)
    assert added.path == MANAGER_PATH
    assert added.interface == OBJECT_MANAGER
    assert added.signature == "oa{sa{sv}}"
    props = added.body[1][CONTAINER]
    assert set(props) == set(CONTAINER_PROPERTIES)
    assert props["Name"].value == "om-announced"
    assert props["State"].value == "configured"

    sig = await rec.wait_for(lambda m: m.member == "ContainerAdded" and m.body[1] == path)
    assert sig.path == MANAGER_PATH and sig.interface == MANAGER
    assert sig.body == [cid, path]
    await rec.wait_property(MANAGER_PATH, "ContainerCount", before + 1, iface=MANAGER)
    assert await bus.manager_prop("ContainerCount") == before + 1

    await bus.ctr(path, "Remove", "b", [False])
    removed = await rec.wait_for(lambda m: m.member == "InterfacesRemoved"
                                 and m.body[0] == path)
    assert removed.path == MANAGER_PATH
    assert CONTAINER in removed.body[1]
    sig = await rec.wait_for(lambda m: m.member == "ContainerRemoved" and m.body[1] == path)
    assert sig.body == [cid, path]
    await rec.wait_property(MANAGER_PATH, "ContainerCount", before, iface=MANAGER)
    assert await bus.manager_prop("ContainerCount") == before
    assert path not in await managed_objects(bus)

    # only the count that changed is announced
    counts = [set(c) for c in rec.changes(MANAGER_PATH, iface=MANAGER)]
    assert counts and all(c == {"ContainerCount"} for c in counts), counts

    # announced in order: added before removed
    members = [m.member for m in rec.signals
               if m.member in ("InterfacesAdded", "InterfacesRemoved") and m.body[0] == path]
    assert members == ["InterfacesAdded", "InterfacesRemoved"]


async def test_remove_container_by_name_force(bus):
    rec = await bus.recorder()
    path = await bus.run_cooperative(name="om-force-removed")
    pid = await bus.prop(path, "PID")
    err = await bus.fails(bus.manager("RemoveContainer", "sb", ["om-force-removed", False]))
    assert err.type == "org.pyctrd1.Error.InvalidState"
    assert await bus.state(path) == "running"
    await bus.manager("RemoveContainer", "sb", ["om-force-removed", True])
    await rec.wait_for(lambda m: m.member == "ContainerRemoved" and m.body[1] == path)
    err = await bus.fails(bus.manager("GetContainer", "s", ["om-force-removed"]))
    assert err.type == "org.pyctrd1.Error.NoSuchContainer"
    assert not os.path.exists(f"/proc/{pid}")


async def test_image_import_and_remove_signals(bus, daemon, make_variant_tar):
    rec = await bus.recorder()
    before = await bus.manager_prop("ImageCount")
    fd = os.open(make_variant_tar("signals"), os.O_RDONLY)
    try:
        image_id, path = await bus.manager("ImportImage", "hs", [0, "variant-signals"], [fd])
    finally:
        os.close(fd)
    assert path == f"/org/pyctrd1/image/{image_id}"
    assert image_id != daemon.image_id
    added = await rec.wait_for(lambda m: m.member == "InterfacesAdded" and m.body[0] == path)
    assert added.body[1][IMAGE]["Reference"].value == "variant-signals"
    await rec.wait_for(lambda m: m.member == "ImageAdded" and m.body == [image_id, path])
    assert await bus.manager_prop("ImageCount") == before + 1
    assert await bus.get_property(path, IMAGE, "Reference") == "variant-signals"

    await bus.call(path, IMAGE, "Remove", "b", [False])
    await rec.wait_for(lambda m: m.member == "InterfacesRemoved" and m.body[0] == path)
    await rec.wait_for(lambda m: m.member == "ImageRemoved" and m.body == [image_id, path])
    assert await bus.manager_prop("ImageCount") == before
    err = await bus.fails(bus.manager("GetImage", "s", ["variant-signals"]))
    assert err.type == "org.pyctrd1.Error.NoSuchImage"
    # the shared image is untouched
    (still,) = await bus.manager("GetImage", "s", ["busybox"])
    assert still == daemon.image_path


async def test_concurrent_starts(bus):
    paths = await asyncio.gather(*(bus.create(COOPERATIVE) for _ in range(5)))
    assert len(set(paths)) == 5
    await asyncio.gather(*(bus.ctr(p, "Start") for p in paths))
    states = await asyncio.gather(*(bus.state(p) for p in paths))
    assert states == ["running"] * 5
    pids = await asyncio.gather(*(bus.prop(p, "PID") for p in paths))
    assert len(set(pids)) == 5 and all(p > 0 for p in pids)
    await asyncio.gather(*(bus.ctr(p, "Stop", "u", [5]) for p in paths))
    codes = await asyncio.gather(*(bus.prop(p, "ExitCode") for p in paths))
    assert codes == [0] * 5


async def test_stop_and_wait_from_three_clients(bus, daemon, client_factory):
    path = await bus.run_cooperative()
    clients = [await client_factory(daemon.bus_address) for _ in range(3)]

    async def stop(client):
        try:
            await client.ctr(path, "Stop", "u", [5], timeout=30)
            return "ok"
        except DBusError as err:
            return err

    results = await asyncio.gather(*(stop(c) for c in clients),
                                   *(c.ctr(path, "Wait", timeout=30) for c in clients))
    stops, waits = results[:3], results[3:]
    assert waits == [[0], [0], [0]]
    assert "ok" in stops
    for result in stops:
        if result != "ok":
            # a Stop that came second finds the container exited
            assert result.type == "org.pyctrd1.Error.InvalidState", result
            assert "exited" in result.text
    assert await bus.state(path) == "exited"
    assert await bus.prop(path, "ExitCode") == 0
