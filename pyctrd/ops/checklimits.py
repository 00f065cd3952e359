"""Bounds on the authorization checks waiting for polkit.

``per_caller`` checks (waiting or running) per caller key (the uid), the
excess refused at once; ``in_flight`` checks running at a time for everyone,
below what dbus-daemon lets one connection wait for (128 replies on Debian's
system bus); a free slot goes to the callers that wait in turn (round robin),
so no caller's queue delays another's by more than one check per turn.
"""

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager

from pyctrd.errors import LimitsExceeded

PER_CALLER = 16
IN_FLIGHT = 96  # < dbus-daemon's max_replies_per_connection (128), leaving room for ours


class CheckLimits:
    def __init__(self, per_caller: int = PER_CALLER, in_flight: int = IN_FLIGHT) -> None:
        assert per_caller > 0 and in_flight > 0
        self.per_caller = per_caller
        self.in_flight = in_flight
        self.running = 0
        self._pending: dict[Hashable, int] = {}  # key -> checks admitted (waiting or running)
        self._waiting: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()

    def pending(self, key: Hashable) -> int:
        return self._pending.get(key, 0)

    @asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[None]:
        """Hold one of the running slots for ``key``; LimitsExceeded at once if
        ``key`` already has ``per_caller`` checks admitted."""
        if self.pending(key) >= self.per_caller:
            raise LimitsExceeded(
                f"{self.per_caller} authorization checks of this caller are already "
                "waiting for polkit; wait for their answers before calling again")
        self._pending[key] = self.pending(key) + 1
        try:
            await self._acquire(key)
            try:
                yield
            finally:
                self._release()
        finally:
            self._pending[key] -= 1
            if not self._pending[key]:
                del self._pending[key]

    async def _acquire(self, key: Hashable) -> None:
        if self.running < self.in_flight and not self._waiting:
            self.running += 1
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(ready)
        try:
            await ready  # the releaser hands its slot over: running stays counted
        except asyncio.CancelledError:
            if ready.done() and not ready.cancelled():
                self._release()  # handed over just as we were cancelled: pass it on
            else:
                self._forget(key, ready)
            raise

    def _forget(self, key: Hashable, ready: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None and ready in queue:
            queue.remove(ready)
            if not queue:
                del self._waiting[key]

    def _release(self) -> None:
        """Hand the slot to the first waiter of the next key in turn, or free it."""
        while self._waiting:
            key, queue = next(iter(self._waiting.items()))
            ready = queue.popleft()
            if queue:
                self._waiting.move_to_end(key)  # its next waiter after the others'
            else:
                del self._waiting[key]
            if not ready.done():
                ready.set_result(None)
                return
        self.running -= 1
