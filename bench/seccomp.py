#!/usr/bin/env python3
"""What the default seccomp profile costs a container's lifecycle (issue 13).

One pyctrd, one long-lived client, the lifecycle of bench/lifecycle.py
(CreateContainer+Start+Wait+Remove of /bin/true), in pairs: the default
container (containers-common's profile, converted once per capability set
and loaded by runc) and the same container with `seccomp` "unconfined" (no
filter: what every container had before), alternated so that a busy machine
slows both alike. Medians of each and of Start alone; the target is a
lifecycle within 5% of the unconfined one.

    .venv/bin/python bench/seccomp.py [-n 60] [--output bench/RESULTS.md] [--note TEXT]
"""

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from common import (
    MANAGER,
    MANAGER_PATH,
    NO_NETWORK,
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

WARMUP = 3
# network "none" in both: the bridge, now the default, would swamp the filter's cost.
KINDS = {"default profile": NO_NETWORK,
         "unconfined": {**NO_NETWORK, "seccomp": Variant("s", "unconfined")}}


async def measure(work: Path, n: int) -> dict[str, dict[str, list[float]]]:
    tarball = make_busybox(work)
    bus_proc = PrivateBus(work)
    daemon = Daemon(work, bus_proc.address, ["--runtime", shutil.which("runc") or "runc"])
    found: dict[str, dict[str, list[float]]] = {k: {"cycle": [], "start": []} for k in KINDS}
    try:
        await daemon.start_async()
        bus = await MessageBus(bus_address=bus_proc.address, negotiate_unix_fd=True).connect()
        fd = os.open(tarball, os.O_RDONLY)
        await call(bus, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
        os.close(fd)
        for i in range(n + WARMUP):
            # Alternate which goes first, so neither always follows the other.
            order = list(KINDS) if i % 2 else list(reversed(KINDS))
            for kind in order:
                whole, start = await timed_lifecycle(bus, KINDS[kind])
                if i >= WARMUP:
                    found[kind]["cycle"].append(whole)
                    found[kind]["start"].append(start)
        bus.disconnect()
    finally:
        daemon.stop()
        bus_proc.stop()
    return found


def report(found: dict[str, dict[str, list[float]]], n: int) -> list[str]:
    with_profile, without = found["default profile"], found["unconfined"]
    change = median_ms(with_profile["cycle"]) / median_ms(without["cycle"]) - 1
    # Each pair ran back to back: the median of their differences is steadier than
    # the difference of medians on a machine others are using.
    paired = median_ms([a - b for a, b in zip(with_profile["cycle"], without["cycle"],
                                              strict=True)])
    lines = ["| N pairs | lifecycle, default profile | lifecycle, unconfined | change "
             "(target ≤ +5%) | median of paired differences | Start, default profile "
             "| Start, unconfined |",
             "|---|---|---|---|---|---|---|",
             f"| {n} | {median_ms(with_profile['cycle']):.1f} ms "
             f"| {median_ms(without['cycle']):.1f} ms | {change * 100:+.1f}% "
             f"| {paired:+.1f} ms | {median_ms(with_profile['start']):.1f} ms "
             f"| {median_ms(without['start']):.1f} ms |"]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=60)
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-seccomp-"))
    try:
        found = asyncio.run(measure(work, args.n))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = report(found, args.n)
    print("\n".join(lines))
    append_section(args.output, "Seccomp: the default profile's cost in the lifecycle",
                   machine_text, lines, args.note)


if __name__ == "__main__":
    main()
