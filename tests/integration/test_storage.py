"""Mount, Unmount, Export and Remove: real overlay mounts and what they hold."""

import os
import tarfile
from pathlib import Path

CONTAINER = "org.pyctrd1.Container"


def mountinfo_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


async def test_mount_configured_container(bus, daemon):
    path = await bus.create(["true"])
    cid = path.rsplit("/", 1)[1]
    assert await bus.prop(path, "Mounted") is False
    assert await bus.prop(path, "Mountpoint") == ""
    (mountpoint,) = await bus.ctr(path, "Mount", "s", [""])
    assert os.path.ismount(mountpoint)
    assert mountpoint.startswith(str(daemon.root))
    assert cid in mountpoint
    assert os.path.isfile(os.path.join(mountpoint, "bin/busybox"))
    assert os.path.islink(os.path.join(mountpoint, "bin/sh"))
    assert Path(mountpoint, "etc/hostname").read_text() == "busybox\n"
    assert await bus.prop(path, "Mounted") is True
    assert await bus.prop(path, "Mountpoint") == mountpoint
    assert mountpoint in mountinfo_points()

    # Mount again: the same place, still one mount
    (again,) = await bus.ctr(path, "Mount", "s", [""])
    assert again == mountpoint
    assert mountinfo_points().count(mountpoint) == 1

    await bus.ctr(path, "Unmount")
    assert not os.path.ismount(mountpoint)
    assert mountpoint not in mountinfo_points()
    assert await bus.prop(path, "Mounted") is False
    assert await bus.prop(path, "Mountpoint") == ""
    assert await bus.state(path) == "configured"


async def test_written_file_mount_export_remove(bus, daemon, tmp_path):
    path = await bus.create(["sh", "-c", "echo data > /out.txt"])
    cid = path.rsplit("/", 1)[1]
    await bus.ctr(path, "Start")
    (code,) = await bus.ctr(path, "Wait")
    assert code == 0

    (mountpoint,) = await bus.ctr(path, "Mount", "s", [""])
    assert os.path.ismount(mountpoint)
    assert Path(mountpoint, "out.txt").read_text() == "data\n"
    assert os.path.isfile(os.path.join(mountpoint, "bin/busybox"))
    # the image's layer itself is untouched
    assert not (daemon.root / "layers" / daemon.image_id / "diff" / "out.txt").exists()

    await bus.ctr(path, "Unmount")
    assert not os.path.ismount(mountpoint)
    assert await bus.prop(path, "Mounted") is False

    out = tmp_path / "export.tar"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        await bus.ctr(path, "Export", "h", [0], [fd])
    finally:
        os.close(fd)
    # Export of an unmounted container mounts it for the copy only
    assert not os.path.ismount(mountpoint)
    assert await bus.prop(path, "Mounted") is False
    with open(out, "rb") as f:
        assert f.read(262)[257:262] == b"ustar"  # uncompressed tar
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert "./out.txt" in names
        assert "./bin/busybox" in names
        member = tar.getmember("./out.txt")
        assert member.isfile()
        assert tar.extractfile(member).read() == b"data\n"
        busybox = tar.getmember("./bin/busybox")
        assert busybox.isfile() and busybox.size == os.path.getsize("/bin/busybox")
        assert tar.getmember("./bin/sh").issym()

    container_dir = daemon.root / "containers" / cid
    bundle = daemon.run_root / "containers" / cid
    assert container_dir.exists()
    await bus.ctr(path, "Remove", "b", [False])
    assert not container_dir.exists()
    assert not bundle.exists()
    assert not any(cid in point for point in mountinfo_points())


async def test_export_running_container(bus, tmp_path):
    # The first run writes the file and exits; the second keeps running.
    path = await bus.create(["sh", "-c", "[ -f /live.txt ] || { echo live > /live.txt; exit 0; }; "
                             "trap 'exit 0' TERM; while :; do sleep 0.1; done"])
    await bus.ctr(path, "Start")
    assert (await bus.ctr(path, "Wait"))[0] == 0
    await bus.ctr(path, "Start")
    assert await bus.state(path) == "running"
    mountpoint = await bus.prop(path, "Mountpoint")
    assert os.path.ismount(mountpoint)
    out = tmp_path / "live.tar"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        await bus.ctr(path, "Export", "h", [0], [fd])
    finally:
        os.close(fd)
    with tarfile.open(out) as tar:
        assert tar.extractfile("./live.txt").read() == b"live\n"
        assert "./bin/busybox" in tar.getnames()
    # exporting a running container leaves its rootfs mounted
    assert os.path.ismount(mountpoint)
    assert await bus.state(path) == "running"
    await bus.ctr(path, "Stop", "u", [5])
    assert await bus.prop(path, "ExitCode") == 0


async def test_storage_released_after_exit(bus, daemon):
    rec = await bus.recorder()
    path = await bus.create(["true"])
    cid = path.rsplit("/", 1)[1]
    await bus.ctr(path, "Start")
    mountpoint = await bus.prop(path, "Mountpoint")
    await bus.ctr(path, "Wait")
    await rec.wait_property(path, "Mounted", False)
    assert not os.path.ismount(mountpoint)
    assert not any(cid in point for point in mountinfo_points()), \
        "the rootfs or /dev/shm is still mounted after the exit"


async def test_user_mount_survives_run(bus):
    # A Mount made by the user is kept across a run and its exit
    rec = await bus.recorder()
    path = await bus.create(["sh", "-c", "echo run > /run.txt"])
    (mountpoint,) = await bus.ctr(path, "Mount", "s", [""])
    await bus.ctr(path, "Start")
    await bus.ctr(path, "Wait")
    await rec.wait_for(lambda m: m.member == "PropertiesChanged" and m.path == path
                       and m.body[1].get("State") is not None
                       and m.body[1]["State"].value == "exited")
    # The daemon releases storage after an exit in a task that holds the
    # container's lock; Kill takes the lock too (and fails: exited), so once it
    # has answered, that cleanup is over.
    err = await bus.fails(bus.ctr(path, "Kill", "s", ["9"]))
    assert err.type == "org.pyctrd1.Error.InvalidState"
    assert await bus.prop(path, "Mounted") is True
    assert os.path.ismount(mountpoint)
    assert Path(mountpoint, "run.txt").read_text() == "run\n"
    await bus.ctr(path, "Unmount")
    assert not os.path.ismount(mountpoint)
