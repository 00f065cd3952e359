"""Calling a Container method that returns a file descriptor (type h)."""

import asyncio
import os

from conftest import BUS_NAME, CONTAINER, Client
from dbus_fast import DBusError, Message, MessageType


async def call_for_fd(bus: Client, path: str, member: str, signature: str = "",
                      body: list | None = None) -> int:
    """The descriptor the method returns, ours to close; DBusError for an error reply."""
    reply = await asyncio.wait_for(bus.bus.call(Message(
        destination=BUS_NAME, path=path, interface=CONTAINER, member=member,
        signature=signature, body=body or [])), 30)
    assert reply is not None
    if reply.message_type is MessageType.ERROR:
        for fd in reply.unix_fds:
            os.close(fd)
        raise DBusError(reply.error_name, reply.body[0] if reply.body else "", reply)
    assert reply.signature == "h" and len(reply.unix_fds) == 1, reply.unix_fds
    return reply.unix_fds[reply.body[0]]
