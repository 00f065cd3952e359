"""What one client of the 0666 socket may hold: message size, connections, idle time.

Any local user can connect to a system daemon's socket, so nothing a client
does may grow without bound or lock others out: a message is at most
MAX_MESSAGE_SIZE bytes (systemd's servers use the same 16 MiB), each
non-root uid holds at most MAX_CONNECTIONS_PER_UID connections, the last
ROOT_RESERVE of MAX_CONNECTIONS are root's alone, the unfinished messages of
one non-root uid's connections hold at most MAX_PENDING_PER_UID bytes
together (else 64 connections of 16 MiB each would be 1 GiB of the daemon's
memory), and a connection that runs no call for IDLE_TIMEOUT seconds is
closed. A session daemon's 0600 socket has one user: there the per-uid share
and root's reserve do not apply.
"""

import collections
import os
from dataclasses import dataclass

MAX_MESSAGE_SIZE = 16 * 1024 * 1024  # bytes of one message, without its NUL
MAX_CONNECTIONS = 1024  # all clients together
ROOT_RESERVE = 64  # of MAX_CONNECTIONS, only root may use these
MAX_CONNECTIONS_PER_UID = 64  # each non-root uid
MAX_PENDING_PER_UID = 64 * 1024 * 1024  # bytes of unfinished messages, each non-root uid
IDLE_TIMEOUT = 30.0  # s without a running call (before the first one too)
IDLE_TIMEOUT_ENV = "PYCTRD_VARLINK_IDLE_TIMEOUT"  # seconds; read at start, for tests
HANG_UP_GRACE = 5.0  # s a closed client has to read what was sent before the abort


@dataclass(frozen=True)
class Limits:
    max_message_size: int = MAX_MESSAGE_SIZE
    max_connections: int = MAX_CONNECTIONS
    root_reserve: int = ROOT_RESERVE
    per_uid: int = MAX_CONNECTIONS_PER_UID
    pending_per_uid: int = MAX_PENDING_PER_UID
    idle_timeout: float = IDLE_TIMEOUT

    @classmethod
    def from_environment(cls) -> "Limits":
        """The defaults, the idle timeout overridden by $PYCTRD_VARLINK_IDLE_TIMEOUT."""
        raw = os.environ.get(IDLE_TIMEOUT_ENV)
        if raw is None:
            return cls()
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout < float("inf"):
            raise ValueError(f"{IDLE_TIMEOUT_ENV}={raw!r}: not a positive number of seconds")
        return cls(idle_timeout=timeout)

    def admits(self, uid: int, total: int, of_uid: int) -> str:
        """Why a new connection of ``uid`` is refused, with ``total`` open and
        ``of_uid`` of them that uid's; "" if it is admitted."""
        if total >= self.max_connections:
            return f"{self.max_connections} clients already"
        if uid == 0:
            return ""
        if total >= self.max_connections - self.root_reserve:
            return f"the last {self.root_reserve} of {self.max_connections} places are root's"
        if of_uid >= self.per_uid:
            return f"uid {uid} has {self.per_uid} connections already"
        return ""


class PendingBytes:
    """Bytes of unfinished messages each uid's connections hold; root is not bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: collections.Counter[int] = collections.Counter()

    def held(self, uid: int) -> int:
        return self._held[uid]

    def change(self, uid: int, delta: int) -> bool:
        """Add ``delta`` (may be negative) to what ``uid`` holds; False (and nothing
        added) if that would pass the limit."""
        if delta > 0 and uid != 0 and self._held[uid] + delta > self.limit:
            return False
        self._held[uid] += delta
        if self._held[uid] <= 0:
            del self._held[uid]
        return True
