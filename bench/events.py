#!/usr/bin/env python3
"""Exit → signal latency: from a container's exit to the client holding PropertiesChanged.

Each run creates a container running `sh -c 'read x < /trigger; exit 3'`,
/trigger being a FIFO on the host bind-mounted in (the `mounts` option), and
starts it. Once the container has the FIFO open (our non-blocking open for
writing stops failing with ENXIO), we write a line and take the time. The
client, subscribed to PropertiesChanged under /org/pyctrd1, stops the clock
when it has seen ExitCode 3 and State "exited" for that container.

pidfds on the container's process and on its conmon (from Inspect) split
the interval:

- trigger → process exit: the shell reading and exiting (not pyctrd's);
- process exit → conmon exit: conmon reaps, writes the exit file, exits (not pyctrd's);
- conmon exit → signal: pyctrd wakes on conmon's pidfd, reads the exit file,
  saves the state, emits the signal; the bus delivers it;
- process exit → signal: the issue's "exit → signal" (target ≤ 5 ms).

    .venv/bin/python bench/events.py [-n 30] [--output bench/RESULTS.md] [--note TEXT]
"""

import argparse
import asyncio
import errno
import json
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
    NO_NETWORK,
    Daemon,
    PrivateBus,
    append_section,
    call,
    machine,
    make_busybox,
)
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

WARMUP = 2
MATCH = ("type='signal',interface='org.freedesktop.DBus.Properties',"
         "member='PropertiesChanged',path_namespace='/org/pyctrd1'")
TARGET_MS = 5.0


class Watcher:
    """Collects, per object path, the properties seen in PropertiesChanged and when."""

    def __init__(self, bus: MessageBus) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.seen: dict[str, dict] = {}
        bus.add_message_handler(self._on_message)

    def expect(self, path: str) -> asyncio.Future[float]:
        self.seen[path] = {}
        fut = asyncio.get_running_loop().create_future()
        self.waiting[path] = fut
        return fut

    def _on_message(self, msg: Message) -> None:
        now = time.perf_counter()
        if (msg.message_type is not MessageType.SIGNAL or msg.member != "PropertiesChanged"
                or msg.path not in self.waiting):
            return
        seen = self.seen[msg.path]
        seen.update({k: v.value for k, v in msg.body[1].items()})
        if seen.get("ExitCode") == 3 and seen.get("State") == "exited":
            fut = self.waiting.pop(msg.path)
            if not fut.done():
                fut.set_result(now)


def exit_time(pid: int) -> asyncio.Future[float]:
    """The moment a pidfd on `pid` turns readable (the process is gone)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[float] = loop.create_future()
    fd = os.pidfd_open(pid)

    def fired() -> None:
        now = time.perf_counter()
        loop.remove_reader(fd)
        os.close(fd)
        fut.set_result(now)

    loop.add_reader(fd, fired)
    return fut


def find_key(doc: object, key: str) -> object:
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        doc = list(doc.values())
    if isinstance(doc, list):
        for item in doc:
            found = find_key(item, key)
            if found is not None:
                return found
    return None


async def open_writer(fifo: Path, timeout: float = 10.0) -> int:
    """Open the FIFO for writing once the container has opened it for reading."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.001)


async def one_run(bus: MessageBus, watcher: Watcher, fifo: Path) -> dict[str, float]:
    os.mkfifo(fifo)
    options = {**NO_NETWORK, "mounts": Variant("a(sss)", [[str(fifo), "/trigger", "bind"]])}
    (path,) = await call(bus, MANAGER_PATH, MANAGER, "CreateContainer", "sasa{sv}",
                         ["busybox", ["sh", "-c", "read x < /trigger; exit 3"], options])
    try:
        signalled = watcher.expect(path)
        await call(bus, path, CONTAINER, "Start")
        (inspect,) = await call(bus, path, CONTAINER, "Inspect")
        conmon_pid = int(find_key(json.loads(inspect), "ConmonPid") or 0)
        pid = (await call(bus, path, "org.freedesktop.DBus.Properties", "Get", "ss",
                          [CONTAINER, "PID"]))[0].value
        process_gone, conmon_gone = exit_time(pid), exit_time(conmon_pid)
        fd = await open_writer(fifo)
        t0 = time.perf_counter()
        os.write(fd, b"go\n")
        os.close(fd)
        t_signal = await asyncio.wait_for(signalled, 10)
        t_process, t_conmon = await process_gone, await conmon_gone
    finally:
        await call(bus, path, CONTAINER, "Remove", "b", [True])
        fifo.unlink()
    return {"trigger_signal": t_signal - t0, "trigger_exit": t_process - t0,
            "exit_conmon": t_conmon - t_process, "conmon_signal": t_signal - t_conmon,
            "exit_signal": t_signal - t_process}


async def bench(address: str, tarball: Path, work: Path, n: int) -> dict[str, list[float]]:
    bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    await call(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", [MATCH],
               destination="org.freedesktop.DBus")
    watcher = Watcher(bus)
    fd = os.open(tarball, os.O_RDONLY)
    await call(bus, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
    os.close(fd)
    out: dict[str, list[float]] = {}
    for i in range(n + WARMUP):
        run = await one_run(bus, watcher, work / f"trigger-{i}")
        if i >= WARMUP:
            for k, v in run.items():
                out.setdefault(k, []).append(v)
    bus.disconnect()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-events-"))
    bus = PrivateBus(work)
    daemon = Daemon(work, bus.address)
    try:
        tarball = make_busybox(work)
        daemon.start()
        res = asyncio.run(bench(bus.address, tarball, work, args.n))
    finally:
        daemon.stop()
        bus.stop()
        shutil.rmtree(work, ignore_errors=True)

    def ms(key: str, q: float = 0.5) -> str:
        values = sorted(res[key])
        if q == 0.5:
            return f"{statistics.median(values) * 1000:.2f} ms"
        return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.2f} ms"

    met = "met" if statistics.median(res["exit_signal"]) * 1000 <= TARGET_MS else "missed"
    lines = ["| N | exit → signal (target ≤ 5 ms) | p90 | max | conmon exit → signal "
             "| process exit → conmon exit | trigger → process exit | trigger → signal |",
             "|---|---|---|---|---|---|---|---|",
             f"| {args.n} | {ms('exit_signal')} ({met}) "
             f"| {ms('exit_signal', 0.9)} | {ms('exit_signal', 1.0)} | {ms('conmon_signal')} "
             f"| {ms('exit_conmon')} | {ms('trigger_exit')} | {ms('trigger_signal')} |"]
    print("\n".join(lines))
    append_section(args.output, "Events: container exit → PropertiesChanged", machine_text,
                   lines, args.note)


if __name__ == "__main__":
    main()
