#!/usr/bin/env python3
"""Many running containers at once (issue 20): starts, a cold start, an exit storm.

With N (default 500) containers of `sleep 1000`:

1. starts: N created, then started from C clients (separate connections) with
   F calls in flight each: starts/s, Start's median and p99;
2. cold start with N running: pyctrd stopped (conmon keeps them running) and
   started again (3 times): exec → name on the bus, and every container
   "running" at once after;
3. exit storm: every container's process SIGKILLed at once while a probe
   client Gets a property every 10 ms: time until every exit was signalled
   (PropertiesChanged State "exited"), lost signals, the probe's median, p99
   and maximum from the kill until every container was cleaned up (its
   Mountpoint signalled empty).

    .venv/bin/python bench/storm.py [-n 500] [--clients 4] [--in-flight 8]
        [--output bench/RESULTS.md] [--note TEXT] [--profile FILE | --loop-lag FILE]

--profile runs pyctrd under cProfile for the storm and writes its stats to FILE;
--loop-lag FILE under bench/looplag.py (slow loop iterations: wall, CPU and
run-queue time of their callbacks). The kill's CLOCK_MONOTONIC time is printed.
"""

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    CONTAINER,
    MANAGER,
    MANAGER_PATH,
    NO_NETWORK,
    REPO,
    Daemon,
    PrivateBus,
    append_section,
    call,
    machine,
    make_busybox,
)
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

PROPERTIES = "org.freedesktop.DBus.Properties"
PROBE_EVERY = 0.010
PROBE = REPO / "tests" / "support" / "getprobe.py"


class WatchedDaemon(Daemon):
    """pyctrd under cProfile, or bench/looplag.py (output written when it stops)."""

    def __init__(self, *args: Any, wrapper: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wrapper = wrapper

    def _spawn(self) -> None:
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.address}
        self.proc = subprocess.Popen(
            [sys.executable, *self.wrapper, "--bus", "session", "--root",
             str(self.work / "root"), "--run-root", str(self.work / "run"),
             "--log-level", self.log_level, *self.extra_args], env=env, stderr=self.stderr)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def create_and_start(address: str, tarball: Path, count: int, clients: int,
                           in_flight: int) -> dict[str, Any]:
    setup = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    fd = os.open(tarball, os.O_RDONLY)
    await call(setup, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
    os.close(fd)
    t0 = time.perf_counter()
    paths = []
    for i in range(count):
        (path,) = await call(setup, MANAGER_PATH, MANAGER, "CreateContainer", "sasa{sv}",
                             ["busybox", ["sleep", "1000"],
                              {**NO_NETWORK, "name": Variant("s", f"s{i}")}])
        paths.append(path)
    create_s = time.perf_counter() - t0
    setup.disconnect()
    buses = [await MessageBus(bus_address=address).connect() for _ in range(clients)]
    todo = iter(paths)
    latencies: list[float] = []
    errors: list[str] = []

    async def worker(bus: MessageBus) -> None:
        for path in todo:  # one shared iterator: each container started once
            t = time.perf_counter()
            try:
                await call(bus, path, CONTAINER, "Start")
            except RuntimeError as err:
                errors.append(str(err))
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(b) for b in buses for _ in range(in_flight)))
    wall = time.perf_counter() - t0
    for b in buses:
        b.disconnect()
    return {"paths": paths, "create_s": create_s, "wall": wall, "latencies": latencies,
            "errors": errors}


async def all_running(address: str, count: int) -> int:
    bus = await MessageBus(bus_address=address).connect()
    try:
        (listed,) = await call(bus, MANAGER_PATH, MANAGER, "ListContainers")
        return sum(1 for c in listed if c[3] == "running")
    finally:
        bus.disconnect()


