"""Varlink's ways to watch a container without fd passing: its log as records
(Container.Logs), its resource figures (Container.GetStats), and the event
history (io.pyctrd.Events).

Logs reads the same pipe D-Bus's OpenLog hands out (pyctrd.core.stdio), so
following, rotation and the per-uid stream cap work the same; each record
goes out as a continued reply once the previous one is sent (a client that
does not read holds up only its own call), and a final reply without a
record ends the call.
"""

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime

from asyncvarlink import VarlinkInterface, varlinkmethod

from pyctrd.core.container import Container
from pyctrd.ops.names import VARLINK_EVENTS
from pyctrd.ops.operations import Operations
from pyctrd.ops.streams import StreamOwner
from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.protocol import current_call

LINE_MAX = 2 << 20  # a record is at most 1 MiB of text (conmonlog.RECORD_MAX) plus its head


@dataclass
class LogRecord:
    time: str  # RFC 3339, as conmon wrote it
    stream: str  # stdout or stderr
    text: str  # without its newline; bytes that are not UTF-8 replaced


@dataclass
class Stats:
    cpu_usec: int
    memory_bytes: int
    memory_limit: int
    pids: int
    block_read_bytes: int
    block_write_bytes: int
    read_usec: int
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None


def stats_of(figures: dict[str, int]) -> Stats:
    return Stats(**figures)


def _record(line: bytes) -> LogRecord | None:
    fields = line.rstrip(b"\n").split(b" ", 2)
    if len(fields) < 2:
        return None
    text = fields[2] if len(fields) == 3 else b""
    return LogRecord(fields[0].decode("ascii", "replace"), fields[1].decode("ascii", "replace"),
                     text.decode("utf-8", "replace"))


def _usec(rfc3339: str) -> int:
    try:
        moment = datetime.fromisoformat(rfc3339)
    except ValueError:
        return 0
    return int(moment.timestamp() * 1_000_000)


async def stream_logs(operations: Operations, container: Container, follow: bool,
                      since_usec: int, errors: ErrorSet) -> None:
    """Send the container's log records, from ``since_usec`` (0: all), as continued
    replies of the current call; with ``follow`` until it exits. Returns when the
    log is all sent; raises Failed if the client hung up meanwhile."""
    call = current_call.get()
    connection = call.connection
    owner = StreamOwner(call.peer.uid, f"varlink:{id(connection)}")
    fd = await operations.open_log(container, follow, owner)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_MAX, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0))
    stop_watching = connection.peer_hung_up_waiter()
    lost = asyncio.ensure_future(connection.lost.wait())
    try:
        while True:
            reading = asyncio.ensure_future(reader.readline())
            await asyncio.wait({reading, lost}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                raise errors.make("Failed", "the client hung up")
            line = reading.result()
            if not line:
                return
            record = _record(line)
            if record is None or (since_usec and _usec(record.time) < since_usec):
                continue
            try:
                await connection.send_continued({"record": {
                    "time": record.time, "stream": record.stream, "text": record.text}})
            except OSError:
                raise errors.make("Failed", "the client hung up") from None
    finally:
        lost.cancel()
        stop_watching()
        transport.close()  # the stream task sees its reader gone and ends


@dataclass
class Event:
    time_usec: int
    type: str
    action: str
    id: str
    attributes: dict[str, str]


ERRORS = ErrorSet(VARLINK_EVENTS, ("InvalidArgument", "AccessDenied", "LimitsExceeded",
                                   "Failed"))


class EventsVarlink(VarlinkInterface, name=VARLINK_EVENTS):
    """pyctrd's event history: what happened to containers, images and the rest,
    as D-Bus Manager.GetEvents shows it."""

    error_set = ERRORS
    errors = tuple(ERRORS.classes.values())

    def __init__(self, operations: Operations) -> None:
        self._ops = operations

    @varlinkmethod(return_parameter="events")
    async def List(self, *, since_usec: int | None = None,
                   until_usec: int | None = None) -> list[Event]:
        """The last 10,000 events, oldest first, kept across restarts: time
        (microseconds since the epoch), type ("container", "image", ...), action
        ("create", "start", "died", ...), the object's ID and attributes (name,
        image, exit_code, ...). since_usec and until_usec bound the times
        (inclusive); absent or 0: no bound."""
        with ERRORS.translated():
            found = self._ops.get_events(since_usec or 0, until_usec or 0)
        return [Event(e.time_usec, e.type, e.action, e.id, e.attributes) for e in found]
