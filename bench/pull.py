#!/usr/bin/env python3
"""PullImage from a local registry beside `skopeo copy` to an OCI dir (and `podman pull`).

Generates a 3-layer image (about 100 MB uncompressed, gzip layers), pushes it
with skopeo into Debian's docker-registry started on 127.0.0.1 (plain HTTP),
then times, alternating per round:

- pyctrd: PullImage over the bus until the job is `completed` (fetch through
  skopeo into a staging layout, verified import, layers unpacked), into an
  empty store each round (the image is removed between rounds);
- skopeo: `skopeo copy docker://… oci:DIR` into an empty directory: the same
  transfer, without unpacking;
- podman (with --with-podman): `podman pull` into a private store, removed
  between rounds, with the host's blob-info cache hidden.

    .venv/bin/python bench/pull.py [-n 5] [--mb 100] [--with-podman] [--output bench/RESULTS.md]
"""

import argparse
import asyncio
import gzip
import hashlib
import importlib
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import MANAGER, MANAGER_PATH, Daemon, PrivateBus, append_section, call, machine
from dbus_fast.aio import MessageBus
from podman import PrivatePodman, missing_note, podman_available

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.registry import Registry  # noqa: E402

JOB = "org.pyctrd1.Job"
PROPS = "org.freedesktop.DBus.Properties"
POLL = 0.005


