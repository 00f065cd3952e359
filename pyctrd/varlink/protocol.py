"""One Varlink connection: each call's operation authorized, then dispatched.

A guarded call (its operation has a polkit action, and the daemon an
Authority) is checked first: the caller from the peer's credentials, the
details from the operation and its resolved target, as D-Bus does it. Then
asyncvarlink decodes the parameters and runs the method.

asyncvarlink hands methods only their parameters; what a method needs about
its call (the peer, whether the client asked for `more`, the connection for
extra replies) travels in a context variable set here, which the method's
task inherits. Calls on one connection run one after another (asyncvarlink
reads the next only when the previous is answered), as the protocol wants.
"""

import asyncio
import contextvars
import logging
import select
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncvarlink import (
    FileDescriptorArray,
    VarlinkErrorReply,
    VarlinkInterfaceRegistry,
    VarlinkInterfaceServerProtocol,
    VarlinkMethodCall,
    VarlinkMethodReply,
)
from asyncvarlink.serviceerrors import InterfaceNotFound

from pyctrd.ops.authority import Authority
from pyctrd.ops.operations import Operation, Operations
from pyctrd.varlink.authz import UnknownMethod, caller_of, check_for, operation_of
from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.peer import Peer

log = logging.getLogger(__name__)

HANG_UP_GRACE = 5.0  # s a dropped Watch client has to read its error before the abort


@dataclass
class CallContext:
    peer: Peer
    more: bool
    connection: "Connection"


current_call: contextvars.ContextVar[CallContext] = contextvars.ContextVar("current_call")


class Connection(VarlinkInterfaceServerProtocol):
    def __init__(self, registry: VarlinkInterfaceRegistry, operations: Operations,
                 authority: Authority | None, peer: Peer, sock: socket.socket) -> None:
        super().__init__(registry)
        self._operations = operations
        self._authority = authority
        self.peer = peer
        self.sock = sock
        self.lost = asyncio.Event()

    def call_received(self, call: VarlinkMethodCall,
                      fds: FileDescriptorArray | None) -> asyncio.Future[None] | None:
        token = current_call.set(CallContext(self.peer, call.more, self))
        try:
            try:
                operation: Operation | None = operation_of(call.method_interface,
                                                           call.method_name)
            except UnknownMethod:
                # No such method (each one served is in a table: the server checks
                # that at start); asyncvarlink answers InterfaceNotFound/MethodNotFound.
                operation = None
            if operation is None or operation.action is None or self._authority is None:
                dispatched: asyncio.Future[None] | None = super().call_received(call, fds)
                return dispatched
            # The next call on this connection is read only once this task is done.
            task = asyncio.ensure_future(self._authorized(call, fds, operation))
            if fds is not None:
                fds.reference_until_done(task)
            return task
        finally:
            current_call.reset(token)

    async def _authorized(self, call: VarlinkMethodCall, fds: FileDescriptorArray | None,
                          operation: Operation) -> None:
        assert self._authority is not None and operation.action is not None
        errors = self.errors_of(call.method_interface)
        with errors.translated():
            caller = caller_of(self.peer, operation)
            needed = check_for(self._operations, operation, call.parameters)
            await self._authority.authorize_all(caller, needed.actions, needed.details)
        dispatched = super().call_received(call, fds)
        if dispatched is not None:
            await dispatched

    def errors_of(self, interface: str) -> ErrorSet:
        try:
            errors: ErrorSet = self._registry[interface].error_set  # type: ignore[attr-defined]
        except KeyError:
            raise InterfaceNotFound(interface=interface) from None
        return errors

    async def send_continued(self, parameters: dict[str, Any]) -> None:
        """One reply of a `more` call that is not its last; waits until it is sent,
        so a client that does not read holds up only its own call."""
        await self.send_reply(VarlinkMethodReply(parameters, continues=True), autoclose=False)

    def hang_up(self, error: VarlinkErrorReply) -> None:
        """Send ``error`` (it ends the call) and close; abort if it cannot be sent soon."""
        sent = self.send_error(error)
        transport = self._transport
        if transport is None:
            return
        sent.add_done_callback(lambda _: transport.close())
        asyncio.get_running_loop().call_later(HANG_UP_GRACE, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        super().connection_lost(exc)

    def peer_hung_up_waiter(self) -> Callable[[], None]:
        """Set ``lost`` when the client hangs up while a `more` call streams.

        asyncvarlink stops reading during a call, so the EOF of a client that
        left an idle Watch would only show at the next write; watch the socket
        ourselves meanwhile. Returns the function that stops watching.
        """
        loop = asyncio.get_running_loop()
        fd = self.sock.fileno()

        def readable() -> None:
            try:
                data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            loop.remove_reader(fd)
            # EOF alone may be a half-close (the client still reads); POLLHUP means
            # both directions are down. Pipelined data waits its turn.
            if not data and _hung_up(fd):
                self.lost.set()

        loop.add_reader(fd, readable)

        def stop() -> None:
            loop.remove_reader(fd)

        return stop


def _hung_up(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLHUP)
    return any(events & (select.POLLHUP | select.POLLERR) for _fd, events in poller.poll(0))
