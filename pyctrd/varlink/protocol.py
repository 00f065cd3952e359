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

Reading is ours, not asyncvarlink's (see framing.py): linear, and a message
past the size limit ends the connection with LimitsExceeded. A connection
with no call running (before its first call, too) is closed after the idle
timeout; a running call, a `more` Watch included, keeps it open.
"""

import asyncio
import contextlib
import contextvars
import logging
import re
import select
import socket
from collections.abc import Awaitable, Callable
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
from asyncvarlink.types import JSONObject

from pyctrd.ops import shutdown
from pyctrd.ops.authority import Authority
from pyctrd.ops.names import VARLINK_CONTAINER, VARLINK_IMAGE
from pyctrd.ops.operations import Operation, Operations
from pyctrd.ops.ratelimit import RateLimitedLog
from pyctrd.varlink.authz import UnknownMethod, caller_of, check_for, operation_of
from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.framing import Framer, MessageTooLarge
from pyctrd.varlink.limits import HANG_UP_GRACE, Limits, PendingBytes
from pyctrd.varlink.peer import Peer

log = logging.getLogger(__name__)
refusals = RateLimitedLog(log)


@dataclass
class CallContext:
    peer: Peer
    more: bool
    connection: "Connection"


current_call: contextvars.ContextVar[CallContext] = contextvars.ContextVar("current_call")


class Connection(VarlinkInterfaceServerProtocol):
    def __init__(self, registry: VarlinkInterfaceRegistry, operations: Operations,
                 authority: Authority | None, peer: Peer, sock: socket.socket,
                 limits: Limits | None = None, pending: PendingBytes | None = None) -> None:
        super().__init__(registry)
        self._operations = operations
        self._authority = authority
        self.peer = peer
        self.sock = sock
        self.lost = asyncio.Event()
        self._limits = limits or Limits()
        self._framer = Framer(self._limits.max_message_size)
        self._pending = pending or PendingBytes(self._limits.pending_per_uid)
        self._counted = 0  # of the framer's bytes, what self._pending counts for us
        self._refused = False
        self._running = 0  # calls taken from the stream and not yet done
        self._idle_timer: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Future[None]] = set()  # running (one, or none)
        self._ending = False  # the daemon is shutting down
        self._unsent: set[asyncio.Future[None]] = set()  # replies since, being written

    # reading, bounded

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_idle_timer()

    def message_received(self, data: bytes, fds: FileDescriptorArray | None) -> None:
        if self._refused:
            return
        try:
            complete = self._framer.feed(data)
        except MessageTooLarge as err:
            self._refuse_message(f"a Varlink message may have at most {err.limit} bytes",
                                 data)
            return
        if not self._count_pending(self._framer.pending):
            self._refuse_message(
                f"uid {self.peer.uid}'s connections hold {self._pending.limit} bytes of "
                "unfinished messages already; finish or close one", data)
            return
        if complete:
            self._disarm_idle_timer()
            # Whole messages only, so asyncvarlink's own buffer stays empty.
            super().message_received(complete, fds)
            # Read on once they are done (asyncvarlink resumes then): a client
            # pipelining calls faster than they run queues no more than a read.
            if self._consumer_queue and self._transport is not None:
                self._transport.pause_reading()

    def _count_pending(self, now: int) -> bool:
        if not self._pending.change(self.peer.uid, now - self._counted):
            return False
        self._counted = now
        return True

    def _refuse_message(self, why: str, data: bytes) -> None:
        self._refused = True
        interface = _interface_named(self._framer.head(4096) or data[:4096])
        self._framer = Framer(0)  # its bytes are of no use now
        self._count_pending(0)
        # Read no more: after SHUT_RD the kernel refuses the client's further
        # writes (EPIPE), and it can still read the error.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)
        if self._transport is not None:
            self._transport.pause_reading()
        refusals(logging.WARNING, "message", "varlink: hanging up on a client (pid %d, "
                 "uid %d): %s", self.peer.pid, self.peer.uid, why)
        errors = self.errors_of(interface)
        self.hang_up(errors.make("LimitsExceeded", why))

    # idle connections

    def request_received(self, obj: JSONObject, fds: FileDescriptorArray | None
                         ) -> asyncio.Future[None] | None:
        self._running += 1
        try:
            done = super().request_received(obj, fds)
        except BaseException:
            self._call_done()
            raise
        if done is None:
            self._call_done()
        else:
            done.add_done_callback(lambda _: self._call_done())
        return done

    def error_received(self, err: Exception, data: bytes,
                       fds: FileDescriptorArray | None) -> None:
        super().error_received(err, data, fds)  # not JSON: asyncvarlink ignores it
        asyncio.get_running_loop().call_soon(self._arm_if_idle)

    def _call_done(self) -> None:
        self._running -= 1
        # After asyncvarlink has taken the next queued call, if there is one.
        asyncio.get_running_loop().call_soon(self._arm_if_idle)

    def _arm_if_idle(self) -> None:
        if not self._running and not self._consumer_queue:
            self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        self._disarm_idle_timer()
        if self._transport is not None and not self._transport.is_closing():
            self._idle_timer = asyncio.get_running_loop().call_later(
                self._limits.idle_timeout, self._idle_expired)

    def _disarm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if self._running or self._consumer_queue or self._transport is None:
            return
        log.debug("varlink: closing a connection (pid %d, uid %d) idle for %g s",
                  self.peer.pid, self.peer.uid, self._limits.idle_timeout)
        transport = self._transport
        transport.close()  # what is queued is still sent ...
        asyncio.get_running_loop().call_later(HANG_UP_GRACE, transport.abort)  # ... soon

    # calls

    def call_received(self, call: VarlinkMethodCall,
                      fds: FileDescriptorArray | None) -> asyncio.Future[None] | None:
        gate = self._operations.engine.recovering
        if gate.active and call.method_interface == VARLINK_CONTAINER:
            # Recovery runs after we serve (core/recovering.py); a container's state is
            # answered only once confirmed. Recovery is short (500 running: ~2 ms after
            # the name), so a container call waits for all of it; the next call on this
            # connection is read only once this one is done, as always.
            running: asyncio.Future[None] | None = asyncio.ensure_future(
                self._after_recovery(gate.all_ready(), call, fds))
            if fds is not None:
                fds.reference_until_done(running)  # type: ignore[arg-type]
        else:
            running = self._dispatch(call, fds)
        if running is not None:
            self._calls.add(running)
            running.add_done_callback(self._calls.discard)
        return running

    async def _after_recovery(self, recovered: Awaitable[None], call: VarlinkMethodCall,
                              fds: FileDescriptorArray | None) -> None:
        await recovered
        dispatched = self._dispatch(call, fds)
        if dispatched is not None:
            await dispatched

    def send_reply(self, reply: VarlinkMethodReply, fds: list[int] | None = None,
                   autoclose: bool = True) -> asyncio.Future[None]:
        sent = super().send_reply(reply, fds, autoclose)
        if self._ending:
            self._unsent.add(sent)
            sent.add_done_callback(self._unsent.discard)
        return sent

    async def end_calls(self) -> None:
        """At shutdown: answer the call still running with Failed, "shutting down"
        (errors.translated), and wait until the answer has been written."""
        self._ending = True
        await shutdown.end_calls(self._calls)
        # asyncvarlink queues the answer in the call's done callback, which ran first.
        if self._unsent:
            await asyncio.wait(self._unsent, timeout=shutdown.END_TIMEOUT)

    def _dispatch(self, call: VarlinkMethodCall,
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
            await self._authority.authorize_all(caller, needed.actions_for(caller.uid),
                                                needed.details)
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
        self._disarm_idle_timer()
        self._count_pending(0)
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


def _interface_named(head: bytes) -> str:
    """Whose LimitsExceeded: the interface of the method the message's first
    bytes name, if one of ours; else io.pyctrd.Container's."""
    found = _METHOD.search(head)
    if found and (interface := found.group(1).decode()) in (VARLINK_CONTAINER, VARLINK_IMAGE):
        return interface
    return VARLINK_CONTAINER


_METHOD = re.compile(rb'"method"\s*:\s*"([A-Za-z0-9.-]+)\.[A-Za-z0-9_]+"')


def _hung_up(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLHUP)
    return any(events & (select.POLLHUP | select.POLLERR) for _fd, events in poller.poll(0))
