"""Storage limits through the real daemon (issue 13's storage rows).

- an image 10,000 directories deep imports and is removed; containers whose
  process nests 3,000 directories are removed (Remove(true), RemoveContainer);
  a 10,000-deep leftover in the store's tmp is cleaned at the next start;
- a gzip bomb is refused at import_max_bytes with nothing left; a 10 KB tar
  declaring a 10 GiB sparse file imports sparse;
- images of 50 and 128 layers run; 129 are refused at import, nothing left.
"""

import asyncio
import contextlib
import gzip
import io
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from conftest import ERROR, Client, Daemon, container_id
from dbus_fast import DBusError
from unit.test_import_limits import gzip_bomb
from unit.test_layers import oci_archive, tar_of

ANSWER_WITHIN = 1.0  # seconds: root's calls while an import is under way
DEPTH = 10_000
MiB = 1 << 20
GiB = 1 << 30
# 30 times `mkdir -p` of 100 levels, going down by `cd -P` (a relative chdir: PATH_MAX
# does not bound it): 3,000 levels made by the container's own process
NEST_3000 = ["sh", "-c", "P=d; for j in $(seq 99); do P=$P/d; done; i=0; "
             "while [ $i -lt 30 ]; do mkdir -p $P && cd -P $P || exit 1; i=$((i+1)); done; "
             "echo bottom > bottom"]


async def timed(awaitable: Awaitable[Any]) -> float:
    started = time.monotonic()
    await awaitable
    return time.monotonic() - started


async def answered_while(task: "asyncio.Future[Any]", client: Client) -> float:
    """The slowest of root's ListContainers calls made while ``task`` runs."""
    slowest = 0.0
    for _ in range(200):  # bounded: ~20 s at most
        if task.done():
            break
        slowest = max(slowest, await timed(client.manager("ListContainers")))
        await asyncio.sleep(0.1)
    return slowest


def deep_image(out: Path, busybox_tar: Path, depth: int) -> None:
    """The busybox rootfs plus /deep/d/d/… ``depth`` levels, gzip'd (level 1)."""
    with tarfile.open(busybox_tar) as src, \
            gzip.open(out, "wb", compresslevel=1) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        name = "deep"
        for _ in range(depth):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            dst.addfile(info)
            name += "/d"
        info = tarfile.TarInfo(name.removesuffix("/d") + "/bottom")
        info.size = 3
        dst.addfile(info, io.BytesIO(b"end"))


def make_deep_dir(top: Path, depth: int) -> None:
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.chmod(fd, 0o500)
    finally:
        os.close(fd)


def layer_dirs(d: Daemon) -> set[str]:
    return {p.name for p in (d.root / "layers").iterdir() if p.name != "l"}


def write_config(d: Daemon, text: str) -> None:
    path = d.base / "config" / "pyctrd" / "pyctrd.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def wait_exit(client: Client, path: str) -> int:
    (code,) = await client.ctr(path, "Wait", timeout=60)
    return int(code)


async def test_deep_trees_import_run_remove_and_restart(fresh_daemon, client_factory,
                                                        busybox_tar, tmp_path):
    d: Daemon = fresh_daemon()
    client: Client = await client_factory(d.bus_address)
    layers_before = layer_dirs(d)
    archive = tmp_path / "deep.tar.gz"
    await asyncio.to_thread(deep_image, archive, busybox_tar, DEPTH)

    # the import, with root's calls timed meanwhile
    started = time.monotonic()
    importing = asyncio.ensure_future(client.import_image(archive, "deep"))
    slowest = await answered_while(importing, client)
    image_id, _ = await importing
    imported_in = time.monotonic() - started
    assert slowest < ANSWER_WITHIN, slowest
    assert not any((d.root / "tmp").iterdir())

    # containers whose process nests 3,000 directories: Remove(true) and RemoveContainer
    first = await client.run(NEST_3000, image="deep")
    second = await client.run(NEST_3000, image="deep")
    assert await wait_exit(client, first) == 0
    assert await wait_exit(client, second) == 0
    upper = d.root / "containers" / container_id(first) / "upper"
    assert (upper / "d").is_dir()
    started = time.monotonic()
    await client.ctr(first, "Remove", "b", [True])
    await client.manager("RemoveContainer", "sb", [container_id(second), True])
    removed_in = time.monotonic() - started
    for path in (first, second):
        client.created.remove(path)
        assert not (d.root / "containers" / container_id(path)).exists()

    # the image itself: its layer is 10,000 deep
    await client.manager("RemoveImage", "sb", [image_id, True])
    client.imported.remove(image_id)
    assert layer_dirs(d) == layers_before
    assert not any((d.root / "tmp").iterdir())

    # a 10,000-deep leftover in tmp (an import killed half-way): the next start cleans it
    assert d.sigterm() == 0
    make_deep_dir(d.root / "tmp" / "leftover", DEPTH)
    started = time.monotonic()
    d.start()
    restarted_in = time.monotonic() - started
    assert d.running()
    assert not any((d.root / "tmp").iterdir())
    client = await client_factory(d.bus_address)
    (images,) = await client.manager("ListImages")
    assert len(images) == 1  # busybox
    print(f"10,000-deep image imported in {imported_in:.1f} s (root's slowest call "
          f"{slowest * 1000:.0f} ms); two 3,000-deep containers removed in "
          f"{removed_in:.2f} s; restart over a 10,000-deep leftover {restarted_in:.1f} s")


