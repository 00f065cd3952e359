"""pyctrd.storage.layers and imageformats: archives read into a shared, refcounted store."""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pyctrd.errors import InvalidArgument
from pyctrd.storage import imageformats
from pyctrd.storage.imageformats import ArchiveReader
from pyctrd.storage.layers import LayerStore, StagedLayer, write_meta


def tar_of(files: dict[str, bytes | str], prefix: str = "") -> bytes:
    """name → bytes (a file) or str (a symlink to it)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if prefix:
            info = tarfile.TarInfo(prefix)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            if isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zstd(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True,
                          check=True).stdout


LAYER1 = tar_of({"etc/passwd": b"root:x:0:0::/root:/bin/sh\n", "etc/hostname": b"one\n",
                 "bin/tool": b"x" * 70_000})
LAYER2 = tar_of({"etc/.wh.hostname": b"", "etc/layer2": b"two\n" * 20_000})


def config_for(layers: list[bytes], **cfg) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": cfg,
                       "rootfs": {"type": "layers",
                                  "diff_ids": [f"sha256:{sha(b)}" for b in layers]}}).encode()


def oci_archive(layers: list[bytes], *, compress=gzip.compress, config: bytes | None = None,
                tamper: dict[str, bytes] | None = None, prefix: str = "") -> bytes:
    """An OCI layout as a tar; ``tamper`` replaces the bytes of blobs after digesting."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict:
        blobs[f"blobs/sha256/{sha(data)}"] = data
        return {"mediaType": "application/octet-stream", "digest": f"sha256:{sha(data)}",
                "size": len(data)}

    descs = [blob(compress(b) if compress else b) for b in layers]
    cfg = blob(config if config is not None else config_for(layers, Cmd=["sh"]))
    manifest = blob(json.dumps({"schemaVersion": 2, "config": cfg, "layers": descs}).encode())
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "example.org/app:1"}
    for name, data in (tamper or {}).items():
        blobs[name] = data
    return tar_of({**blobs, "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
                   "index.json": json.dumps({"schemaVersion": 2,
                                             "manifests": [manifest]}).encode()}, prefix)


def docker_archive(layers: list[bytes], *, legacy: bool = False) -> bytes:
    config = config_for(layers, Cmd=["sh"])
    files: dict[str, bytes | str] = {f"{sha(config)}.json": config}
    names = []
    for data in layers:
        files[f"{sha(data)}.tar"] = data
        if legacy:  # as skopeo writes: v1 dirs whose layer.tar links to the blob
            v1 = sha(data + b"v1")
            files[f"{v1}/layer.tar"] = f"../{sha(data)}.tar"
            files[f"{v1}/VERSION"] = b"1.0"
            names.append(f"{v1}/layer.tar")
        else:
            names.append(f"{sha(data)}.tar")
    files["manifest.json"] = json.dumps([{"Config": f"{sha(config)}.json",
                                          "RepoTags": ["example.org/app:2"],
                                          "Layers": names}]).encode()
    return tar_of(files)


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    (tmp_path / "layers").mkdir()
    (tmp_path / "tmp").mkdir()
    return LayerStore(tmp_path)


def read(store: LayerStore, data: bytes, keep: bool = True):
    staging = store.tmp / f"staging-{os.urandom(4).hex()}"
    reader = ArchiveReader(store, staging)
    try:
        found = reader.read(io.BytesIO(data))
    except BaseException:
        reader.release_except([])
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # as the runtime does
    reader.release_except([layer.diff_id for layer in found.layers] if keep else [])
    return found


def stored(store: LayerStore) -> list[str]:
    """The layers stored (not the short links' directory l/)."""
    return sorted(p.name for p in store.dir.iterdir() if p.name != "l")


# formats


