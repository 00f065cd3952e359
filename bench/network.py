#!/usr/bin/env python3
"""What a bridge network costs a container's lifecycle (issue 15).

One pyctrd, one long-lived client, the lifecycle of bench/lifecycle.py
(CreateContainer+Start+Wait+Remove of /bin/true) on the default bridge
network and with network "none", alternated in pairs; beside `podman run --rm`
on podman's default bridge network in the same run (with --with-podman or
podman installed). Measured twice: with the bridge otherwise empty (netavark
then makes and deletes the bridge and its firewall chains every time, for
podman too) and with one long-running container on the same network (the
usual state of a host running containers: only the veth, the address and the
rules of the container itself are made and removed). Start alone is shown
too: the setup happens there, before runc creates the container.

    .venv/bin/python bench/network.py [-n 20] [--with-podman] [--output bench/RESULTS.md]
"""

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from common import (
    CONTAINER,
    MANAGER,
    MANAGER_PATH,
    Daemon,
    PrivateBus,
    append_section,
    call,
    machine,
    make_busybox,
    median_ms,
    timed_lifecycle,
)
from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from podman import PrivatePodman, missing_note, podman_available

WARMUP = 2
KINDS = {"bridge": {"network": Variant("s", "bridge")},
         "none": {"network": Variant("s", "none")}}


async def measure(work: Path, n: int, podman: PrivatePodman | None) -> dict:
    tarball = make_busybox(work)
    bus_proc = PrivateBus(work)
    daemon = Daemon(work, bus_proc.address, ["--runtime", shutil.which("runc") or "runc"])
    found: dict = {}
    image = podman.import_image(tarball) if podman else ""
    try:
        await daemon.start_async()
        bus = await MessageBus(bus_address=bus_proc.address, negotiate_unix_fd=True).connect()
        fd = os.open(tarball, os.O_RDONLY)
        await call(bus, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
        os.close(fd)
        for setting in ("empty bridge", "one other container"):
            anchor = pod_anchor = None
            if setting == "one other container":
                (anchor,) = await call(bus, MANAGER_PATH, MANAGER, "CreateContainer",
                                       "sasa{sv}", ["busybox", ["sleep", "3600"],
                                                    KINDS["bridge"]])
                await call(bus, anchor, CONTAINER, "Start")
                if podman:
                    pod_anchor = podman.run("run", "-d", "--network", "bridge", image, "sleep",
                                           "3600").strip()
            times: dict[str, list[float]] = {"bridge": [], "none": [], "podman": [],
                                             "start bridge": [], "start none": []}
            for i in range(n + WARMUP):
                order = list(KINDS) if i % 2 else list(reversed(KINDS))
                for kind in order:
                    whole, start = await timed_lifecycle(bus, KINDS[kind])
                    if i >= WARMUP:
                        times[kind].append(whole)
                        times[f"start {kind}"].append(start)
                if podman:
                    elapsed = podman.timed("run", "--rm", "--network", "bridge", image, "/bin/true")
                    if i >= WARMUP:
                        times["podman"].append(elapsed)
            if anchor:
                await call(bus, anchor, CONTAINER, "Remove", "b", [True])
            if podman and pod_anchor:
                podman.run("rm", "-f", "-t", "0", pod_anchor)
            found[setting] = times
        bus.disconnect()
    finally:
        daemon.stop()
        bus_proc.stop()
    return found


def report(found: dict, n: int) -> list[str]:
    lines = ["| bridge | N pairs | lifecycle, bridge | lifecycle, none | network adds "
             "(target ≤ 25 ms) | Start, bridge | Start, none | podman run --rm (bridge) "
             "| podman ÷ pyctrd bridge (target ≥ 3x) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for setting, t in found.items():
        paired = median_ms([a - b for a, b in zip(t["bridge"], t["none"], strict=True)])
        podman = f"{median_ms(t['podman']):.1f} ms" if t["podman"] else "—"
        ratio = (f"{median_ms(t['podman']) / median_ms(t['bridge']):.1f}x"
                 if t["podman"] else "—")
        lines.append(f"| {setting} | {n} | {median_ms(t['bridge']):.1f} ms "
                     f"| {median_ms(t['none']):.1f} ms | {paired:+.1f} ms "
                     f"| {median_ms(t['start bridge']):.1f} ms "
                     f"| {median_ms(t['start none']):.1f} ms | {podman} | {ratio} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--with-podman", action="store_true",
                    help="apt-get install podman if missing")
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    machine_text = machine()
    note = args.note
    podman = None
    if podman_available(args.with_podman):
        podman = PrivatePodman("runc")
    else:
        note = (note + "; " if note else "") + missing_note()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-network-"))
    try:
        found = asyncio.run(measure(work, args.n, podman))
    finally:
        if podman:
            podman.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    lines = report(found, args.n)
    print("\n".join(lines))
    append_section(args.output, "Networks: the default bridge's cost in the lifecycle",
                   machine_text, lines, note)


if __name__ == "__main__":
    main()
