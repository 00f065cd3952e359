"""ImportImage: the archive formats of the contract, re-imports and references."""

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

IMAGE = "org.pyctrd1.Image"
IMAGE_CONFIG = {
    "Entrypoint": ["sh", "-c"],
    "Cmd": ['echo "$FROM_IMAGE $(pwd)" > /tmp/out; exit 4'],
    "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=yes"],
    "WorkingDir": "/home/app",
}


def tar_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def layers(busybox_tar: Path) -> list[bytes]:
    """The busybox rootfs, then a layer that adds /etc/layer2 and deletes /etc/hostname."""
    top = tar_bytes({"etc/layer2": b"second layer\n", "etc/.wh.hostname": b""})
    return [busybox_tar.read_bytes(), top]


def image_config(layer_blobs: list[bytes]) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": IMAGE_CONFIG,
        "rootfs": {"type": "layers",
                   "diff_ids": [f"sha256:{hashlib.sha256(b).hexdigest()}"
                                for b in layer_blobs]},
    }).encode()


def oci_archive(busybox_tar: Path, out: Path) -> Path:
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        blobs[f"blobs/sha256/{digest}"] = data
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    layer_blobs = layers(busybox_tar)
    layer_descs = [blob(gzip.compress(b, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
                   for b in layer_blobs]
    config = blob(image_config(layer_blobs), "application/vnd.oci.image.config.v1+json")
    manifest = blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": layer_descs}).encode(),
        "application/vnd.oci.image.manifest.v1+json")
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps({"schemaVersion": 2, "manifests": [manifest]}).encode(),
        **blobs,
    }
    out.write_bytes(tar_bytes(files))
    return out


def docker_archive(busybox_tar: Path, out: Path) -> Path:
    layer_blobs = layers(busybox_tar)
    config = image_config(layer_blobs)
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    files: dict[str, bytes] = {config_name: config}
    layer_names = []
    for data in layer_blobs:
        name = f"{hashlib.sha256(data).hexdigest()}/layer.tar"
        files[name] = data
        layer_names.append(name)
    files["manifest.json"] = json.dumps([{"Config": config_name,
                                          "RepoTags": ["docker.io/library/test:latest"],
                                          "Layers": layer_names}]).encode()
    out.write_bytes(tar_bytes(files))
    return out


async def check_layered_image(bus, image_id, image_path, reference):
    props = await bus.get_all(image_path, IMAGE)
    assert props["Id"] == image_id
    assert props["Reference"] == reference
    assert props["Entrypoint"] == IMAGE_CONFIG["Entrypoint"]
    assert props["Cmd"] == IMAGE_CONFIG["Cmd"]
    assert "FROM_IMAGE=yes" in props["Env"]
    assert props["WorkingDir"] == "/home/app"
    assert len(props["Layers"]) == 2

    path = await bus.create([], image=reference)
    assert await bus.prop(path, "Command") == [*IMAGE_CONFIG["Entrypoint"],
                                               *IMAGE_CONFIG["Cmd"]]
    (mountpoint,) = await bus.ctr(path, "Mount", "s", [""])
    root = Path(mountpoint)
    assert (root / "bin/busybox").is_file()
    assert (root / "etc/layer2").read_text() == "second layer\n"
    assert not (root / "etc/hostname").exists(), "the whiteout was not applied"
    assert not (root / "index.json").exists() and not (root / "manifest.json").exists()
    await bus.ctr(path, "Unmount")
    await bus.ctr(path, "Start")
    (code,) = await bus.ctr(path, "Wait")
    assert code == 4
    (mountpoint,) = await bus.ctr(path, "Mount", "s", [""])
    assert Path(mountpoint, "tmp/out").read_text() == "yes /home/app\n"
    await bus.ctr(path, "Unmount")


async def test_import_oci_archive(bus, busybox_tar, tmp_path):
    archive = oci_archive(busybox_tar, tmp_path / "oci.tar")
    image_id, image_path = await bus.import_image(archive, "oci-test")
    await check_layered_image(bus, image_id, image_path, "oci-test")


async def test_import_docker_archive(bus, busybox_tar, tmp_path):
    archive = docker_archive(busybox_tar, tmp_path / "docker.tar")
    image_id, image_path = await bus.import_image(archive, "docker-test")
    await check_layered_image(bus, image_id, image_path, "docker-test")


