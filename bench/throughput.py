#!/usr/bin/env python3
"""Throughput: lifecycles of /bin/true from concurrent clients, each on its own connection.

pyctrd: C clients (separate D-Bus connections) share a queue of L lifecycles
(CreateContainer+Start+Wait+Remove); containers per second over the wall time,
and the errors (the target is 0). Beside, with the same concurrency: the
conmon+runc cycle and `runc run` without a daemon (bench/baseline.py, C threads).

    .venv/bin/python bench/throughput.py [-l 100] [-c 10] [--output bench/RESULTS.md]
"""

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from baseline import Bench
from common import (
    CONTAINER,
    MANAGER,
    MANAGER_PATH,
    NO_NETWORK,
    Daemon,
    PrivateBus,
    append_section,
    call,
    machine,
    make_busybox,
)
from dbus_fast.aio import MessageBus
from lifecycle import pyctrd_spec


async def pyctrd_run(address: str, tarball: Path, lifecycles: int,
                     clients: int) -> tuple[float, list[str]]:
    """Wall seconds for all lifecycles, and the errors."""
    setup = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    fd = os.open(tarball, os.O_RDONLY)
    await call(setup, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
    os.close(fd)
    setup.disconnect()
    buses = [await MessageBus(bus_address=address).connect() for _ in range(clients)]
    todo = iter(range(lifecycles))
    errors: list[str] = []

    async def client(bus: MessageBus) -> None:
        for _ in todo:  # one shared iterator: each lifecycle is taken once
            try:
                (path,) = await call(bus, MANAGER_PATH, MANAGER, "CreateContainer",
                                     "sasa{sv}", ["busybox", ["/bin/true"], NO_NETWORK])
                await call(bus, path, CONTAINER, "Start")
                (code,) = await call(bus, path, CONTAINER, "Wait")
                await call(bus, path, CONTAINER, "Remove", "b", [False])
                if code != 0:
                    errors.append(f"exit code {code}")
            except RuntimeError as err:
                errors.append(str(err))

    t0 = time.perf_counter()
    await asyncio.gather(*(client(b) for b in buses))
    wall = time.perf_counter() - t0
    for b in buses:
        b.disconnect()
    return wall, errors


def threaded_run(fn: Callable[[], float], lifecycles: int,
                 clients: int) -> tuple[float, list[str]]:
    errors: list[str] = []

    def one(_: int) -> None:
        try:
            fn()
        except (RuntimeError, OSError) as err:
            errors.append(str(err))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(lifecycles)))
    return time.perf_counter() - t0, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-l", "--lifecycles", type=int, default=100)
    ap.add_argument("-c", "--clients", type=int, default=10)
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-throughput-"))
    bus = PrivateBus(work)
    daemon = Daemon(work, bus.address)
    results: dict[str, tuple[float, list[str]]] = {}
    try:
        tarball = make_busybox(work)
        daemon.start()
        results["pyctrd"] = asyncio.run(pyctrd_run(bus.address, tarball, args.lifecycles,
                                                   args.clients))
        baseline = Bench(work, shutil.which("runc") or "runc", tarball)
        results["conmon+runc cycle"] = threaded_run(baseline.conmon_cycle, args.lifecycles,
                                                    args.clients)
        same_spec = Bench(work, shutil.which("runc") or "runc", tarball,
                          make_spec=pyctrd_spec, name="runc-pyctrd-spec")
        results["conmon+runc cycle, pyctrd's spec"] = threaded_run(
            same_spec.conmon_cycle, args.lifecycles, args.clients)
        results["runc run"] = threaded_run(baseline.runtime_run, args.lifecycles, args.clients)
    finally:
        daemon.stop()
        bus.stop()
        shutil.rmtree(work, ignore_errors=True)
    ours = args.lifecycles / results["pyctrd"][0]
    lines = ["| what | lifecycles | clients | wall | containers/s | errors "
             "| pyctrd's rate ÷ this |",
             "|---|---|---|---|---|---|---|"]
    for name, (wall, errors) in results.items():
        rate = args.lifecycles / wall
        lines.append(f"| {name} | {args.lifecycles} | {args.clients} | {wall:.2f} s "
                     f"| {rate:.1f} | {len(errors)} | {ours / rate:.2f} |")
    for name, (_, errors) in results.items():
        if errors:
            lines.append(f"\n{name}: first error: `{errors[0][:300]}`")
    print("\n".join(lines))
    append_section(args.output, "Throughput: concurrent lifecycles", machine_text, lines,
                   args.note)


if __name__ == "__main__":
    main()