async def test_a_gzip_bomb_is_refused_at_the_limit(fresh_daemon, client_factory):
    d: Daemon = fresh_daemon()
    assert d.sigterm() == 0
    write_config(d, f"import_max_bytes = {64 * MiB}\n")
    d.start()
    client: Client = await client_factory(d.bus_address)
    layers_before = layer_dirs(d)
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=gzip_bomb, args=(write_fd, 64, 16 * MiB))  # 1 GiB
    writer.start()
    try:
        started = time.monotonic()
        importing = asyncio.ensure_future(client.fails(
            client.manager("ImportImage", "hs", [0, "bomb"], [read_fd])))
        slowest = await answered_while(importing, client)
        err: DBusError = await importing
        refused_in = time.monotonic() - started
    finally:
        os.close(read_fd)
        writer.join(30)
    assert err.type == ERROR + "StorageFailed", (err.type, err.text)
    assert "67108864 bytes" in err.text and "import_max_bytes" in err.text
    assert refused_in < 10
    assert slowest < ANSWER_WITHIN
    assert not any((d.root / "tmp").iterdir())
    assert layer_dirs(d) == layers_before
    print(f"1 GiB gzip bomb refused at 64 MiB in {refused_in * 1000:.0f} ms; root's "
          f"slowest call {slowest * 1000:.0f} ms")


async def test_a_sparse_file_imports_sparse(fresh_daemon, client_factory, tmp_path):
    d: Daemon = fresh_daemon()
    client: Client = await client_factory(d.bus_address)
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(10 * GiB)
        f.seek(5 * GiB)
        f.write(b"hello")
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "-C", str(src), "--sparse", "--format=gnu", "-cf", str(archive),
                    "big"], check=True, timeout=30)
    (src / "big").unlink()
    assert archive.stat().st_size <= 20_000
    started = time.monotonic()
    image_id, _ = await client.import_image(archive, "sparse")
    imported_in = time.monotonic() - started
    new = [p for p in (d.root / "layers").glob("*/diff/big")]
    assert len(new) == 1
    st = new[0].stat()
    assert st.st_size == 10 * GiB
    assert st.st_blocks * 512 <= 64 * 1024
    assert imported_in < 5
    await client.manager("RemoveImage", "sb", [image_id, True])
    client.imported.remove(image_id)
    print(f"10 GiB sparse file imported in {imported_in * 1000:.0f} ms, "
          f"{st.st_blocks * 512} bytes on disk")


def layered_image(busybox_tar: Path, count: int) -> bytes:
    """An OCI archive: busybox at the bottom, ``count - 1`` one-file layers above."""
    layers = [busybox_tar.read_bytes()]
    layers += [tar_of({f"layer-{i}": f"{i}\n".encode()}) for i in range(1, count)]
    return oci_archive(layers, compress=None)


async def test_images_of_50_and_128_layers_run_129_are_refused(fresh_daemon, client_factory,
                                                               busybox_tar, tmp_path):
    d: Daemon = fresh_daemon()
    client: Client = await client_factory(d.bus_address)
    for count in (50, 128):
        archive = tmp_path / f"layers-{count}.tar"
        archive.write_bytes(layered_image(busybox_tar, count))
        await client.import_image(archive, f"layers:{count}")
        top = count - 1
        path = await client.run(["sh", "-c", f"test -f /layer-1 && test -f /layer-{top} && "
                                 f"test \"$(cat /layer-{top})\" = {top}"],
                                image=f"layers:{count}")
        assert await wait_exit(client, path) == 0, count

    layers_before = layer_dirs(d)
    links_before = sorted(os.listdir(d.root / "layers" / "l"))
    archive = tmp_path / "layers-129.tar"
    archive.write_bytes(layered_image(busybox_tar, 129))
    err = await client.fails(client.import_image(archive, "layers:129"))
    assert err.type == ERROR + "InvalidArgument", (err.type, err.text)
    assert "129 layers" in err.text and "128" in err.text
    assert layer_dirs(d) == layers_before
    assert sorted(os.listdir(d.root / "layers" / "l")) == links_before
    assert not any((d.root / "tmp").iterdir())
    with contextlib.suppress(DBusError):
        await client.manager("RemoveImage", "sb", ["layers:129", True])
