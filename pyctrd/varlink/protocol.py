"""One Varlink connection: authorize each call, then let asyncvarlink dispatch it.

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

from pyctrd.core.engine import Engine
from pyctrd.varlink.authz import Authorizer, UnknownMethod, details_for, varlink_action
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
    def __init__(self, registry: VarlinkInterfaceRegistry, runtime: Engine,
                 authorizer: Authorizer | None, peer: Peer, sock: socket.socket) -> None:
        super().__init__(registry)
        self._runtime = runtime
        self._authorizer = authorizer
        self.peer = peer
        self.sock = sock
        self.lost = asyncio.Event()

    def call_received(self, call: VarlinkMethodCall,
                      fds: FileDescriptorArray | None) -> asyncio.Future[None] | None:
        token = current_call.set(CallContext(self.peer, call.more, self))
        try:
            try:
                action = varlink_action(call.method_interface, call.method_name)
            except UnknownMethod:
                action = None  # asyncvarlink answers InterfaceNotFound/MethodNotFound
            if action is None or self._authorizer is None:
                return super().call_received(call, fds)
            task = asyncio.ensure_future(self._authorized(call, fds, action))
            if fds is not None:
                fds.reference_until_done(task)
            return task
        finally:
            current_call.reset(token)

    async def _authorized(self, call: VarlinkMethodCall, fds: FileDescriptorArray | None,
                          action: str) -> None:
        assert self._authorizer is not None
        errors = self.errors_of(call.method_interface)
        details = details_for(self._runtime, call.method_interface, call.method_name,
                              call.parameters)
        await self._authorizer.authorize(self.peer, action, details, errors)
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
        return lambda: loop.remove_reader(fd)


def _hung_up(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLHUP)
    return any(events & (select.POLLHUP | select.POLLERR) for _fd, events in poller.poll(0))
