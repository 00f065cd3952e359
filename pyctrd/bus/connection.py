"""Our dbus-fast connection: survives full socket buffers, leaves ObjectManager to us.

dbus-fast (like dbus-next, python-dbus-next#153) treats EAGAIN from a
socket write as a fatal error and drops the connection. A burst of signals
to a slow subscriber fills the send buffer long before anything is wrong.
BackpressureWriter keeps the unsent rest of the message and waits for the
socket to become writable again, as any non-blocking writer should; the
queue holds the rest, so nothing is dropped and the event loop never blocks.
"""

import array
import socket
from typing import Any

from dbus_fast import BusType, Message
from dbus_fast.aio import MessageBus
from dbus_fast.aio.message_bus import _MessageWriter
from dbus_fast.service import ServiceInterface

from pyctrd.bus.authz import Authorizer, action_for


class BackpressureWriter(_MessageWriter):
    def write_callback(self, remove_writer: bool = True) -> None:
        sock = self.sock
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
    whose method handlers ask the authorizer first (when there is one).

    dbus-fast would emit InterfacesAdded per exported interface from the
    object's own path; the spec (and GDBusObjectManagerClient) wants them
    from the manager's path, with all interfaces of the object at once.
    """

    authorizer: Authorizer | None = None  # set before exporting anything

    def _make_method_handler(self, interface: ServiceInterface, method: Any) -> Any:
        handler = super()._make_method_handler(interface, method)
        if self.authorizer is None:
            return handler
        action = action_for(interface.name, method.name)
        if action is None:
            return handler
        return self.authorizer.guard(handler, interface, method.name, action)

    def _emit_interface_added(self, path: str, interface: ServiceInterface) -> None:
        pass

    def _emit_interface_removed(self, path: str, removed_interfaces: list[str]) -> None:
        pass


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
    bus._writer.schedule_write(message, None)
