"""``runc start`` in-process: release a created container's init through its exec fifo.

runc's init waits, before it execs the command, for a reader on the fifo
(runcstate.open_exec_fifo opens it): it then writes "0" and the fifo closes
as it execs. As ``runc start`` does, this reads to that end (so Start returns
once the command is exec'd), fails if the init dies first or closes the fifo
without a word, and removes the fifo. The wait is the loop's (the fifo and
a pidfd of the init), never a blocking open or read.
"""

import asyncio
import contextlib
import os
import select

from pyctrd.errors import RuntimeFailed


async def release_init(fifo: int, pidfd: int, timeout: float, what: str = "runc start"
                       ) -> None:
    """Read the exec fifo ``fifo`` (non-blocking) to its end, watching the init
    through ``pidfd``; both are ours to close. Errors say ``what`` failed, as the
    runtime's own would."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    received = bytearray()
    try:
        loop.add_reader(fifo, woken.set)
        loop.add_reader(pidfd, woken.set)
        try:
            problem = await asyncio.wait_for(_read_to_end(fifo, pidfd, woken, received),
                                             timeout)
        except TimeoutError:
            # Its "0" read, the init was let go and runs its command: only the
            # close at its exec came late (a slow exec). Started, as runc would say.
            problem = "" if received else (
                f"the container's init did not take the exec fifo within {timeout:.0f} s")
    finally:
        for fd in (fifo, pidfd):
            loop.remove_reader(fd)
            os.close(fd)
    if problem:
        raise RuntimeFailed(f"{what} failed: {problem}")


async def _read_to_end(fifo: int, pidfd: int, woken: asyncio.Event,
                       got: bytearray) -> str:
    """"" once read to the end (what was read in ``got``); else what went wrong,
    in runc's words."""
    # Before the init's open of its end has begun, a read finds no writer: an
    # empty read then says nothing. After a wake-up it is the writer's close.
    first = True
    while True:
        # Whether it has exited, asked before the read: the init writes before it
        # execs, so an init seen gone here left its "0" for the read below to find.
        # (Asked after, an init that wrote, exec'd and exited between the two would
        # look dead though it ran: seen once in 8,000 Starts under load.)
        exited = _exited(pidfd)
        try:
            chunk = os.read(fifo, 64)
        except BlockingIOError:
            chunk = None
        if chunk:
            got.extend(chunk)
            continue
        if got:
            if chunk == b"":
                return ""
        elif exited:
            return "container process is already dead: its init exited before it was started"
        elif chunk == b"" and not first:
            return "cannot start an already running container"
        first = False
        woken.clear()
        await woken.wait()


def _exited(pidfd: int) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    with contextlib.suppress(InterruptedError):
        return bool(poller.poll(0))
    return False
