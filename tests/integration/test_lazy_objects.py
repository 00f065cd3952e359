"""Container objects exported on first use still behave as exported objects.

After a restart no container object is exported until someone calls it; the
tree, introspection, properties, methods and GetManagedObjects must not tell.
"""

import xml.etree.ElementTree as ET

from conftest import CONTAINER, container_id

OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"


async def introspect(bus, path: str) -> ET.Element:
    (xml,) = await bus.call(path, INTROSPECTABLE, "Introspect")
    return ET.fromstring(xml)


async def test_objects_after_restart_are_there_before_first_use(fresh_daemon, client_factory):
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    paths = [await bus.create(["true"], name=f"lazy{i}") for i in range(3)]
    d.sigterm()
    d.start()
    bus = await client_factory(d.bus_address)

    root = await introspect(bus, "/org/pyctrd1")
    assert "container" in {n.get("name") for n in root.findall("node")}
    listed = await introspect(bus, "/org/pyctrd1/container")
    assert {n.get("name") for n in listed.findall("node")} == {container_id(p) for p in paths}

    (objects,) = await bus.call("/org/pyctrd1", OBJECT_MANAGER, "GetManagedObjects")
    for p in paths:
        assert objects[p][CONTAINER]["State"].value == "configured"

    # the first call of each kind on a never-touched object
    node = await introspect(bus, paths[0])
    assert CONTAINER in {i.get("name") for i in node.findall("interface")}
    assert (await bus.get_all(paths[1], CONTAINER))["Name"] == "lazy1"
    rec = await bus.recorder()
    await bus.ctr(paths[2], "Start")
    assert (await bus.ctr(paths[2], "Wait"))[0] == 0
    await rec.wait_property(paths[2], "State", "exited")

    # GetManagedObjects follows the change (its cached entry was dropped)
    (objects,) = await bus.call("/org/pyctrd1", OBJECT_MANAGER, "GetManagedObjects")
    assert objects[paths[2]][CONTAINER]["State"].value == "exited"
    assert objects[paths[0]][CONTAINER]["State"].value == "configured"


UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
PROPERTIES = "org.freedesktop.DBus.Properties"


def calls_on(bus, path: str, iface: str) -> list:
    """A method, a property read, GetAll and introspection on ``path``."""
    return [bus.call(path, iface, "Remove", "b", [False]),
            bus.call(path, PROPERTIES, "Get", "ss", [iface, "Id"]),
            bus.call(path, PROPERTIES, "GetAll", "s", [iface]),
            bus.call(path, INTROSPECTABLE, "Introspect")]


async def test_unknown_paths_are_unknown_object(bus):
    for path, iface in (("/org/pyctrd1/container/" + "0" * 64, CONTAINER),
                        ("/org/pyctrd1/container/nosuch", CONTAINER),
                        ("/org/pyctrd1/image/" + "0" * 64, "org.pyctrd1.Image"),
                        ("/org/pyctrd1/nosuch", CONTAINER)):
        for call in calls_on(bus, path, iface):
            err = await bus.fails(call)
            assert err.type == UNKNOWN_OBJECT, (path, err.type, err.text)
            assert path in err.text
    err = await bus.fails(bus.call("/org/pyctrd1/container/" + "0" * 64, CONTAINER, "Start"))
    assert err.type == UNKNOWN_OBJECT
    # Peer answers on any path, as in sd-bus
    await bus.call("/org/pyctrd1/nosuch", "org.freedesktop.DBus.Peer", "Ping")


async def test_removed_paths_are_unknown_object(bus, make_variant_tar):
    path = await bus.create(["true"])
    await bus.get_all(path, CONTAINER)  # exported now
    await bus.ctr(path, "Remove", "b", [False])
    for call in calls_on(bus, path, CONTAINER):
        assert (await bus.fails(call)).type == UNKNOWN_OBJECT
    err = await bus.fails(bus.ctr(path, "Start"))
    assert err.type == UNKNOWN_OBJECT

    with open(make_variant_tar("unknown-object"), "rb") as tar:
        _id, image = await bus.manager("ImportImage", "hs", [0, "variant-unknown-object"],
                                       [tar.fileno()])
    await bus.call(image, "org.pyctrd1.Image", "Remove", "b", [False])
    for call in calls_on(bus, image, "org.pyctrd1.Image"):
        assert (await bus.fails(call)).type == UNKNOWN_OBJECT


async def test_created_and_removed_objects_in_managed_objects(bus):
    path = await bus.create(["true"])
    (objects,) = await bus.call("/org/pyctrd1", OBJECT_MANAGER, "GetManagedObjects")
    assert path in objects
    await bus.ctr(path, "Remove", "b", [False])
    (objects,) = await bus.call("/org/pyctrd1", OBJECT_MANAGER, "GetManagedObjects")
    assert path not in objects
    listed = await introspect(bus, "/org/pyctrd1/container")
    assert container_id(path) not in {n.get("name") for n in listed.findall("node")}
