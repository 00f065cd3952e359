#!/usr/bin/env python3
"""pyctrd at 100, 1,000, 10,000 and 100,000 defined containers.

For each count: daemon cold start (exec → name on the bus), GetManagedObjects
(refused above the bus's 32 MiB: about 25,000 containers), ListContainers,
one pass of ListContainersPaged (the 9 properties `pyctr ps` asks for), one
property Get (medians of repeated calls), the daemon's RSS just after a cold
start and after those calls, and the time to create one more container.
Beside, with podman (privately configured, bench/podman.py; skipped when it is
not installed, --with-podman installs it): `podman ps -a` and one `podman
create` at the same counts.
Creating podman containers is slow (40-70 ms each), so counts above
--podman-max (default 1000) are skipped for podman, and the results say so.

    .venv/bin/python bench/scale.py [--counts 100,1000,10000,100000] [--podman-max 1000]
        [--with-podman] [--output bench/RESULTS.md] [--note TEXT]
"""

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (
    CONTAINER,
    MANAGER,
    MANAGER_PATH,
    Daemon,
    PrivateBus,
    RawClient,
    append_section,
    call,
    machine,
    make_busybox,
)
from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from podman import PrivatePodman, missing_note, podman_available

HEADER = [
    "Containers created (configured, not running); medians of repeated calls from one",
    "client. GetManagedObjects: the reply received whole by a bare socket client (in",
    "brackets: received and decoded by dbus-fast, whose unmarshalling dominates at 10 MB).",
    "ListContainersPaged: every page, 2000 a page, 9 properties, decoded by dbus-fast.",
    "RSS: right after a cold start, then after the calls of this row.",
    "`podman ps -a` and `podman create` are whole commands (process start included,",
    "≈ 20 ms); pyctrd's figures are calls from a connected client.",
    "",
    "| containers | cold start (target ≤ 1 s at 10k, ≤ 2 s at 100k) "
    "| GetManagedObjects (≤ 150 ms) | ListContainers | ListContainersPaged | property Get "
    "| create one (≤ 2 ms) | RSS cold / after calls (≤ 400 MB at 100k) | podman ps -a "
    "| podman create one |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
PS_PROPERTIES = ["Id", "Name", "Image", "Command", "State", "CreatedTimestamp", "ExitCode",
                 "Ports", "Labels"]
PODMAN_IMAGE = "localhost/bench-busybox"


def podman_fill(podman: PrivatePodman, target: int, parallel: int = 4) -> None:
    have = len(podman.run("ps", "-a", "-q").split())
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: podman.run("create", "--network", "none", PODMAN_IMAGE,
                                           "true"), range(target - have)))


def podman_measure(podman: PrivatePodman) -> tuple[float, float]:
    """Median ms of `podman ps -a` and of one `podman create` (removed afterwards)."""
    ps = statistics.median(podman.timed("ps", "-a") for _ in range(5)) * 1000
    created: list[float] = []
    for i in range(5):
        created.append(podman.timed("create", "--name", f"probe{i}", "--network", "none",
                                    PODMAN_IMAGE, "true"))
    podman.run("rm", *(f"probe{i}" for i in range(5)))
    return ps, statistics.median(created) * 1000


