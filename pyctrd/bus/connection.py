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

dbus-daemon drops a connection that sends a message larger than its maximum
message size (32 MiB on Debian's system bus), and with it our name. Every
message is measured when it is queued (BackpressureWriter.buffer_message,
the one way out): a reply too large leaves as LimitsExceeded naming a
smaller call, a signal too large is dropped (logged, rate-limited), a call
of ours too large fails locally.
"""

import array
import asyncio
import logging
import os
import socket
from collections.abc import Callable
from copy import copy
from typing import Any

from dbus_fast import BusType, Message, MessageFlag, MessageType
from dbus_fast import introspection as intr
from dbus_fast.aio import MessageBus
from dbus_fast.aio.message_bus import _MessageWriter
from dbus_fast.auth import UID_NOT_SPECIFIED, AuthExternal
from dbus_fast.service import ServiceInterface

from pyctrd.bus.authz import CallGuard, operation_of
from pyctrd.bus.callers import Callers, current_call
from pyctrd.errors import LimitsExceeded
from pyctrd.ops.errors import kind_of
from pyctrd.ops.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)
_limited_log = RateLimitedLog(log)

# dbus-daemon's max_message_size on Debian's system bus (its built-in default);
# a session bus allows more, so this holds wherever we run.
MAX_MESSAGE_SIZE = 32 * 1024 * 1024
# What to call instead, for the calls whose answer grows with the number of objects.
SMALLER_CALLS = {
    "GetManagedObjects": "call ListContainers and ListImages, then "
                         "org.freedesktop.DBus.Properties.GetAll on each object",
    "Introspect": "call ListContainers and ListImages for the objects below it",
}

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
    max_message_size = MAX_MESSAGE_SIZE

    def buffer_message(self, msg: Message, future: asyncio.Future | None = None) -> None:
        data = msg._marshall(self.negotiate_unix_fd)
        unix_fds = msg.unix_fds
        if len(data) > self.max_message_size:
            replacement = self._oversized(msg, len(data))
            if replacement is None:
                if future is not None and not future.done():
                    future.set_result(None)  # nothing to send: our fds are closed now
                return
            data, unix_fds = replacement._marshall(self.negotiate_unix_fd), []
        self.messages.append((data, copy(unix_fds) if unix_fds else None, future))

    def _oversized(self, msg: Message, size: int) -> Message | None:
        """What to send instead of ``msg`` of ``size`` bytes (None: nothing)."""
        kind = msg.message_type
        if kind in (MessageType.METHOD_RETURN, MessageType.ERROR):
            member = getattr(self.bus, "reply_member", lambda m: "")(msg)
            _limited_log(logging.WARNING, ("reply", member),
                         "the reply to %s for %s would be %d bytes, more than the bus "
                         "allows (%d): answered LimitsExceeded", member or "a call",
                         msg.destination, size, self.max_message_size)
            error = kind_of(LimitsExceeded("")).dbus_name
            return Message(message_type=MessageType.ERROR, destination=msg.destination,
                           reply_serial=msg.reply_serial, serial=msg.serial,
                           error_name=error, signature="s",
                           body=[too_large_text(member, size, self.max_message_size)])
        if kind is MessageType.SIGNAL:
            _limited_log(logging.ERROR, ("signal", msg.member),
                         "dropped the signal %s.%s from %s: %d bytes, more than the bus "
                         "allows (%d)", msg.interface, msg.member, msg.path, size,
                         self.max_message_size)
            return None
        # A call of ours: fail it here rather than lose the connection.
        handler = self.bus._method_return_handlers.pop(msg.serial, None)
        if handler is not None:
            handler(None, LimitsExceeded(
                f"{msg.member} to {msg.destination} would be {size} bytes, more than the "
                f"bus allows ({self.max_message_size})"))
        return None

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
    callers: Callers  # set by connect()
    # (caller, serial) -> member of each call we are to answer: names the call in
    # the error that replaces a reply too large to send.
    _replying: dict[tuple[str, int], str]
    # Child node names of a path that exist without being exported (yet).
    virtual_children: Callable[[str], list[str]] | None = None

    def _introspect_export_path(self, path: str) -> intr.Node:
        node = super()._introspect_export_path(path)
        if self.virtual_children is not None:
            have = {child.name for child in node.nodes}
            node.nodes += [intr.Node(name) for name in self.virtual_children(path)
                           if name not in have]
        return node

    def note_call(self, msg: Message) -> None:
        """A message handler (the first): remember the member of a call we answer."""
        if (msg.message_type is MessageType.METHOD_CALL and msg.sender
                and not msg.flags & MessageFlag.NO_REPLY_EXPECTED):
            self._replying[(msg.sender, msg.serial)] = msg.member or ""

    def reply_member(self, reply: Message) -> str:
        return self._replying.get((reply.destination or "", reply.reply_serial), "")

    def send(self, msg: Message) -> asyncio.Future:  # type: ignore[override]
        if msg.message_type is not MessageType.METHOD_CALL and msg.reply_serial:
            # Answered (the writer has measured it by the time this returns).
            future = super().send(msg)
            self._replying.pop((msg.destination or "", msg.reply_serial), None)
        else:
            future = super().send(msg)
        if msg.unix_fds and _handed_over.intersection(msg.unix_fds):
            fds = list(msg.unix_fds)
            future.add_done_callback(lambda _: _close_handed_over(fds))
        return future

    def _make_method_handler(self, interface: ServiceInterface, method: Any) -> Any:
        handler = _knowing_the_call(super()._make_method_handler(interface, method),
                                    self.callers)
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


def _knowing_the_call(handler: Any, callers: Callers) -> Any:
    """``handler`` with the call in ``current_call`` (its task inherits it)."""

    def handle(msg: Message, send_reply: Any) -> None:
        token = current_call.set((msg, callers))
        try:
            handler(msg, send_reply)
        finally:
            current_call.reset(token)

    return handle


def too_large_text(member: str, size: int, limit: int) -> str:
    what = f"the reply to {member}" if member else "the reply"
    smaller = SMALLER_CALLS.get(member, "ask for less in one call")
    return (f"{what} would be {size} bytes, more than the bus's maximum message size "
            f"({limit} bytes); {smaller}")


def _needing_reply(handler: Any, name: str) -> Any:
    """A method returning a descriptor is pointless without its reply, and the
    descriptor (and whatever feeds it) would leak: such calls are ignored."""

    def handle(msg: Message, send_reply: Any) -> None:
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            log.info("%s called with NO_REPLY_EXPECTED by %s: ignored", name, msg.sender)
            return
        handler(msg, send_reply)

    return handle


async def connect(bus_type: BusType, address: str | None = None,
                  kernel_uid: bool = False) -> PyctrdBus:
    """``kernel_uid``: let the bus take our uid from the socket. In a user
    namespace our uid (0) is not the one the bus sees (the user's)."""
    auth = AuthExternal(UID_NOT_SPECIFIED) if kernel_uid else None
    bus = PyctrdBus(bus_address=address, bus_type=bus_type, negotiate_unix_fd=True,
                    auth=auth)
    bus._replying = {}
    bus.callers = Callers(bus)
    bus.add_message_handler(bus.note_call)  # None: never answers, only notes
    await bus.connect()
    bus._writer.__class__ = BackpressureWriter
    return bus


def send(bus: MessageBus, message: Message) -> None:
    """Queue a signal (or a prebuilt reply) without the per-message future
    bus.send() would create."""
    if not bus.connected:
        return
    message.serial = bus.next_serial()
    assert bus._writer is not None  # connected
    bus._writer.schedule_write(message, None)
    if isinstance(bus, PyctrdBus) and message.reply_serial:
        bus._replying.pop((message.destination or "", message.reply_serial), None)
