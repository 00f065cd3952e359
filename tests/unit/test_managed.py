"""Pre-marshalled GetManagedObjects replies are byte-identical to dbus-fast's."""

from dbus_fast import Message, Variant

from pyctrd.bus.managed import SIGNATURE, ManagedObjects, RawReply

CALL = Message(destination=":1.1", path="/org/pyctrd1",
               interface="org.freedesktop.DBus.ObjectManager", member="GetManagedObjects",
               serial=7, sender=":1.2")


def objects(n: int, tag: str = "") -> dict:
    # odd string and array lengths, so entries end off an 8-byte boundary
    return {f"/o/{i}": {"a.B": {"S": Variant("s", tag + "x" * i), "T": Variant("t", i),
                                "L": Variant("as", ["q"] * i), "B": Variant("b", i % 2 == 0)},
                        "a.C": {}}
            for i in range(n)}


def reference(objs: dict, serial: int = 9) -> bytes:
    ref = Message.new_method_return(CALL, SIGNATURE, [objs])
    ref.serial = serial
    return bytes(ref._marshall(False))


def raw(managed: ManagedObjects, objs: dict, serial: int = 9) -> bytes:
    reply = RawReply(CALL, SIGNATURE, managed.body(
        (path, (lambda v=v: v)) for path, v in objs.items()))
    reply.serial = serial
    return reply._marshall()


def test_identical_to_dbus_fast_for_various_sizes():
    for n in (0, 1, 2, 3, 7):
        assert raw(ManagedObjects(), objects(n)) == reference(objects(n)), n


def test_cache_is_used_until_invalidated():
    managed = ManagedObjects()
    first = objects(3)
    assert raw(managed, first) == reference(first)
    changed = objects(3, tag="changed-")
    # nothing invalidated: the cached answer stands (the caller promises to invalidate)
    assert managed.cached_body() is not None
    managed.invalidate("/o/1")
    assert managed.cached_body() is None
    mixed = {**first, "/o/1": changed["/o/1"]}
    assert raw(managed, mixed) == reference(mixed)


def test_removed_object_leaves_the_answer():
    managed = ManagedObjects()
    objs = objects(4)
    raw(managed, objs)
    del objs["/o/2"]
    managed.invalidate("/o/2")
    assert raw(managed, objs) == reference(objs)
