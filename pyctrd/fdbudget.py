"""The daemon's file descriptors: its limit, and a reserve kept for its own work.

Every stream a client holds (a log pipe, an attach or exec socket, a Varlink
connection) costs the daemon descriptors for as long as the client keeps it.
Clients must not be able to take the last ones: Start, Init, Mount and
ImportImage need a few each (runc and conmon pipes, config.json, the layer
files), and a failure from EMFILE there is what a user would meet.

- ``raise_limit()``: at start, the soft RLIMIT_NOFILE up to the hard one.
- ``available()``: descriptors that can still be opened under the soft limit.
- ``check(what)``: raise LimitsExceeded when opening ``needed`` more would eat
  into ``RESERVE``; front ends call it before they hand out a stream or accept
  a connection. ``guard(what)`` is the same as a context manager that also
  turns an EMFILE/ENFILE met inside it into LimitsExceeded.

Counting reads /proc/self/fd (about 0.1 ms per 1,000 open descriptors), so
call it per new stream or connection, not per message.
"""

import contextlib
import errno
import logging
import os
import resource
from collections.abc import Iterator

from pyctrd.errors import LimitsExceeded

log = logging.getLogger(__name__)

# Kept free for the daemon's own work: each concurrent Start, Init or import uses
# about ten at once (runc and conmon pipes, the spec, a pidfd, the layer files).
RESERVE_MIN = 32
RESERVE_MAX = 256

EXHAUSTED = (errno.EMFILE, errno.ENFILE)


def raise_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one; the (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError) as err:
            log.warning("could not raise the open-files limit from %d to %d: %s",
                        soft, hard, err)
    return soft, hard


def limit() -> int:
    """The soft RLIMIT_NOFILE: descriptors are numbered below it."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def reserve() -> int:
    """Descriptors kept for the daemon's own work: an eighth of the limit, bounded."""
    return max(RESERVE_MIN, min(RESERVE_MAX, limit() // 8))


def open_count() -> int:
    """Descriptors open in this process now."""
    try:
        with os.scandir("/proc/self/fd") as entries:
            # minus the one scandir itself holds
            return sum(1 for _ in entries) - 1
    except OSError as err:
        if err.errno in EXHAUSTED:
            return limit()  # not even one more could be opened
        raise


def available() -> int:
    """How many more descriptors this process could open now (0 when exhausted)."""
    return max(0, limit() - open_count())


def check(what: str = "a new stream", needed: int = 1) -> None:
    """LimitsExceeded if opening ``needed`` descriptors for ``what`` would eat into the
    reserve; the message says what to do."""
    free = available()
    if free - needed < reserve():
        raise LimitsExceeded(
            f"refusing {what}: the daemon has {free} file descriptors left and keeps "
            f"{reserve()} for its own work; close streams (logs, attach, exec) or "
            "connections you no longer read")


def is_exhausted(err: BaseException) -> bool:
    """``err`` is the kernel saying no descriptor could be opened (EMFILE, ENFILE)."""
    return isinstance(err, OSError) and err.errno in EXHAUSTED


@contextlib.contextmanager
def guard(what: str = "a new stream", needed: int = 1) -> Iterator[None]:
    """``check``, then run the body; an EMFILE/ENFILE inside it becomes LimitsExceeded."""
    check(what, needed)
    try:
        yield
    except OSError as err:
        if not is_exhausted(err):
            raise
        raise LimitsExceeded(f"refusing {what}: the daemon is out of file descriptors "
                             f"({err.strerror}); close streams you no longer read") from err