def make_layout(work: Path, total_mb: int, files: int) -> tuple[Path, int, int]:
    """An OCI layout of 3 gzip layers made by import.py's generator; (path,
    uncompressed bytes, compressed bytes)."""
    make_layer = importlib.import_module("import").make_layer
    rng = random.Random(7)
    layout = work / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descs, diff_ids, plain, packed = [], [], 0, 0

    def put(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    for i in range(3):
        layer = make_layer(rng, i, files // 3, total_mb * (1 << 20) // 3)
        diff_ids.append(f"sha256:{hashlib.sha256(layer).hexdigest()}")
        compressed = gzip.compress(layer, compresslevel=6, mtime=0)
        plain, packed = plain + len(layer), packed + len(compressed)
        descs.append(put(compressed, "application/vnd.oci.image.layer.v1.tar+gzip"))
    config = put(json.dumps({"os": "linux", "architecture": "amd64",
                             "config": {"Cmd": ["/bin/true"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode(),
                 "application/vnd.oci.image.config.v1+json")
    manifest = put(json.dumps({"schemaVersion": 2, "config": config, "layers": descs,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json"}
                              ).encode(), "application/vnd.oci.image.manifest.v1+json")
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                   "manifests": [manifest]}))
    return layout, plain, packed


async def pyctrd_round(bus: MessageBus, ref: str) -> float:
    from dbus_fast import Variant
    t0 = time.perf_counter()
    (job,) = await call(bus, MANAGER_PATH, MANAGER, "PullImage", "sa{sv}",
                        [ref, {"tls_verify": Variant("b", False)}])
    for _ in range(int(600 / POLL)):
        (state,) = await call(bus, job, PROPS, "Get", "ss", [JOB, "State"])
        if state.value != "running":
            break
        await asyncio.sleep(POLL)
    elapsed = time.perf_counter() - t0
    if state.value != "completed":
        (error,) = await call(bus, job, PROPS, "Get", "ss", [JOB, "Error"])
        raise RuntimeError(f"pull {state.value}: {error.value}")
    (image,) = await call(bus, job, PROPS, "Get", "ss", [JOB, "Image"])
    await call(bus, MANAGER_PATH, MANAGER, "RemoveImage", "sb",
               [image.value.rsplit("/", 1)[-1], True])
    return elapsed


def skopeo_round(work: Path, ref: str, n: int) -> float:
    dest = work / f"skopeo-{n}"
    t0 = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}",
                    f"oci:{dest}"], check=True)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(dest)
    return elapsed


def podman_round(podman: PrivatePodman, ref: str) -> float:
    target = next(p for p in (Path("/var/lib/containers/cache"), Path("/var/lib/containers"),
                              Path("/var/lib")) if p.is_dir())
    private = Path(tempfile.mkdtemp(dir=podman.dir)) / target.name
    private.mkdir()
    t0 = time.perf_counter()
    podman.run_hidden(target, private, "pull", "--quiet", "--tls-verify=false", ref)
    elapsed = time.perf_counter() - t0
    podman.run("rmi", "--force", ref)
    return elapsed


async def main_async(args: argparse.Namespace, work: Path, ref: str,
                     podman: PrivatePodman | None) -> dict[str, list[float]]:
    bus_daemon = PrivateBus(work)
    daemon = Daemon(work, bus_daemon.address)
    times: dict[str, list[float]] = {"pyctrd": [], "skopeo": [], "podman": []}
    try:
        await daemon.start_async()
        bus = await MessageBus(bus_address=bus_daemon.address).connect()
        try:
            await pyctrd_round(bus, ref)  # warm-up: page cache, registry, skopeo binary
            skopeo_round(work, ref, -1)
            for n in range(args.n):
                times["pyctrd"].append(await pyctrd_round(bus, ref))
                times["skopeo"].append(await asyncio.to_thread(skopeo_round, work, ref, n))
                if podman is not None:
                    times["podman"].append(await asyncio.to_thread(podman_round, podman, ref))
        finally:
            bus.disconnect()
    finally:
        daemon.stop()
        bus_daemon.stop()
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--mb", type=int, default=100, help="uncompressed image size")
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--with-podman", action="store_true")
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-bench-pull-"))
    registry = podman = None
    note = args.note
    try:
        layout, uncompressed, compressed = make_layout(work, args.mb, args.files)
        registry = Registry(work / "registry").start()
        ref = registry.push(f"oci:{layout}", "bench/pull:v1")
        if (args.with_podman or shutil.which("podman")) and \
                podman_available(args.with_podman):
            podman = PrivatePodman()
        if podman is None:
            note = "; ".join(filter(None, [note, missing_note()]))
        times = asyncio.run(main_async(args, work, ref, podman))
    finally:
        if podman is not None:
            podman.cleanup()
        if registry is not None:
            registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    print(f"image: 3 gzip layers, {uncompressed / (1 << 20):.0f} MB uncompressed, "
          f"{compressed / (1 << 20):.0f} MB compressed")
    for name, values in times.items():
        if values:
            print(f"{name}: median {med[name]:.2f} s over {len(values)} "
                  f"({[round(v, 2) for v in sorted(values)]})")
    ratio = med["pyctrd"] / med["skopeo"]
    print(f"pyctrd / skopeo: {ratio:.2f}x")
    podman_cell = f"{med['podman']:.2f} s" if "podman" in med else "—"
    vs_podman = f"{med['podman'] / med['pyctrd']:.2f}x" if "podman" in med else "—"
    lines = ["Image: 3 gzip layers pushed to Debian's docker-registry on 127.0.0.1 (HTTP);",
             "pyctrd: PullImage until the job completed (skopeo into a staging layout, "
             "verified import, layers unpacked), empty store each round;",
             "skopeo: `skopeo copy docker://… oci:DIR` (no unpacking); podman: `podman "
             "pull` into a private store.", "",
             "| N | image | pyctrd pull | skopeo copy | podman pull | pyctrd/skopeo "
             "(target ≤ 1.3x) | podman/pyctrd (target > 1) |",
             "|---|---|---|---|---|---|---|",
             f"| {args.n} | {uncompressed / (1 << 20):.0f} MB ({compressed / (1 << 20):.0f} MB "
             f"gz) | {med['pyctrd']:.2f} s | {med['skopeo']:.2f} s | {podman_cell} | "
             f"{ratio:.2f}x | {vs_podman} |"]
    append_section(args.output, "Pull: pyctrd beside skopeo copy and podman pull",
                   machine_text, lines, note)


if __name__ == "__main__":
    main()