async def exit_storm(address: str, paths: list[str]) -> dict[str, Any]:
    bus = await MessageBus(bus_address=address).connect()
    pids = []
    for p in paths:
        (v,) = await call(bus, p, PROPERTIES, "Get", "ss", [CONTAINER, "PID"])
        pids.append(v.value)
    exited: dict[str, float] = {}
    cleaned: dict[str, float] = {}
    wanted = set(paths)

    def on_message(msg: Message) -> None:
        if (msg.message_type is not MessageType.SIGNAL or msg.member != "PropertiesChanged"
                or msg.path not in wanted):
            return
        changed = msg.body[1]
        if "State" in changed and changed["State"].value == "exited":
            exited.setdefault(msg.path, time.monotonic())
        if "Mountpoint" in changed and changed["Mountpoint"].value == "":
            cleaned.setdefault(msg.path, time.monotonic())

    bus.add_message_handler(on_message)
    await call(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
               ["type='signal',sender='org.pyctrd1',member='PropertiesChanged'"],
               destination="org.freedesktop.DBus")
    # The probe runs in a process of its own: in this one, the storm's thousands of
    # signals would stall it.
    probe = await asyncio.create_subprocess_exec(
        sys.executable, str(PROBE), address, paths[0], CONTAINER, "Name", str(PROBE_EVERY),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    # The same Get of the bus itself (dbus-daemon's Features), from a process of its
    # own: what a storm of process exits does to any reply on this machine.
    control = await asyncio.create_subprocess_exec(
        sys.executable, str(PROBE), address, "/org/freedesktop/DBus", "org.freedesktop.DBus",
        "Features", str(PROBE_EVERY), "org.freedesktop.DBus",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    for p in (probe, control):
        assert p.stdin is not None and p.stdout is not None
        assert await p.stdout.readline() == b"ready\n"
    await asyncio.sleep(0.3)
    storm = time.monotonic()
    print(f"killing all at {storm:.3f} (CLOCK_MONOTONIC)", flush=True)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = storm + 60
    while (len(exited) < len(paths) or len(cleaned) < len(paths)) and \
            time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    end = time.monotonic()
    await asyncio.sleep(0.2)
    outs = []
    for p in (probe, control):
        assert p.stdin is not None and p.stdout is not None
        p.stdin.close()
        outs.append(await p.stdout.read())
        await p.wait()
    samples, bus_samples = ([(float(a), float(b)) for a, b in (line.split() for line in
                                                               out.splitlines())]
                            for out in outs)
    bus_during = [lat for sent, lat in bus_samples if storm <= sent <= end]
    during = [lat for sent, lat in samples if storm <= sent <= end]
    # the slowest, with when they were sent (ms after the kill): where they fall
    slowest = sorted(((lat, sent - storm) for sent, lat in samples if storm <= sent <= end),
                     reverse=True)[:3]
    before = [lat for sent, lat in samples if sent < storm]
    bus.disconnect()
    return {
        "all_exited": (max(exited.values()) - storm) if exited else float("nan"),
        "all_cleaned": (max(cleaned.values()) - storm) if cleaned else float("nan"),
        "lost": len(paths) - len(exited), "uncleaned": len(paths) - len(cleaned),
        "during": during, "before": before, "slowest": slowest, "bus_during": bus_during,
    }


async def remove_all(address: str, paths: list[str]) -> None:
    bus = await MessageBus(bus_address=address).connect()
    sem = asyncio.Semaphore(8)

    async def one(p: str) -> None:
        async with sem:
            await call(bus, p, CONTAINER, "Remove", "b", [True])

    await asyncio.gather(*(one(p) for p in paths))
    bus.disconnect()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=500, help="running containers")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--in-flight", type=int, default=8, help="Start calls in flight per client")
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    ap.add_argument("--profile", help="cProfile the daemon during the storm into this file")
    ap.add_argument("--loop-lag", metavar="FILE",
                    help="run the daemon for the storm under bench/looplag.py: its slowest "
                    "loop iterations, and why, into FILE")
    args = ap.parse_args()
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-storm-"))
    tarball = make_busybox(work)
    bus = PrivateBus(work)
    daemon = Daemon(work, bus.address)
    n = args.n
    lines: list[str] = []
    try:
        daemon.start()
        started = asyncio.run(create_and_start(bus.address, tarball, n, args.clients,
                                               args.in_flight))
        lat = started["latencies"]
        print(f"created {n} in {started['create_s']:.1f} s; started {n} from "
              f"{args.clients}x{args.in_flight}: {n / started['wall']:.1f}/s, Start median "
              f"{statistics.median(lat) * 1e3:.0f} ms, p99 {pct(lat, 0.99) * 1e3:.0f} ms, "
              f"errors {len(started['errors'])}", flush=True)
        colds = []
        running_after = []
        for _ in range(3):
            daemon.stop()
            colds.append(daemon.start())
            running_after.append(asyncio.run(all_running(bus.address, n)))
        print(f"cold start with {n} running: {', '.join(f'{c * 1e3:.0f}' for c in colds)} ms "
              f"to the bus name; running right after: {running_after}", flush=True)
        wrapper = (["-m", "cProfile", "-o", args.profile, str(REPO / ".venv/bin/pyctrd")]
                   if args.profile else
                   [str(REPO / "bench" / "looplag.py"), args.loop_lag] if args.loop_lag else [])
        if wrapper:
            daemon.stop()
            daemon = WatchedDaemon(work, bus.address, wrapper=wrapper)
            daemon.start()
        storm = asyncio.run(exit_storm(bus.address, started["paths"]))
        during, bus_gets = storm["during"], storm["bus_during"]
        print(f"exit storm of {n}: all exits signalled after {storm['all_exited']:.2f} s, "
              f"all cleaned up after {storm['all_cleaned']:.2f} s, lost {storm['lost']}; "
              f"{len(during)} Gets during it: median {statistics.median(during) * 1e3:.1f} "
              f"ms, p99 {pct(during, 0.99) * 1e3:.1f} ms, max {max(during) * 1e3:.0f} ms "
              f"(before: median {statistics.median(storm['before']) * 1e3:.2f} ms); "
              "slowest: " + ", ".join(f"{lat * 1e3:.0f} ms sent at +{at * 1e3:.0f} ms"
                                      for lat, at in storm["slowest"])
              + f"; the bus's own Get meanwhile: median "
              f"{statistics.median(bus_gets) * 1e3:.1f} ms, p99 "
              f"{pct(bus_gets, 0.99) * 1e3:.1f} ms, max {max(bus_gets) * 1e3:.0f} ms",
              flush=True)
        asyncio.run(remove_all(bus.address, started["paths"]))
        lines = [
            f"{n} containers of `sleep 1000`; {args.clients} clients x {args.in_flight} "
            "Start calls in flight; the probe Gets a property every 10 ms on its own "
            "connection.",
            "",
            "| measure | result | target (issue 20) |",
            "|---|---|---|",
            f"| starts/s ({args.clients}x{args.in_flight} in flight) | "
            f"{n / started['wall']:.1f}/s (create alone: {n / started['create_s']:.0f}/s) "
            "| — |",
            f"| Start latency median / p99 | {statistics.median(lat) * 1e3:.0f} ms / "
            f"{pct(lat, 0.99) * 1e3:.0f} ms | — |",
            f"| cold start with {n} running (exec → bus name), 3 runs | "
            f"{', '.join(f'{c * 1e3:.0f} ms' for c in colds)} (all {running_after[0]} "
            "running when the name is taken) | ≤ 0.5 s (brief: < 1 s) |",
            f"| exit storm: all {n} exits signalled | {storm['all_exited'] * 1e3:.0f} ms, "
            f"{storm['lost']} lost | ≤ 1 s, 0 lost |",
            f"| exit storm: all cleaned up (runtime state, mounts) | "
            f"{storm['all_cleaned'] * 1e3:.0f} ms | — |",
            f"| property Get during the storm: median / p99 / max | "
            f"{statistics.median(during) * 1e3:.1f} / {pct(during, 0.99) * 1e3:.1f} / "
            f"{max(during) * 1e3:.0f} ms ({len(during)} Gets) | p99 ≤ 50 ms (brief: "
            "< 100 ms) |",
            "| the slowest Gets, sent ms after the kill | "
            + ", ".join(f"{lat * 1e3:.0f} ms at +{at * 1e3:.0f}" for lat, at in storm["slowest"])
            + " | — |",
            f"| control: the bus's own Get (dbus-daemon's Features) meanwhile: median / p99 / "
            f"max | {statistics.median(bus_gets) * 1e3:.1f} / "
            f"{pct(bus_gets, 0.99) * 1e3:.1f} / {max(bus_gets) * 1e3:.0f} ms "
            f"({len(bus_gets)} Gets) | — |",
        ]
    finally:
        daemon.stop()
        bus.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    if lines:
        append_section(args.output, f"Storm: {n} running containers started, re-adopted, "
                       "killed at once", machine_text, lines, args.note)


if __name__ == "__main__":
    main()
