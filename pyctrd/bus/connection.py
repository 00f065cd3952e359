"""Our dbus-fast connection: survives full socket buffers, leaves ObjectManager to us.

dbus-fast (like dbus-next, python-dbus-next#153) treats EAGAIN from a
socket write as a fatal error and drops the connection. A burst of signals
to a slow subscriber fills the send buffer long before anything is wrong.
BackpressureWriter keeps the unsent rest of the message and waits for the
socket to become writable again, as any non-blocking writer should; the
queue holds the rest, so nothing is dropped and the event loop never blocks.

A method returning a descriptor (type h) hands it over: dbus-fast passes the
number to sendmsg when the reply is written, possibly later than the method
returns, and never closes it. hand_over() marks it, and PyctrdBus closes our
copy once the reply is written (or has failed), so none leaks.
"""

import array
import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from dbus_fast import BusType, Message, MessageFlag
from dbus_fast import introspection as intr
from dbus_fast.aio import MessageBus
from dbus_fast.aio.message_bus import _MessageWriter
from dbus_fast.service import ServiceInterface

from pyctrd.bus.authz import CallGuard, operation_of

log = logging.getLogger(__name__)

# Descriptors a method has returned: closed once the reply carrying them is written.
_handed_over: set[int] = set()


def hand_over(fd: int) -> int:
    """Return ``fd`` from a method; it is closed after the reply is sent."""
    _handed_over.add(fd)
    return fd


def _close_handed_over(fds: list[int]) -> None:
    for fd in fds:
        if fd in _handed_over:
            _handed_over.discard(fd)
            os.close(fd)


class BackpressureWriter(_MessageWriter):
    def write_callback(self, remove_writer: bool = True) -> None:
        sock = self.sock
        assert sock is not None and self.fd is not None  # set once connected
        try:
            while True:
                if self.buf is None:
                    if not self.messages:
                        if remove_writer:
                            self.loop.remove_writer(self.fd)
                        return
                    buf, unix_fds, fut = self.messages.popleft()
                    self.unix_fds = unix_fds
                    self.buf = memoryview(buf)
                    self.offset = 0
                    self.fut = fut
                try:
                    if self.unix_fds and self.negotiate_unix_fd:
                        ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    array.array("i", self.unix_fds))]
                        self.offset += sock.sendmsg([self.buf[self.offset:]], ancdata)
                        self.unix_fds = None
                    else:
                        self.offset += sock.send(self.buf[self.offset:])
                except (BlockingIOError, InterruptedError):
                    # Full buffer: keep our place; schedule_write or the still
                    # registered writer resumes us when the socket is writable.
                    return
                if self.offset < len(self.buf):
                    return
                self.buf = None
                if self.fut is not None and not self.fut.done():
                    self.fut.set_result(None)
        except Exception as err:
            if self.fut is not None and not self.fut.done():
                if self.bus._user_disconnect:
                    self.fut.set_result(None)
                else:
                    self.fut.set_exception(err)
            self.bus._finalize(err)


class PyctrdBus(MessageBus):
    """A MessageBus whose ObjectManager signals BusService sends itself, and
    whose guarded method handlers ask the CallGuard first (when there is one).

    dbus-fast would emit InterfacesAdded per exported interface from the
    object's own path; the spec (and GDBusObjectManagerClient) wants them
    from the manager's path, with all interfaces of the object at once.
    """

    guard: CallGuard | None = None  # set before exporting anything; None: no polkit
    # Child node names of a path that exist without being exported (yet).
    virtual_children: Callable[[str], list[str]] | None = None

    def _introspect_export_path(self, path: str) -> intr.Node:
        node = super()._introspect_export_path(path)
        if self.virtual_children is not None:
            have = {child.name for child in node.nodes}
            node.nodes += [intr.Node(name) for name in self.virtual_children(path)
                           if name not in have]
        return node

    def send(self, msg: Message) -> asyncio.Future:  # type: ignore[override]
        future = super().send(msg)
        if msg.unix_fds and _handed_over.intersection(msg.unix_fds):
            fds = list(msg.unix_fds)
            future.add_done_callback(lambda _: _close_handed_over(fds))
        return future

    def _make_method_handler(self, interface: ServiceInterface, method: Any) -> Any:
        handler = super()._make_method_handler(interface, method)
        if "h" in method.out_signature:
            handler = _needing_reply(handler, method.name)
        # Every method is an operation, even without polkit: one that is not is
        # refused here, when its object is first exported.
        operation = operation_of(interface.name, method.name)
        if self.guard is None or operation.action is None:
            return handler
        return self.guard.guard(handler, interface, operation)  # type: ignore[arg-type]

    def _emit_interface_added(self, path: str, interface: ServiceInterface) -> None:
        pass

    def _emit_interface_removed(self, path: str, removed_interfaces: list[str]) -> None:
        pass


def _needing_reply(handler: Any, name: str) -> Any:
    """A method returning a descriptor is pointless without its reply, and the
    descriptor (and whatever feeds it) would leak: such calls are ignored."""

    def handle(msg: Message, send_reply: Any) -> None:
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            log.info("%s called with NO_REPLY_EXPECTED by %s: ignored", name, msg.sender)
            return
        handler(msg, send_reply)

    return handle


async def connect(bus_type: BusType, address: str | None = None) -> PyctrdBus:
    bus = PyctrdBus(bus_address=address, bus_type=bus_type, negotiate_unix_fd=True)
    await bus.connect()
    bus._writer.__class__ = BackpressureWriter
    return bus


def send(bus: MessageBus, message: Message) -> None:
    """Queue a signal without the per-message future bus.send() would create."""
    if not bus.connected:
        return
    message.serial = bus.next_serial()
    assert bus._writer is not None  # connected
    bus._writer.schedule_write(message, None)
