#!/usr/bin/env python3
"""ImportImage of a large generated OCI archive beside `tar -x` of the same layers.

Generates an image of a few gzip-compressed layers (hundreds of MB, tens of
thousands of files, a bit of everything: small and large files, directories,
symlinks, hard links, a whiteout), saves it as an OCI archive, then times:

- pyctrd: ImportImage of the archive over the bus, from a fresh layer store
  each run (the image is removed between runs, which frees its layers);
- tar: `tar -xzf` of each layer blob into an empty directory, one after the
  other, the same work without digests, whiteouts or safety checks.

Prints medians and the ratio; `--output FILE` appends them with the command and machine.

    .venv/bin/python bench/import.py [-n 3] [--mb 300] [--files 30000] [--output bench/RESULTS.md]
"""

import argparse
import asyncio
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from common import append_section, machine
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

REPO = Path(__file__).resolve().parent.parent
BUS = "org.pyctrd1"
MANAGER = "org.pyctrd1.Manager"
LAYERS = 3


def make_layer(rng: random.Random, index: int, files: int, size: int) -> bytes:
    """An uncompressed layer tar: mostly small files, a few large ones."""
    out = io.BytesIO()
    big_files = 8
    big = (size // 2) // big_files
    small = max(1, (size - big * big_files) // files)
    # compressible but not trivially so: random words from a small alphabet
    words = [bytes(rng.choices(b"abcdefghijklmnop", k=rng.randint(3, 9))) for _ in range(512)]

    def content(n: int) -> bytes:
        chunk = b" ".join(rng.choices(words, k=n // 6 + 1))
        return chunk[:n]

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = [f"l{index}/d{i:03d}" for i in range(files // 100 + 1)]
        for d in [f"l{index}", *dirs]:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for i in range(files):
            data = content(rng.randint(small // 2, small * 3 // 2))
            info = tarfile.TarInfo(f"{dirs[i % len(dirs)]}/f{i:06d}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, i % 3, i % 5
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
            if i % 500 == 0:
                link = tarfile.TarInfo(f"{info.name}.sym")
                link.type, link.linkname = tarfile.SYMTYPE, f"f{i:06d}"
                tar.addfile(link)
                hard = tarfile.TarInfo(f"{info.name}.hard")
                hard.type, hard.linkname = tarfile.LNKTYPE, info.name
                tar.addfile(hard)
        for i in range(big_files):
            data = rng.randbytes(big // 2) + content(big // 2)
            info = tarfile.TarInfo(f"l{index}/big{i}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        if index > 0:
            whiteout = tarfile.TarInfo(f"l{index - 1}/d000/.wh.f000000")
            tar.addfile(whiteout)
    return out.getvalue()


def make_archive(work: Path, total_mb: int, files: int) -> tuple[Path, list[Path], int]:
    rng = random.Random(4)
    blobs: dict[str, bytes] = {}
    blob_paths, diff_ids, descs = [], [], []
    for i in range(LAYERS):
        layer = make_layer(rng, i, files // LAYERS, total_mb * (1 << 20) // LAYERS)
        diff_ids.append(f"sha256:{hashlib.sha256(layer).hexdigest()}")
        compressed = gzip.compress(layer, compresslevel=1, mtime=0)
        digest = hashlib.sha256(compressed).hexdigest()
        path = work / f"layer{i}.tar.gz"
        path.write_bytes(compressed)
        blob_paths.append(path)
        blobs[f"blobs/sha256/{digest}"] = compressed
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": f"sha256:{digest}", "size": len(compressed)})

    def blob(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        blobs[f"blobs/sha256/{digest}"] = data
        return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{digest}", "size": len(data)}

    config = blob(json.dumps({"os": "linux", "architecture": "amd64",
                              "config": {"Cmd": ["/bin/true"]},
                              "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode())
    manifest = blob(json.dumps({"schemaVersion": 2, "config": config,
                                "layers": descs}).encode())
    archive = work / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in [*blobs.items(),
                           ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
                           ("index.json", json.dumps({"schemaVersion": 2,
                                                      "manifests": [manifest]}).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    uncompressed = sum(len(gzip.decompress(p.read_bytes())) for p in blob_paths)
    return archive, blob_paths, uncompressed


async def call(bus: MessageBus, member: str, sig: str = "", body: list | None = None,
               fds: list[int] | None = None, destination: str = BUS,
               path: str = "/org/pyctrd1", iface: str = MANAGER) -> list:
    reply = await bus.call(Message(destination=destination, path=path, interface=iface,
                                   member=member, signature=sig, body=body or [],
                                   unix_fds=fds or []))
    if reply.message_type is MessageType.ERROR:
        raise RuntimeError(f"{member}: {reply.error_name}: {reply.body}")
    return list(reply.body)


async def bench_pyctrd(address: str, archive: Path, n: int) -> list[float]:
    bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    for _ in range(200):
        (has,) = await call(bus, "NameHasOwner", "s", [BUS], destination="org.freedesktop.DBus",
                            path="/org/freedesktop/DBus", iface="org.freedesktop.DBus")
        if has:
            break
        await asyncio.sleep(0.05)
    times = []
    for _ in range(n):
        fd = os.open(archive, os.O_RDONLY)
        t0 = time.perf_counter()
        image_id, _ = await call(bus, "ImportImage", "hs", [0, "bench/large"], [fd])
        times.append(time.perf_counter() - t0)
        os.close(fd)
        await call(bus, "RemoveImage", "sb", [image_id, True])
    bus.disconnect()
    return times


def bench_tar(work: Path, blobs: list[Path], n: int) -> list[float]:
    times = []
    for run in range(n):
        dest = work / f"tar-{run}"
        dirs = [dest / f"layer{i}" for i in range(len(blobs))]
        for d in dirs:
            d.mkdir(parents=True)
        t0 = time.perf_counter()
        for blob, d in zip(blobs, dirs, strict=True):
            subprocess.run(["tar", "-xzf", str(blob), "-C", str(d), "--numeric-owner",
                            "--same-owner", "--same-permissions", "--xattrs"], check=True)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(dest)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("--mb", type=int, default=300, help="uncompressed image size")
    ap.add_argument("--files", type=int, default=30_000)
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-bench-import-"))
    bus_proc = daemon = None
    archive_mb = 0.0
    try:
        archive, blobs, uncompressed = make_archive(work, args.mb, args.files)
        archive_mb = archive.stat().st_size / (1 << 20)
        bus_proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1",
             f"--address=unix:path={work}/bus"], stdout=subprocess.PIPE, text=True,
            stderr=subprocess.DEVNULL)
        address = bus_proc.stdout.readline().strip()  # type: ignore[union-attr]
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": address}
        daemon = subprocess.Popen(
            [str(REPO / ".venv/bin/pyctrd"), "--bus", "session", "--root", str(work / "root"),
             "--run-root", str(work / "run"), "--log-level", "warning"], env=env)
        ours = asyncio.run(bench_pyctrd(address, archive, args.n))
        raw = bench_tar(work, blobs, args.n)
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait()
        if bus_proc is not None:
            bus_proc.terminate()
            bus_proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    m_ours, m_raw = statistics.median(ours), statistics.median(raw)
    entries = args.files // LAYERS * LAYERS
    size = f"{uncompressed / (1 << 20):.0f} MB ({archive_mb:.0f} MB gz)"
    print(f"image: {LAYERS} gzip layers, {uncompressed / (1 << 20):.0f} MB uncompressed, "
          f"{entries} files")
    print(f"pyctrd ImportImage: median {m_ours:.2f} s over {args.n} ({sorted(ours)})")
    print(f"tar -xzf per layer: median {m_raw:.2f} s over {args.n} ({sorted(raw)})")
    print(f"ratio: {m_ours / m_raw:.2f}x")
    lines = ["Image: 3 gzip layers; pyctrd: ImportImage over the bus into an empty layer store;",
             "tar: `tar -xzf` of the same layer blobs one after the other.", "",
             "| N | image | files | pyctrd import | tar -x | ratio (target ≤ 1.5x) |",
             "|---|---|---|---|---|---|",
             f"| {args.n} | {size} | {entries} | {m_ours:.2f} s | {m_raw:.2f} s "
             f"| {m_ours / m_raw:.2f}x |"]
    append_section(args.output, "Import: pyctrd beside tar -x", machine_text, lines, args.note)

if __name__ == "__main__":
    main()
