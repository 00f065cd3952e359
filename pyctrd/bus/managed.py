"""GetManagedObjects at 10,000 objects: answered from pre-marshalled entries.

Marshalling every property of every object on each call costs about 100 µs
per object. Each object's dict entry ``{o a{sa{sv}}}`` is instead marshalled
once and kept until the object changes. A dict entry is 8-aligned and the
body starts 8-aligned, so cached entries (marshalled as the equivalent struct
at offset 0) are valid wherever they land once padded to 8 between entries.

The entries kept are bounded (a container's is ~3.5 kB: 100,000 of them would
be 350 MB): beyond ENTRIES_BUDGET the oldest make room. A reply larger than
the bus carries is refused as soon as it would be, not built whole first.
"""

import struct
from collections.abc import Callable, Iterable
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast._private.marshaller import Marshaller

from pyctrd.errors import LimitsExceeded

SIGNATURE = "a{oa{sa{sv}}}"
_ENTRY_SIGNATURE = "(oa{sa{sv}})"
_EMPTY_BODY_SIZE = 8  # an empty array: its length, then padding to the 8-aligned elements
ENTRIES_BUDGET = 64 << 20  # bytes of entries kept: every one up to ~18,000 containers

Interfaces = dict[str, dict[str, Variant]]


class ManagedObjects:
    def __init__(self, budget: int = ENTRIES_BUDGET) -> None:
        self._entries: dict[str, bytes] = {}  # oldest first
        self._size = 0  # of the entries kept
        self._budget = budget
        self._body: bytes | None = None  # the whole answer while nothing changes

    def invalidate(self, path: str) -> None:
        """``path`` was added, changed or removed."""
        data = self._entries.pop(path, None)
        if data is not None:
            self._size -= len(data)
        self._body = None

    def cached_body(self) -> bytes | None:
        return self._body

    def entry(self, path: str, interfaces: Callable[[], Interfaces]) -> bytes:
        data = self._entries.get(path)
        if data is None:
            data = bytes(Marshaller(_ENTRY_SIGNATURE, [[path, interfaces()]]).marshall())
            self._keep(path, data)
        return data

    def _keep(self, path: str, data: bytes) -> None:
        while self._entries and self._size + len(data) > self._budget:
            oldest = next(iter(self._entries))
            self._size -= len(self._entries.pop(oldest))
        if len(data) <= self._budget:
            self._entries[path] = data
            self._size += len(data)

    def body(self, objects: Iterable[tuple[str, Callable[[], Interfaces]]],
             limit: int | None = None) -> bytes:
        """The whole answer; LimitsExceeded once it would pass ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        for path, interfaces in objects:
            pad = -size % 8
            if pad:
                parts.append(b"\0" * pad)
                size += pad
            data = self.entry(path, interfaces)
            parts.append(data)
            size += len(data)
            if limit is not None and size > limit:
                raise LimitsExceeded(f"the reply to GetManagedObjects would be more than "
                                     f"the bus's maximum message size ({limit} bytes)")
        body = struct.pack("<I", size) + b"\0" * 4 + b"".join(parts)
        if len(body) <= self._budget:  # kept while nothing changes, as its entries are
            self._body = body
        return body


class RawReply:
    """A method return whose body is already marshalled, for the bus writer's queue
    (which measures it as it measures every message: pyctrd.bus.connection)."""

    unix_fds: list[int] = []
    message_type = MessageType.METHOD_RETURN
    path = interface = member = None

    def __init__(self, call: Message, signature: str, body: bytes) -> None:
        self._template = Message.new_method_return(call, signature, [{}])
        self._body = body
        self.serial = 0  # set by whoever queues it
        self.destination = call.sender
        self.reply_serial = call.serial

    def _marshall(self, negotiate_unix_fd: Any = False) -> bytes:
        self._template.serial = self.serial
        header = bytearray(self._template._marshall(False))
        if header[0] != ord("l"):
            raise ValueError("expected a little-endian message from dbus-fast")
        del header[-_EMPTY_BODY_SIZE:]
        header[4:8] = struct.pack("<I", len(self._body))
        return bytes(header) + self._body
