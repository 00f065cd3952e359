#!/usr/bin/env python3
"""One container lifecycle through pyctrd's bus API beside a raw `runc run`.

Starts a private bus and a pyctrd on it, imports the busybox image, then
times create+start+wait+remove of `/bin/true` from one long-lived client,
and `runc run` of an equivalent bundle on the same rootfs. Prints medians
and the ratio; `--output FILE` appends a Markdown row.

    .venv/bin/python bench/lifecycle.py [-n 50]
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

REPO = Path(__file__).resolve().parent.parent
RESULTS_HEADER = (
    "# Lifecycle: pyctrd beside raw runc\n\n"
    "`.venv/bin/python bench/lifecycle.py -n N --output bench/RESULTS.md`: one\n"
    "create+start+wait+remove of `/bin/true` over the bus from one client, beside\n"
    "`runc run` of the same bundle. Medians over N runs.\n\n"
    "| date | machine | N | pyctrd | runc run | ratio |\n"
    "|---|---|---|---|---|---|\n"
)
BUS = "org.pyctrd1"


async def call(bus: MessageBus, path: str, iface: str, member: str, sig: str = "",
               body: list | None = None, fds: list[int] | None = None) -> list:
    reply = await bus.call(Message(destination=BUS, path=path, interface=iface, member=member,
                                   signature=sig, body=body or [], unix_fds=fds or []))
    if reply.message_type is MessageType.ERROR:
        raise RuntimeError(f"{member}: {reply.error_name}: {reply.body}")
    return list(reply.body)


async def wait_for_name(bus: MessageBus) -> None:
    for _ in range(200):
        (has,) = await call_dbus(bus, "NameHasOwner", "s", [BUS])
        if has:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("pyctrd did not come up")


async def call_dbus(bus: MessageBus, member: str, sig: str, body: list) -> list:
    reply = await bus.call(Message(destination="org.freedesktop.DBus",
                                   path="/org/freedesktop/DBus",
                                   interface="org.freedesktop.DBus", member=member,
                                   signature=sig, body=body))
    return list(reply.body)


async def bench_pyctrd(address: str, tarball: Path, n: int) -> list[float]:
    bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    await wait_for_name(bus)
    fd = os.open(tarball, os.O_RDONLY)
    await call(bus, "/org/pyctrd1", "org.pyctrd1.Manager", "ImportImage", "hs",
               [0, "busybox"], [fd])
    os.close(fd)
    times = []
    for _ in range(n + 3):
        t0 = time.perf_counter()
        (path,) = await call(bus, "/org/pyctrd1", "org.pyctrd1.Manager", "CreateContainer",
                             "sasa{sv}", ["busybox", ["/bin/true"], {}])
        await call(bus, path, "org.pyctrd1.Container", "Start")
        (code,) = await call(bus, path, "org.pyctrd1.Container", "Wait")
        await call(bus, path, "org.pyctrd1.Container", "Remove", "b", [False])
        times.append(time.perf_counter() - t0)
        assert code == 0, code
    bus.disconnect()
    return times[3:]


def bench_raw_runc(workdir: Path, tarball: Path, n: int) -> list[float]:
    bundle = workdir / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(rootfs)], check=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(spec))
    root = workdir / "runc-root"
    times = []
    for i in range(n + 3):
        t0 = time.perf_counter()
        subprocess.run(["runc", "--root", str(root), "run", "--bundle", str(bundle),
                        f"bench-{i}"], check=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times[3:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--output", help="append a Markdown row to this file")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-bench-"))
    tarball = work / "busybox.tar"
    subprocess.run([sys.executable, str(REPO / "scripts/make-busybox-rootfs"), str(tarball)],
                   check=True)
    bus_proc = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1",
         f"--address=unix:path={work}/bus"], stdout=subprocess.PIPE, text=True)
    address = bus_proc.stdout.readline().strip()  # type: ignore[union-attr]
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": address}
    daemon = subprocess.Popen(
        [str(REPO / ".venv/bin/pyctrd"), "--bus", "session", "--root", str(work / "root"),
         "--run-root", str(work / "run"), "--log-level", "warning"], env=env)
    try:
        ours = asyncio.run(bench_pyctrd(address, tarball, args.n))
        raw = bench_raw_runc(work, tarball, args.n)
    finally:
        daemon.terminate()
        daemon.wait()
        bus_proc.terminate()
        shutil.rmtree(work, ignore_errors=True)
    m_ours, m_raw = statistics.median(ours), statistics.median(raw)
    line = (f"| {time.strftime('%Y-%m-%d')} | {platform.node()} ({os.cpu_count()} cores) "
            f"| {args.n} | {m_ours * 1000:.1f} ms | {m_raw * 1000:.1f} ms "
            f"| {m_ours / m_raw:.2f}x |")
    print(f"pyctrd create+start+wait+remove: median {m_ours * 1000:.1f} ms over {args.n}")
    print(f"raw runc run /bin/true:          median {m_raw * 1000:.1f} ms over {args.n}")
    print(f"ratio: {m_ours / m_raw:.2f}x")
    if args.output:
        new = not os.path.exists(args.output) or os.path.getsize(args.output) == 0
        with open(args.output, "a") as f:
            if new:
                f.write(RESULTS_HEADER)
            f.write(line + "\n")


if __name__ == "__main__":
    main()
