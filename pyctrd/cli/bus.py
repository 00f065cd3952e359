"""pyctr's side of the bus: one connection to pyctrd and typed helpers for its API.

Every error reply becomes a DaemonError; descriptors received in replies are
the caller's to close.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from pyctrd.cli.errors import CliError, DaemonError
from pyctrd.ops.names import (
    BUS_NAME,
    CONTAINER_IFACE,
    IMAGE_IFACE,
    IMAGE_PREFIX,
    MANAGER_IFACE,
    MANAGER_PATH,
    OBJECT_MANAGER_IFACE,
    PROPERTIES_IFACE,
)

PAGE_SIZE = 2000  # containers per ListContainersPaged reply (~2 MB at most)
FEW_PROPERTIES_PAGE = 5000  # the most it gives: ps's 11 properties, ~3 MB


def unwrap(value: Any) -> Any:
    """Variants (nested in dicts and lists too) → plain Python values."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass(frozen=True)
class Ref:
    """A container or image as the user named it, and the object it resolved to."""

    given: str
    path: str

    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[1]


class Daemon:
    """One connection to pyctrd."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        # polkit may ask for a password only when someone can type it
        self.flags = (MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if sys.stdin.isatty()
                      else MessageFlag.NONE)

    @classmethod
    async def connect(cls, address: str | None, user: bool) -> Daemon:
        try:
            if address:
                bus = MessageBus(bus_address=address, negotiate_unix_fd=True)
            else:
                bus = MessageBus(bus_type=BusType.SESSION if user else BusType.SYSTEM,
                                 negotiate_unix_fd=True)
            return cls(await bus.connect())
        except Exception as err:  # dbus-fast raises many kinds for a bad address
            which = address or ("the session bus" if user else "the system bus")
            raise CliError(f"cannot connect to {which}: {err}") from None

    def close(self) -> None:
        self.bus.disconnect()

    # plain calls

    async def call_message(self, path: str, interface: str, member: str, signature: str = "",
                           body: list[Any] | None = None, fds: list[int] | None = None) -> Message:
        reply = await self.bus.call(Message(
            destination=BUS_NAME, path=path, interface=interface, member=member,
            signature=signature, body=body or [], unix_fds=fds or [], flags=self.flags))
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            for fd in reply.unix_fds:
                os.close(fd)
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise DaemonError(reply.error_name or "", text)
        return reply

    async def call(self, path: str, interface: str, member: str, signature: str = "",
                   body: list[Any] | None = None, fds: list[int] | None = None) -> list[Any]:
        reply = await self.call_message(path, interface, member, signature, body, fds)
        for fd in reply.unix_fds:  # not asked for: do not leak it
            os.close(fd)
        return list(reply.body)

    async def call_for_fd(self, path: str, interface: str, member: str, signature: str = "",
                          body: list[Any] | None = None) -> int:
        """A method returning one descriptor (h): the descriptor, ours to close."""
        reply = await self.call_message(path, interface, member, signature, body)
        if len(reply.unix_fds) != 1 or reply.signature != "h":
            for fd in reply.unix_fds:
                os.close(fd)
            raise CliError(f"pyctrd's {member} reply carried no descriptor")
        received: int = reply.unix_fds[reply.body[0]]
        return received

    async def manager(self, member: str, signature: str = "", body: list[Any] | None = None,
                      fds: list[int] | None = None) -> list[Any]:
        return await self.call(MANAGER_PATH, MANAGER_IFACE, member, signature, body, fds)

    async def container_call(self, ref: Ref, member: str, signature: str = "",
                             body: list[Any] | None = None,
                             fds: list[int] | None = None) -> list[Any]:
        return await self.call(ref.path, CONTAINER_IFACE, member, signature, body, fds)

    # lookups

    async def container(self, name_or_id: str) -> Ref:
        (path,) = await self.manager("GetContainer", "s", [name_or_id])
        return Ref(name_or_id, path)

    async def image(self, reference_or_id: str) -> Ref:
        (path,) = await self.manager("GetImage", "s", [reference_or_id])
        return Ref(reference_or_id, path)

    async def properties(self, path: str, interface: str) -> dict[str, Any]:
        (values,) = await self.call(path, PROPERTIES_IFACE, "GetAll", "s", [interface])
        found: dict[str, Any] = unwrap(values)
        return found

    async def container_properties(self, ref: Ref) -> dict[str, Any]:
        return await self.properties(ref.path, CONTAINER_IFACE)

    async def managed_objects(self) -> dict[str, dict[str, dict[str, Any]]]:
        """path → interface → properties, for every container and image."""
        (objects,) = await self.call(MANAGER_PATH, OBJECT_MANAGER_IFACE, "GetManagedObjects")
        found: dict[str, dict[str, dict[str, Any]]] = unwrap(objects)
        return found

    async def containers(self, properties: Sequence[str] = (),
                         states: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every container's properties (``properties`` only, if given: decoding
        is most of the time at 10,000), only those in ``states`` if given, oldest
        first.

        A page at a time (ListContainersPaged): GetManagedObjects' one reply of
        every object outgrows the bus's message limit at tens of thousands."""
        found: list[dict[str, Any]] = []
        after = ""
        while True:
            # each page scans every container in the daemon: few, large pages
            options = {"limit": Variant("u", FEW_PROPERTIES_PAGE if properties else PAGE_SIZE)}
            if properties:
                options["properties"] = Variant("as", list({"CreatedTimestamp", *properties}))
            if states:
                options["states"] = Variant("as", list(states))
            if after:
                options["after"] = Variant("s", after)
            objects, after = await self.manager("ListContainersPaged", "a{sv}", [options])
            # no container property holds a variant: one level to unwrap (a third of
            # the time at 100,000 when unwrap() recursed into every value)
            found.extend({name: value.value for name, value in ifaces[CONTAINER_IFACE].items()}
                         for ifaces in objects.values())
            if not after:
                break
        return sorted(found, key=lambda c: c.get("CreatedTimestamp", 0))

    async def images(self) -> list[dict[str, Any]]:
        """Every image's properties, newest first (as podman lists them)."""
        objects = await self.managed_objects()
        found = [ifaces[IMAGE_IFACE] for path, ifaces in objects.items()
                 if path.startswith(IMAGE_PREFIX) and IMAGE_IFACE in ifaces]
        return sorted(found, key=lambda i: i.get("CreatedTimestamp", 0), reverse=True)

    async def add_match(self, rule: str) -> None:
        reply = await self.bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule]))
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            raise DaemonError(reply.error_name or "", str(reply.body[0] if reply.body else ""))
