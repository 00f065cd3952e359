"""pyctr stats: containers' resource figures (Container.GetStats), as podman shows them.

CPU % is the CPU time used between two readings over the wall time between
them, as podman computes it: the first reading is taken against the
container's start (so --no-stream shows the average since it started), each
later one against the one before. MEM % is of the container's memory limit,
or of the host's memory when it has none. A figure pyctrd cannot read (no
network: NET IO) is shown as podman shows a zero pair, "-- / --".
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys
from dataclasses import dataclass
from typing import Any

from pyctrd.cli.bus import Daemon, Ref
from pyctrd.cli.errors import EXIT_ENGINE, CliError, about
from pyctrd.cli.gotemplate import Report
from pyctrd.cli.reports import GoStruct
from pyctrd.ops.names import container_path

STATS_DEFAULT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
                 "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDS}}\t{{.CPU}}\t{{.AVGCPU}}")
STATS_HEADERS = {"ID": "ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemUsageBytes": "MEM USAGE / LIMIT",
                 "MemPerc": "MEM %", "NetIO": "NET IO", "BlockIO": "BLOCK IO",
                 "PIDS": "PIDS", "CPU": "CPU TIME", "AVGCPU": "AVG CPU %", "UpTime": "UPTIME"}
CLEAR = "\033[2J\033[H"  # what podman prints before each table on a terminal


def go_units_size(size: float, binary: bool = False) -> str:
    """docker/go-units HumanSize (decimal, 4 significant digits, no space) or
    BytesSize (binary), as podman's stats columns print sizes."""
    base, units = ((1024.0, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]) if binary
                   else (1000.0, ["B", "kB", "MB", "GB", "TB", "PB"]))
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.4g}{units[i]}"


def pair(a: int, b: int, binary: bool = False) -> str:
    """podman's combineHumanValues: "-- / --" when both are zero."""
    if not a and not b:
        return "-- / --"
    return f"{go_units_size(a, binary)} / {go_units_size(b, binary)}"


def percent(value: float) -> str:
    """podman's floatToPercentString: two decimals, "--" for nothing."""
    if not value or math.isnan(value):
        return "--"
    return f"{value:.2f}%"


def go_duration(usec: int) -> str:
    """Go's time.Duration String() of a number of microseconds."""
    if usec == 0:
        return "0s"
    if usec < 1000:
        return f"{usec}µs"
    if usec < 1_000_000:
        return f"{usec / 1000:.3f}".rstrip("0").rstrip(".") + "ms"
    whole, frac = divmod(usec, 1_000_000)
    secs = f"{whole % 60}" + (f".{frac:06d}".rstrip("0") if frac else "") + "s"
    minutes, hours = (whole // 60) % 60, whole // 3600
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def host_memory() -> int:
    """MemTotal, what a container with no memory limit may use."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Reading:
    cpu_usec: int
    read_usec: int


def stats_item(props: dict[str, Any], stats: dict[str, int], previous: Reading,
               no_trunc: bool = False, memory_total: int = 0) -> GoStruct:
    """One container's row as podman's stats template and JSON see it."""
    cpu = stats.get("cpu_usec", 0)
    now = stats.get("read_usec", 0)
    started = props.get("StartedTimestamp", 0)
    elapsed = now - previous.read_usec
    cpu_percent = (cpu - previous.cpu_usec) * 100.0 / elapsed if elapsed > 0 else 0.0
    up = now - started if started else 0
    avg = cpu * 100.0 / up if up > 0 else 0.0
    usage = stats.get("memory_bytes", 0)
    limit = stats.get("memory_limit", 0) or memory_total
    mem_percent = usage * 100.0 / limit if limit else 0.0
    cid = props.get("Id", "")
    row = {
        "ID": cid if no_trunc else cid[:12],
        "Name": props.get("Name", ""),
        "CPUPerc": percent(cpu_percent),
        "AVGCPU": percent(avg),
        "CPU": go_duration(cpu),
        "MemUsage": pair(usage, limit),
        "MemUsageBytes": pair(usage, limit, binary=True),
        "MemPerc": percent(mem_percent),
        "NetIO": pair(stats.get("net_rx_bytes", 0), stats.get("net_tx_bytes", 0)),
        "BlockIO": pair(stats.get("block_read_bytes", 0), stats.get("block_write_bytes", 0)),
        "PIDS": str(stats.get("pids", 0)),
        "UpTime": go_duration(up),
    }
    json_form = {
        "id": row["ID"], "name": row["Name"], "cpu_time": row["CPU"],
        "cpu_percent": row["CPUPerc"], "avg_cpu": row["AVGCPU"],
        "mem_usage": row["MemUsage"], "mem_usage_bytes": row["MemUsageBytes"],
        "mem_percent": row["MemPerc"], "net_io": row["NetIO"], "block_io": row["BlockIO"],
        "pids": row["PIDS"],
    }
    return GoStruct("containerStats", row, json_form=json_form)


class Watched:
    """A container being read, with its last reading."""

    def __init__(self, ref: Ref, props: dict[str, Any]) -> None:
        self.ref = ref
        self.props = props
        self.previous = Reading(0, props.get("StartedTimestamp", 0))


async def _read(daemon: Daemon, watched: Watched) -> dict[str, int]:
    (raw,) = await daemon.container_call(watched.ref, "GetStats")
    return {key: int(getattr(value, "value", value)) for key, value in raw.items()}


def _running(c: dict[str, Any]) -> bool:
    return c.get("State") in ("running", "paused")


async def _chosen(daemon: Daemon, args: argparse.Namespace) -> list[Watched]:
    if args.containers and (args.all or args.latest):
        raise CliError(f"{'--all' if args.all else '--latest'} and containers cannot be "
                       "used together")
    if args.containers:
        found = []
        for name in args.containers:
            try:
                ref = await daemon.container(name)
                props = await daemon.container_properties(ref)
            except CliError as err:
                raise CliError(about(name, err)) from None
            if not _running(props):
                raise CliError(f"container {name} is not running")
            found.append(Watched(ref, props))
        return found
    containers = [c for c in await daemon.containers() if args.all or _running(c)]
    if args.latest:
        containers = containers[-1:]
    return [Watched(Ref(c["Id"], container_path(c["Id"])), c) for c in containers]


async def cmd_stats(daemon: Daemon, args: argparse.Namespace) -> int:
    report = Report(args.format, STATS_DEFAULT, STATS_HEADERS, noheading=args.noheading)
    watched = await _chosen(daemon, args)
    memory_total = host_memory()
    named = bool(args.containers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if not args.no_stream:
        # Ctrl-C ends a stream as podman's does: status 0 after the last table.
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    clear = (not args.no_stream and not args.no_reset and sys.stdout.isatty()
             and args.format in ("", "table"))
    while True:
        items = []
        for w in list(watched):
            if not _running(w.props):
                items.append(stats_item(w.props, {}, w.previous, args.no_trunc, 0))
                continue
            try:
                stats = await _read(daemon, w)
            except CliError as err:
                if named:
                    print(f"Error: {about(w.ref.given, err)}", file=sys.stderr, flush=True)
                    return EXIT_ENGINE
                watched.remove(w)  # it stopped or went: podman drops it from the table
                continue
            items.append(stats_item(w.props, stats, w.previous, args.no_trunc,
                                    memory_total))
            w.previous = Reading(stats.get("cpu_usec", 0), stats.get("read_usec", 0))
        text = report.lines(items)
        if clear:
            sys.stdout.write(CLEAR)
        sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        if args.no_stream:
            return 0
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(args.interval, 1))
            return 0
        except TimeoutError:
            pass