@pytest.mark.parametrize("compress", [gzip.compress, zstd, None], ids=["gzip", "zstd", "plain"])
def test_oci_archive(store, compress):
    found = read(store, oci_archive([LAYER1, LAYER2], compress=compress))
    assert found.kind == "oci"
    assert [layer.diff_id for layer in found.layers] == [sha(LAYER1), sha(LAYER2)]
    assert found.config["config"]["Cmd"] == ["sh"]
    assert found.references == ["example.org/app:1"]
    assert stored(store) == sorted([sha(LAYER1), sha(LAYER2)])
    top = store.diff_dir(sha(LAYER2))
    assert os.major(os.lstat(top / "etc/hostname").st_rdev) == 0
    assert (store.diff_dir(sha(LAYER1)) / "bin/tool").read_bytes() == b"x" * 70_000
    assert store.size(sha(LAYER1)) == 70_000 + 26 + 4
    assert store.refs(sha(LAYER1)) == 1


@pytest.mark.parametrize("outer", [gzip.compress, zstd], ids=["gzip", "zstd"])
def test_compressed_archive(store, outer):
    found = read(store, outer(oci_archive([LAYER1])))
    assert [layer.diff_id for layer in found.layers] == [sha(LAYER1)]


def test_oci_layout_tarred_with_dot_prefix(store):
    found = read(store, oci_archive([LAYER1], prefix="./"))
    assert found.kind == "oci"


@pytest.mark.parametrize("legacy", [False, True], ids=["flat", "legacy-dirs"])
def test_docker_archive(store, legacy):
    found = read(store, docker_archive([LAYER1, LAYER2], legacy=legacy))
    assert found.kind == "docker"
    assert [layer.diff_id for layer in found.layers] == [sha(LAYER1), sha(LAYER2)]
    assert found.references == ["example.org/app:2"]


def test_rootfs_tarball(store):
    found = read(store, gzip.compress(LAYER1))
    assert found.kind == "rootfs"
    assert [layer.diff_id for layer in found.layers] == [sha(LAYER1)]
    assert (store.diff_dir(sha(LAYER1)) / "etc/hostname").read_bytes() == b"one\n"


def test_small_layer_kept_in_memory_is_still_unpacked(store):
    tiny = tar_of({"hello": b"hi\n"})
    found = read(store, oci_archive([tiny], compress=None))
    assert (store.diff_dir(found.layers[0].diff_id) / "hello").read_bytes() == b"hi\n"


# sharing and refcounts


def test_shared_layers_are_stored_once_and_not_unpacked_again(store, monkeypatch):
    read(store, oci_archive([LAYER1, LAYER2]))
    before = os.lstat(store.diff_dir(sha(LAYER1)) / "bin/tool").st_ino
    calls = []
    real = imageformats.unpack_layer
    monkeypatch.setattr(imageformats, "unpack_layer",
                        lambda stream, dest, *rest: calls.append(dest) or real(stream, dest, *rest))
    other = tar_of({"srv/app": b"app"})
    read(store, oci_archive([LAYER1, other]))
    assert len(calls) == 1  # only the new layer
    assert stored(store) == sorted([sha(LAYER1), sha(LAYER2), sha(other)])
    assert store.refs(sha(LAYER1)) == 2
    assert os.lstat(store.diff_dir(sha(LAYER1)) / "bin/tool").st_ino == before
    # the same layers as a docker-archive (uncompressed, named by digest): nothing unpacked
    calls.clear()
    read(store, docker_archive([LAYER1, LAYER2]))
    assert calls == []
    assert store.refs(sha(LAYER2)) == 2


def test_release_frees_the_last_reference_only(store):
    read(store, oci_archive([LAYER1, LAYER2]))
    read(store, oci_archive([LAYER1]))
    store.release([sha(LAYER1), sha(LAYER2)])
    assert stored(store) == [sha(LAYER1)]
    store.release([sha(LAYER1)])
    assert stored(store) == []
    assert os.listdir(store.tmp) == []


