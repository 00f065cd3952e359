"""Learning of a conmon's exit without polling: a pidfd in the event loop.

conmon writes the container's exit file and then exits, so its pidfd
becoming readable is the moment to read the exit code. A pidfd works for
processes that are not our children, so re-adopted containers are watched
the same way after a daemon restart.

The callback is paced (pyctrd.pacing): hundreds of containers exiting at
once are recorded a few milliseconds' worth per loop iteration, with calls
answered in between.
"""

import asyncio
import os
from collections.abc import Callable

from pyctrd.pacing import pacer


class ExitWatch:
    def __init__(self, pid: int, on_exit: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_exit = on_exit
        self._fd: int | None = None
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:
            pacer().call(self._fire)
            return
        self._loop.add_reader(self._fd, self._exited)

    def _exited(self) -> None:
        # A pidfd stays readable: stop polling it now, run the callback in its turn.
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
        pacer().call(self._fire)

    def _fire(self) -> None:
        callback = self._on_exit
        if self.cancel():
            callback()

    def cancel(self) -> bool:
        """Stop watching; True if the watch was still armed."""
        if self._on_exit is None:
            return False
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        self._on_exit = None  # type: ignore[assignment]
        return True
