"""The image store through the bus: shared layers, references, config defaults, refusals."""

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from .test_images import IMAGE

E = "org.pyctrd1.Error."


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_of(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in entries:
            if isinstance(item, tarfile.TarInfo):
                tar.addfile(item)
            else:
                info = tarfile.TarInfo(item[0])
                info.size, info.mode = len(item[1]), 0o644
                tar.addfile(info, io.BytesIO(item[1]))
    return out.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def oci_archive(out: Path, layers: list[bytes], **config) -> Path:
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict:
        blobs[f"blobs/sha256/{sha(data)}"] = data
        return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": f"sha256:{sha(data)}", "size": len(data)}

    descs = [blob(gzip.compress(b, mtime=0)) for b in layers]
    cfg = blob(json.dumps({"os": "linux", "config": config, "rootfs": {
        "type": "layers", "diff_ids": [f"sha256:{sha(b)}" for b in layers]}}).encode())
    manifest = blob(json.dumps({"schemaVersion": 2, "config": cfg, "layers": descs}).encode())
    out.write_bytes(tar_of([*blobs.items(), ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                            ("index.json", json.dumps({"schemaVersion": 2,
                                                       "manifests": [manifest]}).encode())]))
    return out


def docker_archive(out: Path, layers: list[bytes], **config) -> Path:
    cfg = json.dumps({"os": "linux", "config": config, "rootfs": {
        "type": "layers", "diff_ids": [f"sha256:{sha(b)}" for b in layers]}}).encode()
    files = [(f"{sha(cfg)}.json", cfg), *((f"{sha(b)}.tar", b) for b in layers),
             ("manifest.json", json.dumps([{"Config": f"{sha(cfg)}.json", "RepoTags": [],
                                            "Layers": [f"{sha(b)}.tar" for b in layers]}]
                                          ).encode())]
    out.write_bytes(tar_of(files))
    return out


def layer_dirs(daemon) -> set[str]:
    return set(os.listdir(daemon.root / "layers"))


async def test_layers_are_shared_and_freed_with_their_last_image(bus, daemon, busybox_tar,
                                                                 tmp_path):
    base = busybox_tar.read_bytes()  # the daemon's busybox image is this one layer
    top_a = tar_of([("etc/a", b"a\n")])
    top_b = tar_of([("etc/b", b"b\n")])
    before = layer_dirs(daemon)
    inode = os.lstat(daemon.root / "layers" / sha(base) / "diff/bin/busybox").st_ino
    a_id, a_path = await bus.import_image(oci_archive(tmp_path / "a.tar", [base, top_a],
                                                      Cmd=["cat", "/etc/a"]), "share-a")
    b_id, b_path = await bus.import_image(docker_archive(tmp_path / "b.tar", [base, top_b],
                                                         Cmd=["cat", "/etc/b"]), "share-b")
    assert a_id != b_id
    assert layer_dirs(daemon) == before | {sha(top_a), sha(top_b)}
    assert os.lstat(daemon.root / "layers" / sha(base) / "diff/bin/busybox").st_ino == inode
    assert f"layer {sha(base)[:12]} is stored already" in daemon.log_path.read_text()
    for ref in ("share-a", "share-b"):
        path = await bus.create([], image=ref)
        await bus.ctr(path, "Start")
        assert (await bus.ctr(path, "Wait"))[0] == 0
        await bus.ctr(path, "Remove", "b", [False])

    await bus.call(a_path, IMAGE, "Remove", "b", [False])
    assert layer_dirs(daemon) == before | {sha(top_b)}
    await bus.call(b_path, IMAGE, "Remove", "b", [False])
    assert layer_dirs(daemon) == before
    assert (daemon.root / "layers" / sha(base) / "diff/bin/busybox").is_file()
    assert os.listdir(daemon.root / "tmp") == []


async def test_several_references_one_image(bus, tmp_path, busybox_tar):
    archive = oci_archive(tmp_path / "r.tar", [busybox_tar.read_bytes(),
                                               tar_of([("etc/r", b"r")])], Cmd=["true"])
    image_id, path = await bus.import_image(archive, "refs/one:1")
    assert (await bus.import_image(archive, "refs/two:2")) == (image_id, path)
    for ref in ("refs/one:1", "refs/two:2", image_id[:12]):
        assert (await bus.manager("GetImage", "s", [ref]))[0] == path
    assert await bus.get_property(path, IMAGE, "Reference") == "refs/two:2"
    (images,) = await bus.manager("ListImages")
    # one row per reference, the primary (latest given) first, as `podman images`
    assert [i[1] for i in images if i[0] == image_id] == ["refs/two:2", "refs/one:1"]
    # a reference given to another image moves; the other stays
    other = oci_archive(tmp_path / "o.tar", [tar_of([("x", b"x")])], Cmd=["true"])
    _, other_path = await bus.import_image(other, "refs/two:2")
    assert (await bus.manager("GetImage", "s", ["refs/two:2"]))[0] == other_path
    assert (await bus.manager("GetImage", "s", ["refs/one:1"]))[0] == path
    assert await bus.get_property(path, IMAGE, "Reference") == "refs/one:1"


async def test_image_config_defaults_and_overrides(bus, tmp_path, busybox_tar):
    passwd = (b"root:x:0:0:root:/root:/bin/sh\n"
              b"app:x:1234:1235::/home/app:/bin/sh\n")  # overrides busybox's app (1000)
    archive = oci_archive(tmp_path / "c.tar", [busybox_tar.read_bytes(),
                                               tar_of([("etc/passwd", passwd)])],
                          Entrypoint=["sh", "-c"], Cmd=['test "$(id -u):$(id -g)" = 1234:1235'],
                          User="app", StopSignal="SIGINT", Labels={"from": "image", "k": "v"},
                          Env=["PATH=/bin:/usr/bin", "A=image"])
    _, image_path = await bus.import_image(archive, "configured")
    assert await bus.get_property(image_path, IMAGE, "User") == "app"
    path = await bus.create([], image="configured")
    assert await bus.prop(path, "StopSignal") == 2
    assert await bus.prop(path, "Labels") == {"from": "image", "k": "v"}
    await bus.ctr(path, "Start")
    assert (await bus.ctr(path, "Wait"))[0] == 0  # ran as app from the top layer's passwd

    command = ["sh", "-c", 'test "$(id -u)" = 0 && test "$A" = option']
    path = await bus.create(command, image="configured", user="0", stop_signal="SIGTERM",
                            labels={"k": "option"}, env=["A=option"])
    assert await bus.prop(path, "StopSignal") == 15
    assert await bus.prop(path, "Labels") == {"from": "image", "k": "option"}
    assert await bus.prop(path, "Command") == command
    await bus.ctr(path, "Start")
    assert (await bus.ctr(path, "Wait"))[0] == 0


async def test_user_whited_out_in_the_top_layer_is_unknown(bus, tmp_path, busybox_tar):
    archive = oci_archive(tmp_path / "w.tar", [busybox_tar.read_bytes(),
                                               tar_of([("etc/.wh.passwd", b"")])],
                          Cmd=["true"])
    await bus.import_image(archive, "no-passwd")
    err = await bus.fails(bus.create(["true"], image="no-passwd", user="app"))
    assert err.type == E + "InvalidArgument"
    path = await bus.create(["true"], image="no-passwd", user="1000")
    await bus.ctr(path, "Start")
    assert (await bus.ctr(path, "Wait"))[0] == 0


# refusals: nothing stored, nothing written outside


def hostile_layers(outside: Path) -> dict[str, bytes]:
    return {
        "dotdot": tar_of([("etc/ok", b"ok"), ("../../../../escaped", b"pwned")]),
        "absolute": tar_of([(str(outside / "escaped"), b"pwned")]),
        "symlink": tar_of([link("etc/link", str(outside)), ("etc/link/escaped", b"pwned")]),
        "relative-symlink": tar_of([link("up", "../../../../../../../.."),
                                    ("up" + str(outside / "escaped"), b"pwned")]),
        "hardlink": tar_of([link("etc/stolen", str(outside / "victim"), tarfile.LNKTYPE)]),
        "hardlink-dotdot": tar_of([link("stolen", "../../../../../../../.."
                                        + str(outside / "victim"), tarfile.LNKTYPE)]),
    }


@pytest.mark.parametrize("trick", ["dotdot", "absolute", "symlink", "relative-symlink",
                                   "hardlink", "hardlink-dotdot"])
@pytest.mark.parametrize("form", ["rootfs", "oci", "docker"])
async def test_hostile_archive_is_refused(bus, daemon, tmp_path, busybox_tar, trick, form):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("original\n")
    layer = hostile_layers(outside)[trick]
    archive = tmp_path / "hostile.tar"
    if form == "rootfs":
        archive.write_bytes(layer)
    elif form == "oci":
        oci_archive(archive, [busybox_tar.read_bytes(), layer], Cmd=["true"])
    else:
        docker_archive(archive, [busybox_tar.read_bytes(), layer], Cmd=["true"])
    images = await bus.manager_prop("ImageCount")
    before = layer_dirs(daemon)
    err = await bus.fails(bus.import_image(archive, "hostile"))
    assert err.type == E + "InvalidArgument", err.text
    assert await bus.manager_prop("ImageCount") == images
    assert layer_dirs(daemon) == before
    assert os.listdir(daemon.root / "tmp") == []
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_text() == "original\n"
    assert os.lstat(outside / "victim").st_nlink == 1
    assert not (daemon.root / "escaped").exists() and not (tmp_path / "escaped").exists()


async def test_corrupt_layer_digest_is_refused(bus, daemon, tmp_path, busybox_tar):
    archive = oci_archive(tmp_path / "bad.tar", [busybox_tar.read_bytes(),
                                                 tar_of([("etc/x", b"x" * 4000)])])
    data = bytearray(archive.read_bytes())
    # flip a byte inside the gzip data of the small layer (after its name's header)
    with tarfile.open(archive) as tar:
        member = max((m for m in tar.getmembers() if m.name.startswith("blobs/")
                      and 100 < m.size < 1000), key=lambda m: m.offset_data)
    data[member.offset_data + member.size // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    before = layer_dirs(daemon)
    err = await bus.fails(bus.import_image(archive, "corrupt"))
    assert err.type == E + "InvalidArgument"
    assert layer_dirs(daemon) == before
    assert os.listdir(daemon.root / "tmp") == []
