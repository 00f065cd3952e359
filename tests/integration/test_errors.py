"""Every error of the contract: the exact D-Bus name, and nothing changed after it."""

import os

import pytest
from dbus_fast import Variant

MANAGER_PATH = "/org/pyctrd1"
CONTAINER = "org.pyctrd1.Container"
E = "org.pyctrd1.Error."
COOPERATIVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]


async def snapshot(bus):
    """What a failed call must not change: the objects and their properties."""
    (objects,) = await bus.call(MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                                "GetManagedObjects")
    counts = (await bus.manager_prop("ContainerCount"), await bus.manager_prop("ImageCount"))
    return counts, {path: {iface: {k: v.value for k, v in props.items()}
                           for iface, props in ifaces.items()}
                    for path, ifaces in objects.items()}


def assert_one_line(err):
    assert err.text, "an error without a message"
    assert "\n" not in err.text.strip()
    assert "Traceback" not in err.text


async def test_no_such_container(bus):
    before = await snapshot(bus)
    for name in ("nosuch", "0" * 64, "fffffffffffffffffffff", "no such name"):
        err = await bus.fails(bus.manager("GetContainer", "s", [name]))
        assert err.type == E + "NoSuchContainer", name
        assert_one_line(err)
    err = await bus.fails(bus.manager("RemoveContainer", "sb", ["nosuch", True]))
    assert err.type == E + "NoSuchContainer"
    assert await snapshot(bus) == before


async def test_no_such_image(bus):
    before = await snapshot(bus)
    for ref in ("nosuch", "nosuch:latest", "0" * 64):
        err = await bus.fails(bus.manager("GetImage", "s", [ref]))
        assert err.type == E + "NoSuchImage", ref
        assert_one_line(err)
    err = await bus.fails(bus.manager("CreateContainer", "sasa{sv}",
                                      ["nosuch", ["true"], {}]))
    assert err.type == E + "NoSuchImage"
    err = await bus.fails(bus.manager("RemoveImage", "sb", ["nosuch", True]))
    assert err.type == E + "NoSuchImage"
    assert await snapshot(bus) == before


async def test_ambiguous_id(bus):
    # IDs are random: make containers until two share their first hex digit
    # (at most 17 by the pigeonhole principle).
    firsts: dict[str, str] = {}
    prefix = None
    for _ in range(20):
        path = await bus.create(["true"])
        cid = path.rsplit("/", 1)[1]
        (listed,) = await bus.manager("ListContainers")
        firsts = {}
        for row in listed:
            if row[0][0] in firsts:
                prefix = row[0][0]
                break
            firsts[row[0][0]] = row[0]
        if prefix:
            break
    assert prefix, "no two containers share a first hex digit"
    before = await snapshot(bus)
    err = await bus.fails(bus.manager("GetContainer", "s", [prefix]))
    assert err.type == E + "AmbiguousId"
    assert_one_line(err)
    err = await bus.fails(bus.manager("RemoveContainer", "sb", [prefix, True]))
    assert err.type == E + "AmbiguousId"
    assert await snapshot(bus) == before
    # a full ID still resolves
    (found,) = await bus.manager("GetContainer", "s", [cid])
    assert found.endswith(cid)


async def test_duplicate_name(bus):
    path = await bus.create(["true"], name="dup-name")
    before = await snapshot(bus)
    err = await bus.fails(bus.create(["true"], name="dup-name"))
    assert err.type == E + "Exists"
    assert "dup-name" in err.text
    assert_one_line(err)
    assert await snapshot(bus) == before
    (found,) = await bus.manager("GetContainer", "s", ["dup-name"])
    assert found == path


async def test_pause_configured_is_invalid_state(bus):
    path = await bus.create(["true"])
    before = await snapshot(bus)
    err = await bus.fails(bus.ctr(path, "Pause"))
    assert err.type == E + "InvalidState"
    assert "configured" in err.text
    assert "running" in err.text  # the state Pause needs
    assert_one_line(err)
    for member in ("Unpause", "Kill"):
        body = [["SIGTERM"]] if member == "Kill" else [[]]
        sig = "s" if member == "Kill" else ""
        err = await bus.fails(bus.ctr(path, member, sig, *body))
        assert err.type == E + "InvalidState", member
        assert "configured" in err.text
    err = await bus.fails(bus.ctr(path, "Stop", "u", [1]))
    assert err.type == E + "InvalidState"
    assert await snapshot(bus) == before


