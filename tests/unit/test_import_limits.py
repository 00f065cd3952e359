"""Imports within bounds: bytes unpacked (bombs, sparse files) and layers stacked.

- a 10 KB tar declaring a 10 GiB sparse file is stored sparse and counts by its data;
- a gzip bomb is refused at ``import_max_bytes``, having written next to nothing;
- an image of more than 128 layers is refused; 128 mount, by their short links.
"""

import gzip
import io
import os
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from pyctrd.errors import InvalidArgument, StorageFailed
from pyctrd.storage import rootfs
from pyctrd.storage.imageformats import ArchiveReader
from pyctrd.storage.layers import MAX_LAYERS, LayerStore
from pyctrd.storage.rootfs import RootfsPaths
from pyctrd.storage.streams import FdReader
from pyctrd.storage.trees import remove_tree
from pyctrd.storage.unpack import ByteBudget, unpack_layer
from unit.test_layers import oci_archive, stored, tar_of

GiB = 1 << 30
MiB = 1 << 20


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    (tmp_path / "layers").mkdir()
    (tmp_path / "tmp").mkdir()
    return LayerStore(tmp_path)


def sparse_tar(tmp_path: Path, fmt: str) -> bytes:
    """GNU tar's own sparse archive of a 10 GiB file holding 5 bytes."""
    src = tmp_path / f"src-{fmt}"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(10 * GiB)
        f.seek(5 * GiB)
        f.write(b"hello")
    out = subprocess.run(["tar", "-C", str(src), "--sparse", f"--format={fmt}", "-cf", "-",
                          "big"], capture_output=True, check=True, timeout=30).stdout
    (src / "big").unlink()
    return out


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_a_sparse_file_is_stored_sparse_and_counts_by_its_data(tmp_path, fmt):
    data = sparse_tar(tmp_path, fmt)
    assert len(data) <= 20_000
    budget = ByteBudget(1 * MiB)  # far below the apparent 10 GiB
    started = time.monotonic()
    stats = unpack_layer(io.BytesIO(data), tmp_path / "layer", budget)
    assert time.monotonic() - started < 2
    st = (tmp_path / "layer" / "big").stat()
    assert st.st_size == 10 * GiB == stats.size
    assert st.st_blocks * 512 <= 64 * 1024  # the data block, not 10 GiB of zeros
    assert budget.used == 4096  # the one data block GNU tar stored
    with open(tmp_path / "layer" / "big", "rb") as f:
        f.seek(5 * GiB - 2)
        assert f.read(9) == b"\0\0hello\0\0"


def test_zeros_in_ordinary_files_become_holes(tmp_path):
    layer = tar_of({"zeros": bytes(8 * MiB) + b"tail"})
    budget = ByteBudget(None)
    unpack_layer(io.BytesIO(layer), tmp_path / "layer", budget)
    st = (tmp_path / "layer" / "zeros").stat()
    assert st.st_size == 8 * MiB + 4
    assert st.st_blocks * 512 < 1 * MiB
    assert budget.used == 8 * MiB + 4  # but they count: the limit is on unpacked bytes
    assert (tmp_path / "layer" / "zeros").read_bytes()[-6:] == b"\0\0tail"


def gzip_bomb(write_fd: int, files: int, each: int) -> None:
    """A gzip'd rootfs tar of ``files`` files of ``each`` zero bytes, streamed (made as
    it is read; the reader's refusal ends it with EPIPE)."""
    zeros = bytes(MiB)
    try:
        with os.fdopen(write_fd, "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz, \
                tarfile.open(fileobj=gz, mode="w|") as tar:
            for i in range(files):
                info = tarfile.TarInfo(f"zeros-{i}")
                info.size = each

                class Zeros(io.RawIOBase):
                    left = each

                    def read(self, n: int = -1) -> bytes:
                        n = min(self.left, len(zeros) if n < 0 else n)
                        self.left -= n
                        return zeros[:n]

                tar.addfile(info, Zeros())
    except (BrokenPipeError, OSError):
        pass


def test_a_gzip_bomb_is_refused_at_the_limit(store):
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=gzip_bomb, args=(write_fd, 64, 16 * MiB))  # 1 GiB
    writer.start()
    staging = store.tmp / "staging"
    reader = ArchiveReader(store, staging, ByteBudget(64 * MiB))
    started = time.monotonic()
    try:
        with pytest.raises(StorageFailed) as info:
            reader.read(FdReader(read_fd))
    finally:
        os.close(read_fd)
        writer.join(30)
        reader.release_except([])
    elapsed = time.monotonic() - started
    assert "67108864 bytes" in str(info.value) and "import_max_bytes" in str(info.value)
    assert elapsed < 5, elapsed
    assert not writer.is_alive()
    remove_tree(staging)  # what ImageCatalogue does
    assert stored(store) == []
    assert os.listdir(store.tmp) == []


