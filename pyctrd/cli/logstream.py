"""A container's output from OpenLog, printed to the stream it was written to.

OpenLog gives one record per line: "<RFC 3339 time> <stdout|stderr> <text>".
"""

from __future__ import annotations

import asyncio
import os
import re

from pyctrd.cli.bus import Daemon, Ref
from pyctrd.cli.logrecords import output_for, parse_record
from pyctrd.ops.names import CONTAINER_IFACE

READ_LIMIT = 1 << 22  # a record is at most 1 MiB (pyctrd cuts longer ones)


async def open_reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """An asyncio reader of the pipe ``fd`` (which it takes over)."""
    reader = asyncio.StreamReader(limit=READ_LIMIT)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    return reader, transport


async def count_records(daemon: Daemon, ref: Ref) -> int:
    """How many records the log holds now (to skip them when following later)."""
    fd = await daemon.call_for_fd(ref.path, CONTAINER_IFACE, "OpenLog", "b", [False])
    reader, transport = await open_reader(fd)
    try:
        count = 0
        while chunk := await reader.read(1 << 16):
            count += chunk.count(b"\n")
        return count
    finally:
        transport.close()


_FRACTION = re.compile(r"\.(\d+)")


def rfc3339_ns(text: str) -> int | None:
    """An RFC 3339 time as Unix nanoseconds, every digit kept (a float of seconds
    cannot tell two records a few nanoseconds apart); None if unreadable."""
    digits = ""
    match = _FRACTION.search(text)
    if match:
        digits = match.group(1)
        text = text[:match.start()] + text[match.end():]
    from datetime import datetime  # only logs --since/--until read times
    try:
        whole = datetime.fromisoformat(text)
    except ValueError:
        return None
    if whole.tzinfo is None:
        whole = whole.astimezone()
    return int(whole.timestamp()) * 1_000_000_000 + int((digits + "0" * 9)[:9])


def record_time(stamp: bytes) -> int | None:
    """A record's time in Unix nanoseconds (None if unreadable)."""
    return rfc3339_ns(stamp.decode(errors="replace"))


def in_window(stamp: bytes, since: int | None, until: int | None) -> bool:
    """Whether a record falls within logs --since/--until (Unix nanoseconds)."""
    if since is None and until is None:
        return True
    when = record_time(stamp)
    if when is None:
        return True
    return (since is None or when >= since) and (until is None or when <= until)


async def print_log(daemon: Daemon, ref: Ref, follow: bool, skip: int = 0,
                    timestamps: bool = False, prefix: bytes = b"",
                    since: int | None = None, until: int | None = None) -> None:
    """Print the log's records from the ``skip``-th on, each text to its own stream;
    only those between ``since`` and ``until`` (Unix nanoseconds) when given."""
    fd = await daemon.call_for_fd(ref.path, CONTAINER_IFACE, "OpenLog", "b", [follow])
    reader, transport = await open_reader(fd)
    try:
        seen = 0
        while line := await reader.readline():
            seen += 1
            if seen <= skip:
                continue
            stamp, stream, text = parse_record(line)
            if not in_window(stamp, since, until):
                if until is not None and (record_time(stamp) or 0) > until:
                    break  # records come in time order: nothing later can match
                continue
            out = output_for(stream)
            out.write(prefix + (stamp + b" " if timestamps else b"") + text + b"\n")
            out.flush()
    finally:
        transport.close()


async def terminal_snapshot(daemon: Daemon, ref: Ref, skip: int = 0) -> bytes:
    """What a terminal container has shown so far, as the bytes it wrote.

    The log splits the terminal's output at newlines; the terminal wrote "\\r\\n"
    for each, so a record ending in "\\r" had its newline and the others (a
    prompt) did not. The first ``skip`` records (earlier runs) are left out.
    """
    fd = await daemon.call_for_fd(ref.path, CONTAINER_IFACE, "OpenLog", "b", [False])
    reader, transport = await open_reader(fd)
    try:
        out = bytearray()
        seen = 0
        while line := await reader.readline():
            seen += 1
            if seen <= skip:
                continue
            text = parse_record(line)[2]
            out += text + b"\n" if text.endswith(b"\r") else text
        return bytes(out)
    finally:
        transport.close()


def overlap(before: bytes, after: bytes) -> int:
    """The length of the longest end of ``before`` that ``after`` starts with."""
    for size in range(min(len(before), len(after)), 0, -1):
        if before.endswith(after[:size]):
            return size
    return 0
