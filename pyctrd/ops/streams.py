"""Who holds the daemon's log and attach streams, and how many each may hold.

Every running stream holds descriptors of the daemon (a pipe or socket end,
the log file, an inotify watch or conmon's attach socket) until its reader
or its container ends it. A caller that keeps thousands open would use up
the daemon's descriptors and make root's calls fail, so each uid may have
``per_uid`` streams running at a time (root: no cap), across all its
connections; the excess is refused with LimitsExceeded naming the cap. A
front end closes a connection's streams when the connection goes away.
Whoever asks, a stream that would eat into the descriptors the daemon keeps
for its own work (pyctrd.fdbudget) is refused the same way.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pyctrd import fdbudget
from pyctrd.core import stdio
from pyctrd.errors import LimitsExceeded

STREAMS_PER_UID = 128
FDS_PER_STREAM = 3  # while set up: a pipe or socket pair, a log file or conmon's socket


@dataclass(frozen=True)
class StreamOwner:
    """Whom a stream serves: a uid, and the connection it came by (a front end's
    own name for it, e.g. "dbus::1.42"), the core's opaque owner key."""

    uid: int
    connection: str


class StreamLimits:
    def __init__(self, per_uid: int = STREAMS_PER_UID) -> None:
        self.per_uid = per_uid
        self._opening: dict[int, int] = {}  # uid -> streams being set up (attach awaits)

    def running(self, uid: int) -> int:
        """Streams of ``uid`` running now, over all its connections."""
        return sum(stdio.open_streams(owner) for owner in stdio.stream_owners()
                   if isinstance(owner, StreamOwner) and owner.uid == uid)

    @asynccontextmanager
    async def admit(self, owner: StreamOwner | None, what: str) -> AsyncIterator[None]:
        """Room for one more stream of ``owner`` while it is set up; LimitsExceeded if
        its uid has ``per_uid`` already (None or root: no cap), or if the daemon's
        descriptors run short (an EMFILE while it is set up included)."""
        uid = None if owner is None or owner.uid == 0 else owner.uid
        async with self._counted(uid, what):
            with fdbudget.guard(f"{what}'s stream", FDS_PER_STREAM):
                yield

    @asynccontextmanager
    async def _counted(self, uid: int | None, what: str) -> AsyncIterator[None]:
        if uid is None:
            yield
            return
        if self.running(uid) + self._opening.get(uid, 0) >= self.per_uid:
            raise LimitsExceeded(
                f"{what} refused: uid {uid} already has {self.per_uid} log/attach streams "
                f"open, the most one user may have; close some (or end their "
                "containers) and call again")
        self._opening[uid] = self._opening.get(uid, 0) + 1
        try:
            yield
        finally:
            self._opening[uid] -= 1
            if not self._opening[uid]:
                del self._opening[uid]

    @staticmethod
    def close_connection(connection: str) -> int:
        """End the streams of every owner that came by ``connection``; how many."""
        return sum(stdio.close_streams(owner) for owner in stdio.stream_owners()
                   if isinstance(owner, StreamOwner) and owner.connection == connection)