async def median_ms(coro_factory, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await coro_factory()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def fill(address: str, tarball: Path, target: int, parallel: int = 32) -> None:
    bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    (images,) = await call(bus, MANAGER_PATH, MANAGER, "ListImages")
    if not images:
        fd = os.open(tarball, os.O_RDONLY)
        await call(bus, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
        os.close(fd)
    (have,) = await call(bus, MANAGER_PATH, MANAGER, "ListContainers")
    todo = target - len(have)
    sem = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with sem:
            await call(bus, MANAGER_PATH, MANAGER, "CreateContainer", "sasa{sv}",
                       ["busybox", ["true"], {}])

    await asyncio.gather(*(one() for _ in range(todo)))
    bus.disconnect()


async def measure(address: str) -> dict[str, float]:
    bus = await MessageBus(bus_address=address).connect()
    (containers,) = await call(bus, MANAGER_PATH, MANAGER, "ListContainers")
    path = containers[0][4]
    out = {
        "list": await median_ms(lambda: call(bus, MANAGER_PATH, MANAGER, "ListContainers"),
                                3),
        "paged": await median_ms(lambda: list_paged(bus), 3),
        "get": await median_ms(lambda: call(bus, path, "org.freedesktop.DBus.Properties",
                                            "Get", "ss", [CONTAINER, "State"]), 50),
    }
    try:
        out["gmo"] = await median_ms(lambda: call(bus, MANAGER_PATH,
                                                  "org.freedesktop.DBus.ObjectManager",
                                                  "GetManagedObjects"), 5)
    except RuntimeError as err:  # over the bus's message size: LimitsExceeded
        print(f"GetManagedObjects: {err}"[:200], flush=True)
        out["gmo"] = out["gmo_raw"] = float("nan")
    else:
        raw = RawClient(address)
        out["gmo_raw"] = await median_ms(
            lambda: asyncio.to_thread(raw.call, MANAGER_PATH,
                                      "org.freedesktop.DBus.ObjectManager",
                                      "GetManagedObjects"), 5)
    created = []

    async def create_one() -> None:
        (p,) = await call(bus, MANAGER_PATH, MANAGER, "CreateContainer", "sasa{sv}",
                          ["busybox", ["true"], {}])
        created.append(p)

    out["create"] = await median_ms(create_one, 20)
    for p in created:
        await call(bus, p, CONTAINER, "Remove", "b", [False])
    bus.disconnect()
    return out


async def list_paged(bus: MessageBus) -> int:
    """Every container, a page of 2000 at a time, the properties `pyctr ps` shows."""
    after, count = "", 0
    while True:
        options = {"limit": Variant("u", 2000), "properties": Variant("as", PS_PROPERTIES)}
        if after:
            options["after"] = Variant("s", after)
        objects, after = await call(bus, MANAGER_PATH, MANAGER, "ListContainersPaged",
                                    "a{sv}", [options])
        count += len(objects)
        if not after:
            return count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="100,1000,10000,100000")
    ap.add_argument("--podman-max", type=int, default=1000,
                    help="largest count to fill podman to (each create takes 40-70 ms)")
    ap.add_argument("--with-podman", action="store_true",
                    help="apt-get install podman if it is missing")
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-scale-"))
    tarball = make_busybox(work)
    bus = PrivateBus(work)
    daemon = Daemon(work, bus.address)
    podman = PrivatePodman() if podman_available(args.with_podman) else None
    notes = [] if podman else [missing_note()]
    rows = []
    try:
        daemon.start()
        if podman:
            podman.import_image(tarball, PODMAN_IMAGE)
        for count in (int(c) for c in args.counts.split(",")):
            t0 = time.perf_counter()
            asyncio.run(fill(bus.address, tarball, count))
            fill_s = time.perf_counter() - t0
            daemon.stop()
            cold = statistics.median([_restart(daemon) for _ in range(3)])
            time.sleep(1.0)  # recovery, in the background, is over (nothing to recover)
            rss_cold = daemon.rss_mb()
            m = asyncio.run(measure(bus.address))
            rss = daemon.rss_mb()
            print(f"{count:>6} containers (filled in {fill_s:.1f} s): cold start "
                  f"{cold * 1000:.0f} ms, GetManagedObjects {m['gmo_raw']:.1f} ms "
                  f"(decoded by dbus-fast {m['gmo']:.1f} ms), "
                  f"ListContainers {m['list']:.1f} ms, paged {m['paged']:.0f} ms, "
                  f"Get {m['get']:.2f} ms, create {m['create']:.2f} ms, "
                  f"RSS {rss_cold:.0f} MB cold, {rss:.0f} MB after", flush=True)
            ps_cell = create_cell = "—"
            if podman and count <= args.podman_max:
                t0 = time.perf_counter()
                podman_fill(podman, count)
                ps_ms, create_ms = podman_measure(podman)
                print(f"{count:>6} podman containers (filled in {time.perf_counter() - t0:.1f} "
                      f"s): ps -a {ps_ms:.0f} ms, create {create_ms:.0f} ms", flush=True)
                ps_cell, create_cell = f"{ps_ms:.0f} ms", f"{create_ms:.0f} ms"
            elif podman:
                ps_cell = create_cell = "skipped"
                notes.append(f"podman skipped at {count} containers (above --podman-max "
                             f"{args.podman_max})")
            gmo_cell = ("refused (LimitsExceeded)" if m["gmo"] != m["gmo"]
                        else f"{m['gmo_raw']:.1f} ms ({m['gmo']:.0f} ms)")
            rows.append(f"| {count} | {cold * 1000:.0f} ms | {gmo_cell} | {m['list']:.1f} ms "
                        f"| {m['paged']:.0f} ms | {m['get']:.2f} ms | {m['create']:.2f} ms "
                        f"| {rss_cold:.0f} / {rss:.0f} MB | {ps_cell} | {create_cell} |")
    finally:
        daemon.stop()
        bus.stop()
        if podman:
            podman.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    lines = HEADER + rows + ([""] + [f"- {n}" for n in notes] if notes else [])
    print("\n".join(lines))
    append_section(args.output, "Scale: pyctrd with many defined containers, beside podman",
                   machine_text, lines, args.note)


def _restart(daemon: Daemon) -> float:
    daemon.stop()
    return daemon.start()


if __name__ == "__main__":
    main()
