"""Who may call what on the bus: the ops Operation of each method decides.

Every method of our interfaces maps to one Operation of pyctrd.ops.operations
(by interface and member); a method in no table is refused when it is
exported. An operation with a polkit action is guarded: before dispatch the
caller's uid is asked of the bus (GetConnectionUnixUser, cached per unique
name) and the ops Authority decides, with the details the bus object builds
from its resolved container or image (ops.operations.details). Root passes
without polkit; an unidentified caller, or polkit unreachable, is refused
(fail closed). A refused call's descriptors are closed, and its error is the
catalogue's AccessDenied or InteractiveAuthorizationRequired.
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from dbus_fast import Message, MessageFlag
from dbus_fast.aio import MessageBus

from pyctrd.bus.callers import Callers
from pyctrd.bus.errors import to_dbus_error
from pyctrd.ops.authority import Authority, Caller, bus_name_subject, unidentified
from pyctrd.ops.exec import EXEC_SESSION_OPS
from pyctrd.ops.names import (
    CONTAINER_IFACE,
    EXEC_SESSION_IFACE,
    IMAGE_IFACE,
    JOB_IFACE,
    MANAGER_IFACE,
    NETWORK_IFACE,
    VOLUME_IFACE,
)
from pyctrd.ops.operations import (
    CONTAINER_OPS,
    IMAGE_OPS,
    JOB_OPS,
    MANAGER_OPS,
    NETWORK_OPS,
    VOLUME_OPS,
    Check,
    Operation,
)

log = logging.getLogger(__name__)

OPERATIONS: dict[str, dict[str, Operation]] = {
    MANAGER_IFACE: MANAGER_OPS,
    CONTAINER_IFACE: CONTAINER_OPS,
    IMAGE_IFACE: IMAGE_OPS,
    JOB_IFACE: JOB_OPS,
    EXEC_SESSION_IFACE: EXEC_SESSION_OPS,
    NETWORK_IFACE: NETWORK_OPS,
    VOLUME_IFACE: VOLUME_OPS,
}
Handler = Callable[[Message, Any], None]


def operation_of(interface: str, member: str) -> Operation:
    """The operation behind a method; LookupError for one no table lists."""
    try:
        return OPERATIONS[interface][member]
    except KeyError:
        raise LookupError(f"{interface}.{member} is no operation; add it to a table of "
                          "pyctrd/ops/operations.py (action None if anyone may call "
                          "it)") from None


class Guarded(Protocol):
    """A bus object whose guarded methods say what polkit rules may see."""

    def call_check(self, operation: Operation, body: list[Any]) -> Check: ...


class CallGuard:
    def __init__(self, bus: MessageBus, authority: Authority,
                 callers: Callers | None = None) -> None:
        self._authority = authority
        self._callers = callers if callers is not None else Callers(bus)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}  # each sender's latest guarded call

    def guard(self, handler: Handler, obj: Guarded, operation: Operation) -> Handler:
        """A method handler that runs ``handler`` only once the caller is authorized.

        Calls of one sender are dispatched in the order they came, even when
        polkit answers them out of order (Start then Stop must not swap).
        """
        assert operation.action is not None

        def guarded(msg: Message, send_reply: Any) -> None:
            sender = msg.sender or ""
            previous = self._last.get(sender)
            task = asyncio.ensure_future(self._run(handler, obj, operation, msg, send_reply,
                                                   previous))
            self._last[sender] = task
            self._tasks.add(task)

            def done(finished: asyncio.Task[None]) -> None:
                self._tasks.discard(finished)
                if self._last.get(sender) is finished:
                    del self._last[sender]

            task.add_done_callback(done)

        return guarded

    async def _run(self, handler: Handler, obj: Guarded, operation: Operation,
                   msg: Message, send_reply: Any,
                   previous: asyncio.Task[None] | None) -> None:
        try:
            await self.authorize(msg, operation, obj.call_check(operation, list(msg.body)))
        except Exception as err:  # refused, or could not be decided: fail closed
            for fd in msg.unix_fds:  # the handler that would own them never runs
                with contextlib.suppress(OSError):
                    os.close(fd)
            if not msg.flags & MessageFlag.NO_REPLY_EXPECTED:
                error = to_dbus_error(err, operation.verb)
                send_reply(Message.new_error(msg, error.type, error.text))
            return
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        try:
            handler(msg, send_reply)
        except Exception:
            log.exception("dispatching %s failed", operation.verb)

    async def authorize(self, msg: Message, operation: Operation, call: Check) -> None:
        """Return if the sender of ``msg`` may run ``operation``; raise if not."""
        assert operation.action is not None
        sender = msg.sender or ""
        uid = await self._callers.uid(sender)
        if uid is None:
            raise unidentified(operation.verb, operation.action)
        interactive = bool(msg.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)
        caller = Caller(uid, bus_name_subject(sender), interactive)
        await self._authority.authorize_all(caller, call.actions_for(uid), call.details)