async def test_unmount_running_is_invalid_state(bus):
    path = await bus.run_cooperative()
    mountpoint = await bus.prop(path, "Mountpoint")
    assert os.path.ismount(mountpoint)
    err = await bus.fails(bus.ctr(path, "Unmount"))
    assert err.type == E + "InvalidState"
    assert "running" in err.text
    assert_one_line(err)
    assert await bus.state(path) == "running"
    assert await bus.prop(path, "Mounted") is True
    assert os.path.ismount(mountpoint)
    err = await bus.fails(bus.ctr(path, "Remove", "b", [False]))
    assert err.type == E + "InvalidState"
    err = await bus.fails(bus.ctr(path, "Init"))
    assert err.type == E + "InvalidState"
    err = await bus.fails(bus.ctr(path, "Start"))
    assert err.type == E + "InvalidState"
    assert await bus.state(path) == "running"

    await bus.ctr(path, "Pause")
    err = await bus.fails(bus.ctr(path, "Unmount"))
    assert err.type == E + "InvalidState"
    assert "paused" in err.text
    err = await bus.fails(bus.ctr(path, "Pause"))
    assert err.type == E + "InvalidState"
    assert await bus.state(path) == "paused"
    # Stop on a paused container thaws and stops it
    await bus.ctr(path, "Stop", "u", [5])
    assert await bus.state(path) == "exited"
    assert await bus.prop(path, "ExitCode") == 0


async def test_kill_exited_is_invalid_state(bus):
    path = await bus.create(["true"])
    await bus.ctr(path, "Start")
    assert (await bus.ctr(path, "Wait"))[0] == 0
    before = await bus.get_all(path, CONTAINER)
    err = await bus.fails(bus.ctr(path, "Kill", "s", ["SIGKILL"]))
    assert err.type == E + "InvalidState"
    assert "exited" in err.text
    assert_one_line(err)
    for member in ("Pause", "Unpause"):
        err = await bus.fails(bus.ctr(path, member))
        assert err.type == E + "InvalidState"
    err = await bus.fails(bus.ctr(path, "Stop", "u", [0]))
    assert err.type == E + "InvalidState"
    after = await bus.get_all(path, CONTAINER)
    # the cleanup after exit may release the storage meanwhile; nothing else moves
    for key in ("Mounted", "Mountpoint"):
        before.pop(key)
        after.pop(key)
    assert after == before


@pytest.mark.parametrize(("options", "word"), [
    ({"bogus": Variant("s", "x")}, "bogus"),
    ({"stop_timeout": Variant("s", "10")}, "stop_timeout"),
    ({"name": Variant("u", 5)}, "name"),
    ({"env": Variant("s", "A=B")}, "env"),
    ({"labels": Variant("as", ["a=b"])}, "labels"),
    ({"stop_signal": Variant("b", True)}, "stop_signal"),
    ({"name": Variant("s", "-bad name")}, "-bad name"),
    ({"name": Variant("s", "a/b")}, "a/b"),
    ({"env": Variant("as", ["NOEQUALS"])}, "NOEQUALS"),
    ({"env": Variant("as", ["=value"])}, "=value"),
    ({"stop_signal": Variant("s", "SIGBOGUS")}, "SIGBOGUS"),
    # "bridge" is the default network now (issue 15): ports need one
    ({"network": Variant("s", "none"), "ports": Variant("a(sqqs)", [["", 80, 80, "tcp"]])},
     "bridge"),
    ({"workdir": Variant("s", "relative/dir")}, "relative/dir"),
    ({"user": Variant("s", "nosuchuser")}, "nosuchuser"),
    ({"mounts": Variant("a(sss)", [["rel/ative", "/mnt", "ro"]])}, "rel/ative"),
    ({"mounts": Variant("a(sss)", [["/tmp", "/mnt", "bogusopt"]])}, "bogusopt"),
])
async def test_bad_options_are_invalid_argument(bus, options, word):
    before = await snapshot(bus)
    err = await bus.fails(bus.manager("CreateContainer", "sasa{sv}",
                                      ["busybox", ["true"], options]))
    assert err.type == E + "InvalidArgument"
    assert word in err.text
    assert_one_line(err)
    assert await snapshot(bus) == before


async def test_import_non_tar_is_invalid_argument(bus, daemon, tmp_path):
    before = await snapshot(bus)
    layers = sorted(os.listdir(daemon.root / "layers"))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"this is not a tar archive\n" * 1000)
    for content in (junk, None):
        if content is None:
            junk.write_bytes(b"")
        fd = os.open(junk, os.O_RDONLY)
        try:
            err = await bus.fails(bus.manager("ImportImage", "hs", [0, "junk"], [fd]))
        finally:
            os.close(fd)
        assert err.type == E + "InvalidArgument"
        assert_one_line(err)
    assert await snapshot(bus) == before
    assert sorted(os.listdir(daemon.root / "layers")) == layers
    assert os.listdir(daemon.root / "tmp") == []