def test_one_member_over_the_limit_is_refused_at_its_header(tmp_path):
    header = tarfile.TarInfo("huge")
    header.size = 4 * GiB
    data = header.tobuf(format=tarfile.GNU_FORMAT)  # no data at all: never read
    with pytest.raises(StorageFailed, match="import_max_bytes"):
        unpack_layer(io.BytesIO(data), tmp_path / "layer", ByteBudget(GiB))


def many_layers(count: int) -> list[bytes]:
    return [tar_of({f"layer-{i}": f"{i}\n".encode()}) for i in range(count)]


def test_more_than_128_layers_are_refused_with_nothing_kept(store):
    staging = store.tmp / "staging"
    reader = ArchiveReader(store, staging)
    try:
        with pytest.raises(InvalidArgument, match=f"129 layers.*at most {MAX_LAYERS}"):
            reader.read(io.BytesIO(oci_archive(many_layers(MAX_LAYERS + 1), compress=None)))
    finally:
        reader.release_except([])
        remove_tree(staging)
    assert stored(store) == []


def import_layers(store: LayerStore, layers: list[bytes]) -> list[str]:
    staging = store.tmp / "staging"
    reader = ArchiveReader(store, staging)
    found = reader.read(io.BytesIO(oci_archive(layers, compress=None)))
    reader.release_except([layer.diff_id for layer in found.layers])
    remove_tree(staging)
    return [layer.diff_id for layer in found.layers]


def test_short_links_follow_the_layers(store, tmp_path):
    layers = many_layers(3)
    diff_ids = import_layers(store, layers)
    links = {os.readlink(p): p.name for p in store.links.iterdir()}
    assert sorted(links) == sorted(f"../{d}/diff" for d in diff_ids)
    for diff_id in diff_ids:
        assert (store.path(diff_id) / "link").read_text() == links[f"../{diff_id}/diff"]
    # a store from before short links: made at load; a dangling one deleted
    (store.links / links[f"../{diff_ids[0]}/diff"]).unlink()
    os.symlink("../" + "0" * 64 + "/diff", store.links / "DANGLING0000")
    fresh = LayerStore(tmp_path)
    fresh.load([(diff_ids, ["", "", ""])])
    assert sorted(os.readlink(p) for p in fresh.links.iterdir()) == \
        sorted(f"../{d}/diff" for d in diff_ids)
    fresh.release(diff_ids)
    assert list(fresh.links.iterdir()) == []
    assert stored(fresh) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts overlayfs")
@pytest.mark.parametrize("count", [50, MAX_LAYERS])
def test_an_image_of_many_layers_mounts(store, tmp_path, count):
    diff_ids = import_layers(store, many_layers(count))
    lower = [store.diff_dir(d) for d in reversed(diff_ids)]  # top first
    full = "lowerdir=" + ":".join(str(p) for p in lower)
    assert len(full) > 4096  # the old way could not pass them
    paths = RootfsPaths(lower=lower, container_dir=tmp_path / "ctr", shm_dir=tmp_path / "shm")
    merged = rootfs.mount_rootfs(paths)
    try:
        assert (merged / "layer-0").read_text() == "0\n"
        assert (merged / f"layer-{count - 1}").read_text() == f"{count - 1}\n"
        assert len(os.listdir(merged)) == count
    finally:
        rootfs.unmount_rootfs(paths)
    rootfs.destroy(paths)
    assert not paths.container_dir.exists()


def test_the_default_limit_is_a_share_of_the_free_space(tmp_path):
    from pyctrd.core.images import ImageCatalogue
    from pyctrd.database import Database
    from pyctrd.layout import Layout

    layout = Layout(tmp_path / "root", tmp_path / "run")
    layout.create_dirs()
    store = Database(layout.database)
    try:
        automatic = ImageCatalogue(layout, store, listener=None).import_budget()  # type: ignore[arg-type]
        fs = os.statvfs(layout.tmp)
        free = fs.f_bavail * fs.f_frsize
        assert automatic.limit is not None
        assert abs(automatic.limit - max(0, int(free * 0.9) - GiB)) < 64 * MiB
        assert "90% of the free space" in automatic.what
        fixed = ImageCatalogue(layout, store, listener=None,  # type: ignore[arg-type]
                               import_max_bytes=5 * MiB).import_budget()
        assert fixed.limit == 5 * MiB
    finally:
        store.close()
