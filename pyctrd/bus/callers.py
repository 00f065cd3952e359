"""Who calls: the uid behind a unique bus name, the call being served, and
what to do when a caller's connection goes away.

The uid is asked of the bus once per unique name (names are never reused on
a bus) and forgotten when the name goes. Departures come from one match on
NameOwnerChanged with an empty new owner, added at start: a caller that
disconnects leaves no stream, cache entry or other state of its own behind.
"""

import contextvars
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from pyctrd.errors import AccessDenied
from pyctrd.ops.ratelimit import RateLimitedLog
from pyctrd.ops.streams import StreamOwner

log = logging.getLogger(__name__)

BUS_DRIVER = "org.freedesktop.DBus"
GONE_MATCH = (f"type='signal',sender='{BUS_DRIVER}',interface='{BUS_DRIVER}',"
              "member='NameOwnerChanged',arg2=''")
UID_CACHE_MAX = 4096
RECENTLY_GONE_MAX = 1024

# The method call being served and its bus's Callers; set around each method
# handler (PyctrdBus), inherited by the task that runs an async handler.
current_call: contextvars.ContextVar[tuple[Message, "Callers"]] = contextvars.ContextVar(
    "current_call")


class Callers:
    def __init__(self, bus: Any) -> None:
        self._bus = bus  # a MessageBus, or a test's stand-in with call()
        self._uids: dict[str, int] = {}
        # Names seen leaving: a stream set up for one just after is closed at once.
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._on_gone: list[Callable[[str], None]] = []
        self._log = RateLimitedLog(log)

    async def start(self) -> None:
        """Subscribe to departures (once, for every name)."""
        bus: MessageBus = self._bus
        bus.add_message_handler(self._on_message)
        reply = await bus.call(Message(
            destination=BUS_DRIVER, path="/org/freedesktop/DBus", interface=BUS_DRIVER,
            member="AddMatch", signature="s", body=[GONE_MATCH]))
        if reply is None or reply.message_type is MessageType.ERROR:
            raise RuntimeError(f"cannot watch callers leave the bus: {reply and reply.body}")

    def on_gone(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(unique_name)`` when a connection leaves the bus."""
        self._on_gone.append(callback)

    def is_gone(self, name: str) -> bool:
        return name in self._gone

    def _on_message(self, msg: Message) -> None:
        if (msg.message_type is MessageType.SIGNAL and msg.member == "NameOwnerChanged"
                and msg.sender == BUS_DRIVER and msg.signature == "sss"):
            name, _old, new = msg.body
            if not new and name.startswith(":"):
                self.gone(name)

    def gone(self, name: str) -> None:
        self._uids.pop(name, None)
        self._gone[name] = None
        if len(self._gone) > RECENTLY_GONE_MAX:
            self._gone.popitem(last=False)
        for callback in self._on_gone:
            try:
                callback(name)
            except Exception:
                log.exception("cleaning up after %s failed", name)

    async def uid(self, sender: str) -> int | None:
        """The uid of the connection ``sender``; None if the bus cannot say."""
        uid = self._uids.get(sender)
        if uid is not None:
            return uid
        try:
            reply = await self._bus.call(Message(
                destination=BUS_DRIVER, path="/org/freedesktop/DBus",
                interface=BUS_DRIVER, member="GetConnectionUnixUser",
                signature="s", body=[sender]))
        except Exception as err:
            self._log(logging.WARNING, "ask", "could not ask the bus who %s is: %s",
                      sender, err)
            return None
        if reply is None or reply.error_name:
            self._log(logging.WARNING, "answer", "the bus did not say who %s is: %s",
                      sender, reply.error_name if reply else "no reply")
            return None
        uid = int(reply.body[0])
        if len(self._uids) >= UID_CACHE_MAX:
            self._uids.clear()
        if sender not in self._gone:
            self._uids[sender] = uid
        return uid


async def stream_owner(verb: str) -> StreamOwner | None:
    """Whom a stream opened by the current call serves (None outside a bus call:
    no owner, no cap); AccessDenied if the bus cannot say who calls."""
    call = current_call.get(None)
    if call is None:
        return None
    msg, callers = call
    uid = await callers.uid(msg.sender or "")
    if uid is None:
        raise AccessDenied(f"{verb} is not allowed: the caller could not be identified")
    return StreamOwner(uid, connection_key(msg.sender or ""))


async def caller_uid(verb: str) -> int | None:
    """The uid of the current call's sender (None outside a bus call), e.g. a job's
    owner, who may cancel it without polkit."""
    owner = await stream_owner(verb)
    return None if owner is None else owner.uid


def left_meanwhile(owner: StreamOwner | None) -> bool:
    """Whether ``owner``'s connection left the bus (its streams were closed before
    this one existed: the caller closes it too)."""
    call = current_call.get(None)
    if owner is None or call is None:
        return False
    msg, callers = call
    return callers.is_gone(msg.sender or "")


def connection_key(unique_name: str) -> str:
    return f"dbus:{unique_name}"
