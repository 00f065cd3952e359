#!/usr/bin/env python3
"""Listing at any count (issue 20): `pyctr ps -a` and the calls under it.

For each count N of defined containers: `pyctr ps -a` as a whole command
(best of 3; over Varlink, then over D-Bus), one pass of ListContainersPaged
over all of them (2000 a page, every property; then 9 properties), one
GetManagedObjects (refused above the bus's 32 MiB), and the daemon's RSS.

    .venv/bin/python bench/listing.py [--counts 1000,10000,100000] [--seed-above 40000]
        [--output bench/RESULTS.md] [--note TEXT]
"""

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from common import (
    MANAGER,
    MANAGER_PATH,
    REPO,
    Daemon,
    PrivateBus,
    append_section,
    call,
    machine,
    make_busybox,
)
from dbus_fast import Variant
from dbus_fast.aio import MessageBus

# As a user runs it: with its modules' .pyc written once, not compiled at every start.
PYCTR_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PS_FIELDS = ["Id", "Name", "Image", "Command", "State", "CreatedTimestamp", "ExitCode",
             "StartedTimestamp", "FinishedTimestamp"]


async def fill(address: str, tarball: Path, count: int, first: bool) -> None:
    bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    if first:
        fd = os.open(tarball, os.O_RDONLY)
        await call(bus, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
        os.close(fd)
    slots = asyncio.Semaphore(32)

    async def one() -> None:
        async with slots:
            await call(bus, MANAGER_PATH, MANAGER, "CreateContainer", "sasa{sv}",
                       ["busybox", ["true"], {}])

    await asyncio.gather(*(one() for _ in range(count)))
    bus.disconnect()


async def calls(address: str) -> dict[str, float | str]:
    bus = await MessageBus(bus_address=address).connect()
    found: dict[str, float | str] = {}
    for label, props in (("paged_all", []), ("paged_all", []), ("paged_9", PS_FIELDS)):
        t = time.perf_counter()
        after = ""
        while True:
            options = {"limit": Variant("u", 2000)}
            if props:
                options["properties"] = Variant("as", props)
            if after:
                options["after"] = Variant("s", after)
            _, after = await call(bus, MANAGER_PATH, MANAGER, "ListContainersPaged", "a{sv}",
                                  [options])
            if not after:
                break
        found[label] = time.perf_counter() - t  # the second all-properties pass: warm
    t = time.perf_counter()
    try:
        await call(bus, MANAGER_PATH, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
        found["gmo"] = time.perf_counter() - t
    except RuntimeError as err:
        found["gmo"] = "refused: " + str(err).split(":")[1].strip()
    bus.disconnect()
    return found


def seed(root: Path, count: int) -> None:
    """Copies of the first container, written into the stopped daemon's database up
    to ``count`` (creating 100,000 through the bus slows with the count: the
    listing is what is measured here)."""
    db = sqlite3.connect(root / "pyctrd.db")
    try:
        have = db.execute("SELECT count(*) FROM containers").fetchone()[0]
        _, _, config, state = db.execute("SELECT id, name, config, state FROM containers "
                                         "LIMIT 1").fetchone()
        template = json.loads(config)
        first = int(time.time() * 1e6)
        rows = []
        for i in range(count - have):
            cid = secrets.token_hex(32)
            copy = {**template, "id": cid, "name": f"seeded_{i}", "hostname": cid[:12],
                    "created": first + i}
            # as the daemon writes records (database.py): alike records load alike
            rows.append((cid, copy["name"],
                         json.dumps(copy, separators=(",", ":"), sort_keys=True), state))
        db.executemany("INSERT INTO containers (id, name, config, state) VALUES (?, ?, ?, ?)",
                       rows)
        db.commit()
    finally:
        db.close()


def ps_time(address: str, varlink: str) -> tuple[float, int]:
    """`pyctr ps -a` over ``varlink`` (the socket; "": D-Bus only), best of 3."""
    best = float("inf")
    lines = 0
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run([str(REPO / ".venv/bin/pyctr"), "--address", address,
                              "--varlink", varlink, "ps", "-a", "--noheading"],
                             capture_output=True, text=True, timeout=300, check=True,
                             env=PYCTR_ENV)
        best = min(best, time.perf_counter() - t)
        lines = len(out.stdout.splitlines())
    return best, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="1000,10000,100000")
    ap.add_argument("--seed-above", type=int, default=40000, metavar="N",
                    help="counts above N: containers beyond N copied into the database "
                    "while the daemon is stopped, not created through the bus")
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-listing-"))
    tarball = make_busybox(work)
    bus = PrivateBus(work)
    daemon = Daemon(work, bus.address)
    rows = []
    done = 0
    try:
        daemon.start()
        for count in (int(c) for c in args.counts.split(",")):
            created = min(count, max(args.seed_above, done, 1))  # one to copy
            asyncio.run(fill(bus.address, tarball, created - done, first=done == 0))
            if count > created:
                daemon.stop()
                seed(work / "root", count)
                started = daemon.start()
                print(f"{count}: seeded above {created}; the daemon took its name in "
                      f"{started:.2f} s", flush=True)
            done = count
            ps, lines = ps_time(bus.address, str(work / "run" / "io.pyctrd"))
            ps_dbus, _ = ps_time(bus.address, "")
            m = asyncio.run(calls(bus.address))
            gmo = m["gmo"] if isinstance(m["gmo"], str) else f"{m['gmo'] * 1e3:.0f} ms"
            rss = daemon.rss_mb()
            print(f"{count}: pyctr ps -a {ps * 1e3:.0f} ms ({lines} lines), over D-Bus "
                  f"{ps_dbus * 1e3:.0f} ms; paged, all "
                  f"properties {float(m['paged_all']) * 1e3:.0f} ms, 9 properties "
                  f"{float(m['paged_9']) * 1e3:.0f} ms; GetManagedObjects {gmo}; "
                  f"RSS {rss:.0f} MB", flush=True)
            rows.append(f"| {count} | {ps * 1e3:.0f} ms ({lines} lines) | "
                        f"{ps_dbus * 1e3:.0f} ms | "
                        f"{float(m['paged_all']) * 1e3:.0f} ms | "
                        f"{float(m['paged_9']) * 1e3:.0f} ms | {gmo} | {rss:.0f} MB |")
    finally:
        daemon.stop()
        bus.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines_out = [
        "Defined containers (not running). `pyctr ps -a`: the whole command, best of 3, "
        "over Varlink (ListRows: the daemon's socket, as pyctr uses it with the default "
        "bus) and over D-Bus (`--varlink ''`: ListContainersPaged with the table's 11 "
        "properties); ListContainersPaged: one pass over all, 2000 a page, from a "
        "connected client (decoded by dbus-fast), every property (entries cached) and "
        f"then 9. Counts above {args.seed_above}: the containers beyond it copied into "
        "the stopped daemon's database (creating them through the bus slows with the count).",
        "",
        "| containers | pyctr ps -a (target ≤ 0.4 s at 10k, ≤ 3 s at 100k) "
        "| pyctr ps -a over D-Bus "
        "| ListContainersPaged, all | ListContainersPaged, 9 properties "
        "| GetManagedObjects | daemon RSS |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(lines_out))
    append_section(args.output, "Listing: pyctr ps -a and ListContainersPaged at many "
                   "containers", machine_text, lines_out, args.note)


if __name__ == "__main__":
    main()
