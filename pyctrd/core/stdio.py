"""A container's stdio for front ends: its log as a pipe, attach sockets, terminal size.

Each function returns at once; the streaming runs in tasks of the event loop
that end with the container, the reader or the client.

Each stream may have an owner: an opaque key a front end chooses (whom it
serves, e.g. a bus connection). Streams cost the daemon descriptors for as
long as they run, so the layer above counts them by owner
(``open_streams``) to cap them, and ends them all when the owner goes away
(``close_streams``), whether or not the reader still holds its end.
"""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Coroutine, Hashable
from pathlib import Path
from typing import Any

from pyctrd.core.container import Container
from pyctrd.core.state import ACTIVE, State
from pyctrd.detachkeys import parse_detach_keys
from pyctrd.errors import InvalidArgument, InvalidState, NoSuchContainer
from pyctrd.oci import attach as oci_attach
from pyctrd.oci.conmonlog import stream_log

log = logging.getLogger(__name__)

# Streams and relays run detached from the call that began them; hold them here,
# by owner (None: a stream nobody claimed).
_streams: dict[Hashable | None, set[asyncio.Task[Any]]] = {}


def _spawn(coro: Coroutine[Any, Any, Any], what: str, owner: Hashable | None) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _streams.setdefault(owner, set()).add(task)

    def done(task: asyncio.Task[Any]) -> None:
        tasks = _streams.get(owner)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del _streams[owner]
        if not task.cancelled() and (err := task.exception()) is not None:
            log.error("%s failed", what, exc_info=err)

    task.add_done_callback(done)


def spawn_stream(coro: Coroutine[Any, Any, Any], what: str, owner: Hashable | None) -> None:
    """Run ``coro`` as a stream of ``owner`` (an exec session's relay, say)."""
    _spawn(coro, what, owner)


def open_streams(owner: Hashable) -> int:
    """How many streams of ``owner`` still run (each holds descriptors of the daemon)."""
    return len(_streams.get(owner, ()))


def stream_owners() -> list[Hashable]:
    """The owners that have streams running."""
    return [owner for owner in _streams if owner is not None]


def close_streams(owner: Hashable) -> int:
    """End every stream of ``owner`` (its readers see EOF); how many there were."""
    tasks = _streams.get(owner, set())
    loop = asyncio.get_running_loop()
    for task in tasks:
        # Later than the task's first step (scheduled when it was made): a task
        # cancelled before it ran would never run the clean-up of its coroutine.
        loop.call_soon(task.cancel)
    return len(tasks)


def _require(container: Container, operation: str, allowed: frozenset[State]) -> None:
    """InvalidState unless the container is in ``allowed``, worded as the core's checks."""
    if container.removed:
        raise NoSuchContainer(f"container {container.name} has been removed")
    if container.state not in allowed:
        needed = ", ".join(sorted(allowed))
        raise InvalidState(
            f"cannot {operation} container {container.name}: it is {container.state}; "
            f"{operation} needs a container that is {needed}")


def _bundle(container: Container) -> Path:
    return container.bundle  # conmon's ctl FIFO and attach socket live there


async def _exited(container: Container) -> None:
    with contextlib.suppress(NoSuchContainer):  # removed: nothing more will be written
        await container.wait()


def open_log(container: Container, follow: bool, owner: Hashable | None = None) -> int:
    """The read end of a pipe carrying the container's log as records.

    With ``follow`` and a container that may still write (created, running,
    paused, unknown), the pipe carries new output until the container exits.
    The caller owns the returned descriptor; the stream counts as ``owner``'s.
    """
    if container.removed:
        raise NoSuchContainer(f"container {container.name} has been removed")
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    may_write = container.state not in (State.CONFIGURED, State.EXITED)
    until = _exited(container) if follow and may_write else None
    _spawn(stream_log(container.log_path, write_end, until), f"log of {container.name}",
           owner)
    return read_end


async def attach(container: Container, detach_keys: str,
                 owner: Hashable | None = None) -> socket.socket:
    """A socket joined to the container's stdio; the caller owns it.

    A created container may be attached before Start (conmon already holds its
    stdio), so a client sees the output from the first byte, as podman run does.

    Typing ``detach_keys`` (podman's syntax, "" for ctrl-p,ctrl-q) or closing
    the socket detaches; the container keeps running. The relay counts as
    ``owner``'s stream.
    """
    keys = parse_detach_keys(detach_keys)
    _require(container, "Attach", frozenset({State.CREATED, State.RUNNING}))
    conmon = await oci_attach.connect(_bundle(container))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    _spawn(_relay(container.name, conmon, ours, keys), f"attach to {container.name}", owner)
    return theirs


async def _relay(name: str, conmon: socket.socket, client: socket.socket, keys: bytes) -> None:
    why = await oci_attach.relay(conmon, client, keys)
    log.debug("attach to %s ended: %s", name, why)


def resize_terminal(container: Container, rows: int, cols: int) -> None:
    """Set the size of the container's terminal (created with the ``terminal`` option)."""
    if not container.config.terminal:
        raise InvalidArgument(f"container {container.name} has no terminal (it was created "
                              "without the terminal option); there is nothing to resize")
    if rows == 0 or cols == 0:
        raise InvalidArgument(f"a terminal of {rows} rows and {cols} columns is no terminal; "
                              "give both at least 1")
    _require(container, "ResizeTerminal", ACTIVE)
    oci_attach.resize_terminal(_bundle(container), rows, cols)
