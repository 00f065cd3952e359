#!/usr/bin/env python3
"""pyctrd at 100, 1,000 and 10,000 defined containers.

For each count: daemon cold start (exec → name on the bus), GetManagedObjects,
ListContainers, one property Get (medians of repeated calls), daemon RSS,
and the time to create one more container. Beside `podman ps -a` at the same
counts when podman is installed (not by default).

    .venv/bin/python bench/scale.py [--counts 100,1000,10000] [--output bench/RESULTS.md]
"""

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import (
    CONTAINER,
    MANAGER,
    MANAGER_PATH,
    Daemon,
    PrivateBus,
    RawClient,
    call,
    make_busybox,
)
from dbus_fast.aio import MessageBus

HEADER = (
    "# Scale: pyctrd with many defined containers\n\n"
    "`.venv/bin/python bench/scale.py --output bench/RESULTS.md`: containers created\n"
    "(configured, not running); medians of repeated calls from one client.\n\n"
    "GetManagedObjects: the reply received whole by a bare socket client (in brackets:\n"
    "received and decoded by dbus-fast, whose unmarshalling dominates at 10 MB).\n\n"
    "| date | machine | containers | cold start | GetManagedObjects | ListContainers "
    "| property Get | create one | RSS |\n|---|---|---|---|---|---|---|---|---|\n"
)


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
        "gmo": await median_ms(lambda: call(bus, MANAGER_PATH,
                                            "org.freedesktop.DBus.ObjectManager",
                                            "GetManagedObjects"), 5),
        "list": await median_ms(lambda: call(bus, MANAGER_PATH, MANAGER, "ListContainers"),
                                5),
        "get": await median_ms(lambda: call(bus, path, "org.freedesktop.DBus.Properties",
                                            "Get", "ss", [CONTAINER, "State"]), 50),
    }
    raw = RawClient(address)
    out["gmo_raw"] = await median_ms(
        lambda: asyncio.to_thread(raw.call, MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="100,1000,10000")
    ap.add_argument("--output")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-scale-"))
    tarball = make_busybox(work)
    bus = PrivateBus(work)
    daemon = Daemon(work, bus.address)
    rows = []
    try:
        daemon.start()
        for count in (int(c) for c in args.counts.split(",")):
            t0 = time.perf_counter()
            asyncio.run(fill(bus.address, tarball, count))
            fill_s = time.perf_counter() - t0
            daemon.stop()
            cold = statistics.median([_restart(daemon) for _ in range(3)])
            m = asyncio.run(measure(bus.address))
            rss = daemon.rss_mb()
            print(f"{count:>6} containers (filled in {fill_s:.1f} s): cold start "
                  f"{cold * 1000:.0f} ms, GetManagedObjects {m['gmo_raw']:.1f} ms "
                  f"(decoded by dbus-fast {m['gmo']:.1f} ms), "
                  f"ListContainers {m['list']:.1f} ms, Get {m['get']:.2f} ms, "
                  f"create {m['create']:.1f} ms, RSS {rss:.0f} MB", flush=True)
            rows.append(f"| {time.strftime('%Y-%m-%d')} | {os.uname().nodename} "
                        f"({os.cpu_count()} cores) | {count} | {cold * 1000:.0f} ms "
                        f"| {m['gmo_raw']:.1f} ms ({m['gmo']:.0f} ms) | {m['list']:.1f} ms "
                        f"| {m['get']:.2f} ms "
                        f"| {m['create']:.1f} ms | {rss:.0f} MB |")
    finally:
        daemon.stop()
        bus.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.output:
        new = not os.path.exists(args.output) or "# Scale" not in Path(args.output).read_text()
        with open(args.output, "a") as f:
            f.write(("\n" + HEADER) if new else "")
            f.write("\n".join(rows) + "\n")


def _restart(daemon: Daemon) -> float:
    daemon.stop()
    return daemon.start()


if __name__ == "__main__":
    main()
