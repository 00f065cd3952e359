"""Pacing bursts of work so that the event loop keeps answering calls.

When 500 containers exit at once, 500 pidfds become readable in one epoll
wake-up and asyncio runs all their callbacks in the same loop iteration,
then all 500 cleanup tasks in the next: each a fraction of a millisecond
to a few, together hundreds of milliseconds in which no D-Bus message is
read. Burst work goes through the loop's :class:`Pacer` instead: a FIFO
run a small time budget per iteration (callbacks), or one at a time
(coroutines waiting for their turn), with the loop polling its sockets
in between. Nothing is dropped or reordered; each item waits at most for
the ones queued before it.
"""

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

BUDGET = 0.002  # seconds of queued callbacks per loop iteration


class Pacer:
    def __init__(self, loop: asyncio.AbstractEventLoop, budget: float = BUDGET) -> None:
        self._loop = loop
        self._budget = budget
        self._queue: deque[Callable[[], None] | asyncio.Future[None]] = deque()
        self._scheduled = False

    def call(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` from the loop soon, after the ones queued before it."""
        self._queue.append(callback)
        self._schedule()

    async def turn(self) -> None:
        """Wait until the work queued before is done and this loop iteration is ours."""
        ready: asyncio.Future[None] = self._loop.create_future()
        self._queue.append(ready)
        self._schedule()
        await ready

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        deadline = time.monotonic() + self._budget
        queue = self._queue
        while queue:
            item = queue.popleft()
            if isinstance(item, asyncio.Future):
                if item.done():  # its waiter was cancelled
                    continue
                # The task runs in the next iteration: give it that one alone.
                item.set_result(None)
                break
            try:
                item()
            except Exception:
                log.exception("paced callback %r failed", item)
            if time.monotonic() >= deadline:
                break
        if queue:
            self._loop.call_soon(self._run)
        else:
            self._scheduled = False


_pacers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pacer]" = (
    weakref.WeakKeyDictionary())


def pacer() -> Pacer:
    """The running loop's pacer."""
    loop = asyncio.get_running_loop()
    found = _pacers.get(loop)
    if found is None:
        found = _pacers[loop] = Pacer(loop)
    return found
