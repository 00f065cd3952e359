"""ListContainersPaged: GetManagedObjects' reply, a page of containers at a time.

A page is the ``a{oa{sa{sv}}}`` GetManagedObjects would give for those
containers (and the ID to continue after), so a client decodes both alike,
and with every property the daemon answers from GetManagedObjects'
pre-marshalled entries (pyctrd/bus/managed.py): a page costs no marshalling
of the containers that did not change since.
Which containers form a page is pyctrd.ops.listing's, shared with Varlink's
ListPaged.
"""

import struct
from collections.abc import Callable
from typing import Any

from dbus_fast import Message, Variant
from dbus_fast._private.marshaller import Marshaller

from pyctrd.bus.managed import Interfaces, ManagedObjects, RawReply
from pyctrd.bus.props import variants
from pyctrd.core.container import Container
from pyctrd.errors import InvalidArgument
from pyctrd.ops import listing
from pyctrd.ops.names import CONTAINER_IFACE, PROPERTIES_IFACE, container_path
from pyctrd.ops.properties import CONTAINER_PROPERTIES

# a page of containers and the ID to continue after (Operations.page_containers)
Pager = Callable[[listing.PageRequest], tuple[list[Container], str]]

SIGNATURE = "a{oa{sa{sv}}}s"
_ENTRY_SIGNATURE = "(oa{sa{sv}})"
# as bus/service.py's entries have them
_STANDARD = (PROPERTIES_IFACE, "org.freedesktop.DBus.Introspectable",
             "org.freedesktop.DBus.Peer")
_ALL = tuple(CONTAINER_PROPERTIES.values())
_OPTIONS = {"after": "s", "limit": "u", "properties": "as", "states": "as"}


def page_request(options: dict[str, Variant]) -> listing.PageRequest:
    """The a{sv} options, checked (InvalidArgument naming what is wrong)."""
    decoded: dict[str, Any] = {}
    for key, variant in options.items():
        expected = _OPTIONS.get(key)
        if expected is None:
            raise InvalidArgument(f"unknown option {key!r}; the options are "
                                  f"{', '.join(_OPTIONS)}")
        if variant.signature != expected:
            raise InvalidArgument(f"option {key!r} must be of type {expected}, "
                                  f"not {variant.signature}")
        decoded[key] = variant.value
    return listing.page_request(**decoded)


def interfaces(container: Container, request: listing.PageRequest) -> Interfaces:
    """A container's entry as GetManagedObjects has it, with the properties asked for."""
    return {CONTAINER_IFACE: variants(CONTAINER_PROPERTIES, container, request.properties),
            **{name: {} for name in _STANDARD}}


def page_values(pager: Pager, request: listing.PageRequest
                ) -> tuple[dict[str, Interfaces], str]:
    """The reply as values, for dbus-fast to marshal (the Manager method's own path)."""
    found, after = pager(request)
    return {container_path(c.id): interfaces(c, request) for c in found}, after


def page_reply(msg: Message, pager: Pager, managed: ManagedObjects,
               interfaces_of: Callable[[Container], Interfaces]) -> RawReply:
    """The reply to ``msg``, marshalled here; with every property, of the entries
    GetManagedObjects keeps (``interfaces_of`` makes a missing one)."""
    request = page_request(msg.body[0])
    found, after = pager(request)
    parts: list[bytes] = []
    size = 0
    every = request.properties == _ALL
    for container in found:
        path = container_path(container.id)
        if every:
            # Kept until the container changes, as GetManagedObjects keeps them (which
            # `pyctr ps` called before): ~3.5 kB a container.
            data = managed.entry(path, lambda c=container: interfaces_of(c))  # type: ignore[misc]
        else:
            data = bytes(Marshaller(_ENTRY_SIGNATURE,
                                    [[path, interfaces(container, request)]]).marshall())
        pad = -size % 8  # each dict entry 8-aligned; the first one is, at offset 8
        parts.append(b"\0" * pad + data)
        size += pad + len(data)
    text = after.encode()
    body = (struct.pack("<I", size) + b"\0" * 4 + b"".join(parts)
            + b"\0" * (-(8 + size) % 4) + struct.pack("<I", len(text)) + text + b"\0")
    return PageReply(msg, body)


class PageReply(RawReply):
    """RawReply for this method's signature: its empty body is 13 bytes (an empty
    array, then an empty string), not 8."""

    _EMPTY = 13

    def __init__(self, call: Message, body: bytes) -> None:
        super().__init__(call, SIGNATURE, body)
        self._template = Message.new_method_return(call, SIGNATURE, [{}, ""])

    def _marshall(self, negotiate_unix_fd: Any = False) -> bytes:
        self._template.serial = self.serial
        header = bytearray(self._template._marshall(False))
        if header[0] != ord("l"):
            raise ValueError("expected a little-endian message from dbus-fast")
        del header[-self._EMPTY:]
        header[4:8] = struct.pack("<I", len(self._body))
        return bytes(header) + self._body