async def test_import_bad_reference_is_invalid_argument(bus, busybox_tar):
    before = await snapshot(bus)
    fd = os.open(busybox_tar, os.O_RDONLY)
    try:
        err = await bus.fails(bus.manager("ImportImage", "hs", [0, "bad reference!"], [fd]))
    finally:
        os.close(fd)
    assert err.type == E + "InvalidArgument"
    assert await snapshot(bus) == before


async def test_remove_image_in_use(bus, make_variant_tar):
    fd = os.open(make_variant_tar("inuse"), os.O_RDONLY)
    try:
        image_id, image_path = await bus.manager("ImportImage", "hs", [0, "variant-inuse"],
                                                 [fd])
    finally:
        os.close(fd)
    path = await bus.create(["true"], image="variant-inuse", name="uses-variant")
    before = await snapshot(bus)
    err = await bus.fails(bus.manager("RemoveImage", "sb", ["variant-inuse", False]))
    assert err.type == E + "InUse"
    assert "uses-variant" in err.text
    assert_one_line(err)
    err = await bus.fails(bus.call(image_path, "org.pyctrd1.Image", "Remove", "b", [False]))
    assert err.type == E + "InUse"
    assert await snapshot(bus) == before

    images_before = await bus.manager_prop("ImageCount")
    containers_before = await bus.manager_prop("ContainerCount")
    await bus.manager("RemoveImage", "sb", [image_id, True])
    err = await bus.fails(bus.manager("GetContainer", "s", ["uses-variant"]))
    assert err.type == E + "NoSuchContainer"
    err = await bus.fails(bus.manager("GetImage", "s", ["variant-inuse"]))
    assert err.type == E + "NoSuchImage"
    assert await bus.manager_prop("ImageCount") == images_before - 1
    assert await bus.manager_prop("ContainerCount") == containers_before - 1
    (_, objects) = await snapshot(bus)
    assert path not in objects and image_path not in objects


async def test_nonexistent_command_is_runtime_failed(bus):
    path = await bus.create(["/nonexistent"])
    err = await bus.fails(bus.ctr(path, "Start"))
    assert err.type == E + "RuntimeFailed"
    assert "/nonexistent" in err.text
    assert "no such file or directory" in err.text.lower()
    assert_one_line(err)
    state = await bus.state(path)
    assert state in ("configured", "created", "exited"), state
    assert await bus.prop(path, "PID") == 0
    # nothing holds it: it can be removed without force
    await bus.ctr(path, "Remove", "b", [False])
    err = await bus.fails(bus.manager("GetContainer", "s", [path.rsplit("/", 1)[1]]))
    assert err.type == E + "NoSuchContainer"


async def test_export_to_unwritable_fd(bus):
    # Export into a read-only fd: tar cannot write; StorageFailed, and no mount left
    path = await bus.create(["true"])
    r, w = os.pipe()
    os.close(w)
    try:
        err = await bus.fails(bus.ctr(path, "Export", "h", [0], [r]))
    finally:
        os.close(r)
    assert err.type == E + "StorageFailed"
    assert_one_line(err)
    assert await bus.prop(path, "Mounted") is False
    assert await bus.state(path) == "configured"


async def test_mount_label_that_cannot_be_applied_is_invalid_argument(bus):
    path = await bus.create(["true"])
    before = await snapshot(bus)
    err = await bus.fails(bus.ctr(path, "Mount", "s", ["system_u:object_r:container_file_t:s0"]))
    assert err.type == E + "InvalidArgument"
    assert "mount_label" in err.text
    assert_one_line(err)
    assert await bus.prop(path, "Mounted") is False
    assert await snapshot(bus) == before


async def test_option_values_are_checked_when_the_call_is_made(bus):
    before = await snapshot(bus)
    for options, word in (({"cpu_quota": Variant("d", float("nan"))}, "cpu_quota"),
                          ({"cpu_quota": Variant("d", -1.0)}, "cpu_quota")):
        err = await bus.fails(bus.manager("CreateContainer", "sasa{sv}",
                                          ["busybox", ["true"], options]))
        assert err.type == E + "InvalidArgument"
        assert word in err.text
        assert_one_line(err)
    assert await snapshot(bus) == before
