"""`more` replies: Get streaming every object, and Watch streaming every change."""

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

from asyncvarlink.conversion import VarlinkType

from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.protocol import current_call
from pyctrd.varlink.watch import WATCH_QUEUE_MAX, WatchQueue

log = logging.getLogger(__name__)

T = TypeVar("T")


def wants_more() -> bool:
    return current_call.get().more


async def all_but_last(items: list[T], key: str, item_type: type, errors: ErrorSet) -> T:
    """Send each item but the last as a continued reply `{key: item}`; the last is
    the method's own (final) reply. The caller makes sure ``items`` is not empty."""
    connection = current_call.get().connection
    vtype = VarlinkType.from_type_annotation(item_type)
    try:
        for item in items[:-1]:
            await connection.send_continued({key: vtype.tojson(item)})
    except OSError:  # the client left; this reply goes nowhere
        raise errors.make("Failed", "the client hung up") from None
    return items[-1]


async def send_continued_value(key: str, value: Any, errors: ErrorSet) -> None:
    """One continued reply `{key: value}` of a JSON-ready value; returns once it is
    sent, after a turn of the loop (a sent reply need not have let others in)."""
    try:
        await current_call.get().connection.send_continued({key: value})
    except OSError:  # the client left; the rest goes nowhere
        raise errors.make("Failed", "the client hung up") from None
    await asyncio.sleep(0)


async def watch(subscribers: set[WatchQueue[T]], existing: Callable[[], list[T]],
                ready: T, errors: ErrorSet) -> AsyncGenerator[T, None]:
    """The events of one Watch call: ``existing()`` (if wanted), ``ready``, then live ones.

    Subscribed before ``existing()`` is read, so no change falls between the two.
    Ends only with an error: Overflow, Failed at the daemon's shutdown, or (unsent)
    when the client has gone.
    """
    call = current_call.get()
    connection = call.connection
    queue: WatchQueue[T]

    def overflow() -> None:
        subscribers.discard(queue)
        log.warning("varlink: a Watch client (pid %d, uid %d) fell %d events behind; "
                    "hanging up on it", call.peer.pid, call.peer.uid, WATCH_QUEUE_MAX)
        connection.hang_up(errors.make(
            "Overflow", f"this Watch fell {WATCH_QUEUE_MAX} events behind and was dropped; "
            "read faster, or call Watch again with existing to catch up"))

    queue = WatchQueue(WATCH_QUEUE_MAX, overflow)
    subscribers.add(queue)
    stop_watching_socket = connection.peer_hung_up_waiter()
    lost = asyncio.ensure_future(connection.lost.wait())
    lost.add_done_callback(lambda _: queue.close())
    try:
        for item in existing():
            yield item
        yield ready
        with errors.translated():  # at shutdown: Failed, "shutting down"
            while (event := await queue.get()) is not None:
                yield event
        await connection.lost.wait()  # after an overflow: the error is on its way
        raise errors.make("Failed", "the client hung up")
    finally:
        subscribers.discard(queue)
        lost.cancel()
        stop_watching_socket()