async def test_import_compressed_rootfs(bus, make_variant_tar, tmp_path):
    plain = make_variant_tar("compressed")
    for suffix, argv in ((".gz", ["gzip", "-c"]), (".zst", ["zstd", "-q", "-c"]),
                         (".xz", ["xz", "-c"])):
        archive = tmp_path / f"rootfs.tar{suffix}"
        with open(archive, "wb") as out:
            subprocess.run([*argv, str(plain)], stdout=out, check=True)
        before = await bus.manager_prop("ImageCount")
        image_id, image_path = await bus.import_image(archive, f"compressed{suffix[1:]}")
        assert await bus.manager_prop("ImageCount") == before + 1
        assert await bus.get_property(image_path, IMAGE, "Size") > 100_000
        path = await bus.create(["cat", "/etc/variant-compressed"],
                                image=f"compressed{suffix[1:]}")
        await bus.ctr(path, "Start")
        assert (await bus.ctr(path, "Wait"))[0] == 0
        await bus.manager("RemoveImage", "sb", [image_id, True])


async def test_reimport_is_the_same_image(bus, make_variant_tar):
    archive = make_variant_tar("twice")
    image_id, image_path = await bus.import_image(archive, "twice")
    count = await bus.manager_prop("ImageCount")
    again_id, again_path = await bus.import_image(archive, "twice")
    assert (again_id, again_path) == (image_id, image_path)
    assert await bus.manager_prop("ImageCount") == count


async def test_reimport_under_a_new_reference_announces_it(bus, make_variant_tar):
    archive = make_variant_tar("renamed")
    image_id, image_path = await bus.import_image(archive, "first-name")
    rec = await bus.recorder()
    again_id, _ = await bus.import_image(archive, "second-name")
    assert again_id == image_id
    assert await bus.get_property(image_path, IMAGE, "Reference") == "second-name"
    (found,) = await bus.manager("GetImage", "s", ["second-name"])
    assert found == image_path
    # the property changed: PropertiesChanged must say so (API.md)
    await rec.wait_property(image_path, "Reference", "second-name", iface=IMAGE, timeout=2)


async def test_reference_moving_to_another_image_announces_it(bus, make_variant_tar):
    old_id, old_path = await bus.import_image(make_variant_tar("move-a"), "moving")
    rec = await bus.recorder()
    new_id, new_path = await bus.import_image(make_variant_tar("move-b"), "moving")
    assert new_id != old_id
    (found,) = await bus.manager("GetImage", "s", ["moving"])
    assert found == new_path
    assert await bus.get_property(old_path, IMAGE, "Reference") == ""
    await rec.wait_property(old_path, "Reference", "", iface=IMAGE, timeout=2)


async def test_empty_reference_names_no_image(bus, make_variant_tar):
    image_id, _ = await bus.import_image(make_variant_tar("unnamed"), "")
    (images,) = await bus.manager("ListImages")
    assert [i[1] for i in images if i[0] == image_id] == [""]
    err = await bus.fails(bus.manager("GetImage", "s", [""]))
    assert err.type == "org.pyctrd1.Error.NoSuchImage"


async def test_image_remove_refuses_in_use_and_layers_go(bus, daemon, make_variant_tar):
    image_id, image_path = await bus.import_image(make_variant_tar("layers"), "layers")
    layer_dir = daemon.root / "layers" / image_id
    assert layer_dir.is_dir()
    path = await bus.create(["true"], image="layers")
    err = await bus.fails(bus.call(image_path, IMAGE, "Remove", "b", [False]))
    assert err.type == "org.pyctrd1.Error.InUse"
    assert layer_dir.is_dir()
    await bus.ctr(path, "Remove", "b", [False])
    await bus.call(image_path, IMAGE, "Remove", "b", [False])
    assert not layer_dir.exists()
    assert not os.path.exists(layer_dir)


async def test_second_reference_is_a_tag_and_removing_it_untags(bus, busybox_tar, daemon):
    assert (daemon.root / "layers" / daemon.image_id / "diff/bin/busybox").is_file()
    image_id, _ = await bus.import_image(busybox_tar, "bb-second-tag")
    assert image_id == daemon.image_id  # same content: the same image, one more reference
    bus.imported.remove(image_id)  # the shared busybox image: the client must not remove it
    (rows,) = await bus.manager("ListImages")
    references = {ref for iid, ref, _size, _path in rows if iid == image_id}
    assert {"busybox", "bb-second-tag"} <= references

    await bus.manager("RemoveImage", "sb", ["bb-second-tag", False])
    (rows,) = await bus.manager("ListImages")
    references = {ref for iid, ref, _size, _path in rows if iid == image_id}
    assert "bb-second-tag" not in references and "busybox" in references
    (path,) = await bus.manager("GetImage", "s", ["busybox"])
    assert path == daemon.image_path
    err = await bus.fails(bus.manager("GetImage", "s", ["bb-second-tag"]))
    assert err.type == "org.pyctrd1.Error.NoSuchImage"
    assert (daemon.root / "layers" / daemon.image_id / "diff/bin/busybox").is_file()
