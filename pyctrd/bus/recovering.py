"""Calls that arrive while recovery runs (core/recovering.py) wait for it.

The daemon takes its name before recovery is done. A call on a container
still being recovered (its properties, its methods, its exec sessions) is set
aside until that container is reconciled, then dispatched as if it came then;
a Manager call (listings, but also a lookup or a create by name, which a
Remove cut short by a crash still holds until recovery finishes it) waits for
the whole recovery. Nothing is answered from a state recovery has not
confirmed. Calls on other objects go on at once.
"""

import asyncio
from collections.abc import Awaitable, Callable

from dbus_fast import Message

from pyctrd.core.recovering import RecoveryGate
from pyctrd.ops.names import CONTAINER_PREFIX, MANAGER_PATH


class RecoveryWaits:
    def __init__(self, gate: RecoveryGate, dispatch: Callable[[Message], None]) -> None:
        self._gate = gate
        self._dispatch = dispatch
        self._waiting: set[asyncio.Task[None]] = set()

    def defer(self, msg: Message) -> bool:
        """True if ``msg`` was set aside (dispatched later); False: handle it now."""
        if not self._gate.active:
            return False
        waiting = self._wait_for(msg.path or "", msg.member or "")
        if waiting is None:
            return False
        task = asyncio.ensure_future(self._later(msg, waiting))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)
        return True

    def _wait_for(self, path: str, member: str) -> Awaitable[None] | None:
        if path.startswith(CONTAINER_PREFIX):
            container_id = path[len(CONTAINER_PREFIX):].split("/", 1)[0]
            if self._gate.pending(container_id):
                return self._gate.ready(container_id)
        elif path == MANAGER_PATH:
            return self._gate.all_ready()
        return None

    async def _later(self, msg: Message, waiting: Awaitable[None]) -> None:
        await waiting
        self._dispatch(msg)
