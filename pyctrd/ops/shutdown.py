"""Calls still running when the daemon shuts down end with an error reply.

A Wait on a container that keeps running, or a Stop with a long timeout, would
otherwise be cut off by the closing connection (the caller sees NoReply or EOF,
the log a CancelledError). The front ends cancel such calls with SHUTTING_DOWN
as the cancel message and answer them with ``shutting_down_error()``.
"""

import asyncio
from collections.abc import Iterable
from typing import Any

from pyctrd.errors import Failed

SHUTTING_DOWN = ("pyctrd is shutting down; the call was not finished (its containers "
                 "keep running): call again once pyctrd is back")
# Calls get this long to finish once cancelled; they only unwind (locks, waiters).
END_TIMEOUT = 5.0


def ended_by_shutdown(err: asyncio.CancelledError) -> bool:
    return SHUTTING_DOWN in err.args


def shutting_down_error() -> Failed:
    return Failed(SHUTTING_DOWN)


async def end_calls(calls: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``calls`` for the shutdown and wait until they have ended."""
    pending = [call for call in calls if not call.done()]
    for call in pending:
        call.cancel(SHUTTING_DOWN)
    if pending:
        await asyncio.wait(pending, timeout=END_TIMEOUT)
