#!/usr/bin/env python3
"""An exec round trip of /bin/true in a running container (issue 14):
pyctrd beside raw `runc exec` and `podman exec`, in the same run.

- pyctrd: one long-lived client calls Container.Exec, reads the stdio socket
  to its end and calls ExecSession.Wait: from the call to the exit code.
  (Remove of the session follows, untimed.) The daemon runs conmon in exec
  mode, which runs `runc exec --process … --detach`.
- `runc exec`: `runc --root R exec ID /bin/true` as a subprocess, into the
  same container (pyctrd's runtime root R): the runtime alone, no monitor,
  no daemon, the same spec (default seccomp profile, capabilities).
- `podman exec CTR /bin/true` on a `podman run -d` of the same image
  (`podman import`), with a private configuration (bench/podman.py); skipped
  when podman is missing (--with-podman installs Debian's).

Rounds alternate the three so that a busy machine slows them alike; medians
and ratios. Targets: pyctrd ≤ 1.5x `runc exec`, ≥ 3x faster than `podman exec`.

    .venv/bin/python bench/exec.py [-n 50] [--with-podman] [--output bench/RESULTS.md]
"""

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
    median_ms,
)
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from podman import PrivatePodman, missing_note, podman_available

WARMUP = 3
EXEC_SESSION = "org.pyctrd1.ExecSession"
COMMAND = ["/bin/true"]


class PyctrdExec:
    def __init__(self, bus: MessageBus, path: str) -> None:
        self.bus = bus
        self.path = path

    async def round_trip(self) -> float:
        t0 = time.perf_counter()
        reply = await self.bus.call(Message(
            destination="org.pyctrd1", path=self.path, interface=CONTAINER, member="Exec",
            signature="asa{sv}", body=[COMMAND, {}]))
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            raise RuntimeError(f"Exec: {reply.error_name}: {reply.body}")
        session = reply.body[0]
        stdio = socket.socket(fileno=reply.unix_fds[reply.body[1]])
        stdio.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            while await loop.sock_recv(stdio, 65536):
                pass
        finally:
            stdio.close()
        (code,) = await call(self.bus, session, EXEC_SESSION, "Wait")
        elapsed = time.perf_counter() - t0
        if code != 0:
            raise RuntimeError(f"/bin/true exited {code}")
        await call(self.bus, session, EXEC_SESSION, "Remove")
        return elapsed


class RawRunc:
    """`runc exec` into the very container pyctrd runs (its runtime root), so that
    both run the same process spec (the default seccomp profile included)."""

    def __init__(self, root: Path, cid: str) -> None:
        self.runc = shutil.which("runc") or "/usr/sbin/runc"
        self.root = root
        self.cid = cid

    def exec_true(self) -> float:
        t0 = time.perf_counter()
        subprocess.run([self.runc, "--root", str(self.root), "exec", self.cid, *COMMAND],
                       check=True, timeout=30, stdin=subprocess.DEVNULL)
        return time.perf_counter() - t0


async def measure(work: Path, n: int, use_podman: bool) -> dict[str, list[float]]:
    tarball = make_busybox(work)
    bus_proc = PrivateBus(work)
    daemon = Daemon(work, bus_proc.address, ["--runtime", shutil.which("runc") or "runc"])
    podman = PrivatePodman("runc") if use_podman else None
    found: dict[str, list[float]] = {"pyctrd": [], "runc": []}
    try:
        await daemon.start_async()
        bus = await MessageBus(bus_address=bus_proc.address, negotiate_unix_fd=True).connect()
        fd = os.open(tarball, os.O_RDONLY)
        await call(bus, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
        os.close(fd)
        (path,) = await call(bus, MANAGER_PATH, MANAGER, "CreateContainer", "sasa{sv}",
                             ["busybox", ["sleep", "1000000"], NO_NETWORK])
        await call(bus, path, CONTAINER, "Start")
        ours = PyctrdExec(bus, path)
        raw = RawRunc(work / "run" / "runtime", path.rsplit("/", 1)[1])
        columns: dict[str, Callable[[], object]] = {"pyctrd": ours.round_trip,
                                                    "runc": lambda: asyncio.to_thread(
                                                        raw.exec_true)}
        if podman:
            image = podman.import_image(tarball)
            podman.run("run", "-d", "--name", "bench-exec", "--network", "none", image,
                       "sleep", "1000000")
            found["podman"] = []
            columns["podman"] = lambda: asyncio.to_thread(
                podman.timed, "exec", "bench-exec", *COMMAND)
        for i in range(n + WARMUP):
            order = list(columns) if i % 2 else list(reversed(columns))
            for name in order:
                elapsed = await columns[name]()  # type: ignore[misc]
                if i >= WARMUP:
                    found[name].append(float(elapsed))  # type: ignore[arg-type]
        await call(bus, path, CONTAINER, "Remove", "b", [True])
        bus.disconnect()
    finally:
        daemon.stop()
        bus_proc.stop()
        if podman:
            podman.cleanup()
    return found


def report(found: dict[str, list[float]], n: int) -> list[str]:
    pyctrd, runc = median_ms(found["pyctrd"]), median_ms(found["runc"])
    podman = median_ms(found["podman"]) if found.get("podman") else None
    podman_text = f"{podman:.1f} ms" if podman else "—"
    faster = f"{podman / pyctrd:.2f}x" if podman else "—"
    return [
        "| N | pyctrd Exec→Wait | runc exec | podman exec | pyctrd ÷ runc exec "
        "(target ≤ 1.5x) | podman ÷ pyctrd (target ≥ 3x) |",
        "|---|---|---|---|---|---|",
        f"| {n} | {pyctrd:.1f} ms | {runc:.1f} ms | {podman_text} | {pyctrd / runc:.2f}x "
        f"| {faster} |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=50, help="measured rounds (after 3 warm-up)")
    ap.add_argument("--with-podman", action="store_true",
                    help="apt-get install podman if it is missing")
    ap.add_argument("--output", help="append the results to this file (bench/RESULTS.md)")
    ap.add_argument("--note", default="", help="a note for the RESULTS.md section")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: runc and conmon need it")
    use_podman = podman_available(args.with_podman) is not None
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-exec-"))
    try:
        found = asyncio.run(measure(work, args.n, use_podman))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = report(found, args.n)
    print("\n".join(lines))
    note = " ".join(filter(None, [args.note, "" if use_podman else missing_note()]))
    append_section(args.output, "Exec round trip: pyctrd beside runc exec and podman exec",
                   machine_text, lines, note)


if __name__ == "__main__":
    main()
