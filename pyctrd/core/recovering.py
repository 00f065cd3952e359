"""Containers still being recovered after a restart: what waits for them.

The daemon serves (takes its bus name, opens Varlink) before recovery is
done (core/recovery.py runs in the background). A container whose stored
state may be stale is held from the moment recovery begins until it has been
reconciled: its lock is taken at once, so every call that changes it waits,
and readers that take no lock (properties, listings, Inspect) wait on
``ready`` or ``all_ready`` (the D-Bus front end: bus/service.py). A container
nothing needs to reconcile is never held.
"""

import asyncio

from pyctrd.core.container import Container


class RecoveryGate:
    def __init__(self) -> None:
        self._pending: dict[str, tuple[asyncio.Event, Container]] = {}
        self._done = asyncio.Event()
        self._done.set()

    @property
    def active(self) -> bool:
        """Recovery has begun and not finished (containers may still be held)."""
        return not self._done.is_set()

    def begin(self) -> None:
        self._done.clear()

    def hold(self, container: Container) -> None:
        """Before anything is served: ``container`` waits for its recovery."""
        _take_now(container.lock)
        self._pending[container.id] = (asyncio.Event(), container)

    def release(self, container: Container) -> None:
        """``container`` is recovered (or failed to be: then it says unknown)."""
        held = self._pending.pop(container.id, None)
        if held is not None:
            held[0].set()
            container.lock.release()

    def finish(self) -> None:
        """Every container is recovered and what follows recovery is done."""
        for _event, container in list(self._pending.values()):  # none, unless it failed
            self.release(container)
        self._done.set()

    def pending(self, container_id: str) -> bool:
        return container_id in self._pending

    async def ready(self, container_id: str) -> None:
        """Returns once the container is recovered (at once if it never was held)."""
        held = self._pending.get(container_id)
        if held is not None:
            await held[0].wait()

    async def all_ready(self) -> None:
        await self._done.wait()


def _take_now(lock: asyncio.Lock) -> None:
    """Acquire a free lock without a turn of the loop: nothing may come first.

    An uncontended acquire returns before its first await; driven one step by
    hand it is the plain, synchronous ``lock.acquire()`` asyncio lacks.
    """
    if lock.locked():
        raise RuntimeError("a container to recover is locked already")
    step = lock.acquire()
    try:
        step.send(None)
    except StopIteration:
        return
    step.close()
    raise RuntimeError("a container to recover could not be locked at once")