def test_load_counts_references_and_removes_orphans(store, tmp_path):
    read(store, oci_archive([LAYER1, LAYER2]))
    orphan = store.tmp / "orphan"
    (orphan / "diff").mkdir(parents=True)
    write_meta(orphan, 0)
    store.add(StagedLayer("f" * 64, orphan, 0))
    fresh = LayerStore(tmp_path)
    fresh.load([([sha(LAYER1), sha(LAYER2)], ["", ""]), ([sha(LAYER1)], [""])])
    assert stored(fresh) == sorted([sha(LAYER1), sha(LAYER2)])
    assert fresh.refs(sha(LAYER1)) == 2 and fresh.refs(sha(LAYER2)) == 1


def test_a_failed_import_keeps_the_layers_it_shares(store):
    read(store, oci_archive([LAYER1]))
    bad = oci_archive([LAYER1, LAYER2], compress=None)
    bad = bad.replace(b"two\n" * 100, b"TWO\n" * 100)  # corrupt layer 2 after digesting
    with pytest.raises(InvalidArgument):
        read(store, bad)
    assert stored(store) == [sha(LAYER1)]
    assert store.refs(sha(LAYER1)) == 1
    assert os.listdir(store.tmp) == []


# refused archives leave nothing


def assert_refused(store: LayerStore, data: bytes, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        read(store, data)
    assert stored(store) == []
    assert all(store.refs(d) == 0 for d in (sha(LAYER1), sha(LAYER2)))
    assert os.listdir(store.tmp) == []


def test_layer_digest_mismatch(store):
    good = oci_archive([LAYER1, LAYER2], compress=None)
    assert_refused(store, good.replace(b"two\n" * 50, b"TWO\n" * 50), "digest")


def test_config_digest_mismatch(store):
    data = oci_archive([LAYER1], config=config_for([LAYER1], Cmd=["sh"]))
    assert_refused(store, data.replace(b'"Cmd": ["sh"]', b'"Cmd": ["ls"]'), "config.*digest")


def test_diff_id_mismatch(store):
    config = config_for([LAYER2])  # says layer 2, but the manifest's blob is layer 1
    assert_refused(store, oci_archive([LAYER1], config=config), "diff id")


def test_docker_layer_diff_id_mismatch(store):
    data = docker_archive([LAYER1, LAYER2])
    assert_refused(store, data.replace(b"two\n" * 50, b"TWO\n" * 50), "diff id|not what")


def test_missing_layer(store):
    data = oci_archive([LAYER1, LAYER2], compress=None)
    with tarfile.open(fileobj=io.BytesIO(data)) as src:
        kept = {m.name: src.extractfile(m).read() for m in src.getmembers()
                if m.name != f"blobs/sha256/{sha(LAYER2)}"}
    assert_refused(store, tar_of(kept), "lacks the layer")


def test_hostile_layer_in_an_archive(store):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    hostile = out.getvalue()
    assert_refused(store, oci_archive([LAYER1, hostile]), r"'\.\.'")
    assert not (store.dir.parent.parent / "escaped").exists()


def test_several_images_need_a_choice(store):
    data = oci_archive([LAYER1], compress=None)
    with tarfile.open(fileobj=io.BytesIO(data)) as src:
        files = {m.name: src.extractfile(m).read() for m in src.getmembers()}
    index = json.loads(files["index.json"])
    index["manifests"] *= 2
    files["index.json"] = json.dumps(index).encode()
    assert_refused(store, tar_of(files), "holds 2 images")


@pytest.mark.parametrize(("data", "match"), [
    (b"", "not a tar"),
    (b"garbage" * 100, "not a tar"),
    (gzip.compress(b"garbage" * 100), "not a tar"),
    (b"\x1f\x8b" + b"broken gzip" * 100, "corrupt|not a tar"),
    (tar_of({"manifest.json": b"[1, 2"}), "JSON"),
    (tar_of({"repositories": b"{}"}), "manifest.json"),
    (tar_of({"oci-layout": b"{}"}), "neither index.json nor manifest.json"),
])
def test_broken_archives(store, data, match):
    assert_refused(store, data, match)
