"""io.pyctrd.Container: Varlink calls decoded, run as operations, answers encoded.

Authorization happened before a method runs (pyctrd.varlink.protocol); a
method looks its container up, calls the operation and encodes the answer.
"""

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypedDict

from asyncvarlink import FileDescriptor, VarlinkInterface, varlinkmethod

from pyctrd.core.container import Container
from pyctrd.errors import InvalidArgument, NoSuchContainer
from pyctrd.ops import listing
from pyctrd.ops.names import VARLINK_CONTAINER
from pyctrd.ops.operations import Operations
from pyctrd.ops.options import UINT32_MAX
from pyctrd.ops.optionstructs import CreateOptions, decode_varlink
from pyctrd.ops.streams import StreamOwner
from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.exec import ExecMethods
from pyctrd.varlink.observe import LogRecord, Stats, stats_of, stream_logs
from pyctrd.varlink.protocol import current_call
from pyctrd.varlink.streaming import all_but_last, send_continued_value, wants_more, watch
from pyctrd.varlink.types import (
    ROWS_PER_REPLY,
    ContainerEvent,
    ContainerInfo,
    EventKind,
    InspectInfo,
    container_info,
    inspect_info,
    row_of,
)
from pyctrd.varlink.watch import Watchers

ERRORS = ErrorSet(VARLINK_CONTAINER, (
    "NoSuchContainer", "NoSuchImage", "AmbiguousId", "Exists", "InvalidState",
    "InvalidArgument", "InUse", "RuntimeFailed", "StorageFailed", "AccessDenied",
    "InteractiveAuthorizationRequired", "LimitsExceeded", "Overflow", "Failed"))


class Created(TypedDict):
    id: str
    name: str


def stream_owner() -> StreamOwner:
    """The current call's caller, as the owner of a stream it opens."""
    call = current_call.get()
    return StreamOwner(call.peer.uid, f"varlink:{id(call.connection)}")


class ContainerPage(TypedDict):
    containers: list[ContainerInfo]
    next: str


class ContainerVarlink(ExecMethods, VarlinkInterface, name=VARLINK_CONTAINER):
    """pyctrd's containers: the daemon behind D-Bus org.pyctrd1, the same state.
    A per-container method takes name: its name, full ID or a unique ID prefix.
    Timestamps are microseconds since the Unix epoch, 0 when unset."""

    error_set = ERRORS
    errors = tuple(ERRORS.classes.values())

    def __init__(self, operations: Operations, watchers: Watchers) -> None:
        self._ops = operations
        self._watchers = watchers

    @contextlib.contextmanager
    def _container(self, name: str) -> Iterator[Container]:
        """Look ``name`` up; core errors in the body become Varlink errors about it."""
        with ERRORS.translated(name=name):
            container = self._ops.get_container(name)
        with ERRORS.translated(name=name, state=lambda: str(container.state)):
            yield container

    @varlinkmethod
    async def Create(self, *, image: str, command: list[str],
                     options: CreateOptions | None = None) -> Created:  # type: ignore[valid-type]
        """Create a container from an image (reference, ID or unique ID prefix); an
        empty command runs the image's Entrypoint and Cmd. Options are the D-Bus
        CreateContainer options; an absent one takes its default."""
        with ERRORS.translated(reference=image):
            container = self._ops.create_container(image, command, decode_varlink(options))
        return {"id": container.id, "name": container.name}

    @varlinkmethod(return_parameter="containers")
    async def List(self) -> list[ContainerInfo]:
        """Every container with its properties."""
        return [container_info(c) for c in self._ops.list_containers()]

    @varlinkmethod
    async def ListPaged(self, *, after: str | None = None, limit: int | None = None,
                        states: list[str] | None = None) -> ContainerPage:
        """Containers a page at a time, by ID: at most limit (1 to 5000; absent or
        0: 500) whose ID sorts after after (absent: from the first), only those in
        states if given; next is the ID to pass as after for the next page, "" after
        the last page. As D-Bus's ListContainersPaged: nothing is held between calls."""
        with ERRORS.translated():
            request = listing.page_request(after=after, limit=limit, states=states)
        found, following = self._ops.page_containers(request)
        return {"containers": [container_info(c) for c in found], "next": following}

    @varlinkmethod(return_parameter="rows", allow_foreign=True)
    async def ListRows(self, *, fields: list[str],
                       states: list[str] | None = None) -> list[list[Any]]:
        """Every container (only those in states, if given) as a row: the values of
        fields (ContainerInfo's names: id, state, ...) in that order, ports as
        PortMapping objects; in no set order. Called with more: up to 2000 rows a
        reply (an empty one when there is none). For a listing at any count that
        sends only what is shown (pyctr ps)."""
        with ERRORS.translated():
            rows, wanted = listing.fields_request(fields, states)
        containers = [c for c in self._ops.list_containers()
                      if not wanted or str(c.state) in wanted]
        if not wants_more():
            return [row_of(c, rows) for c in containers]
        chunks = [containers[i:i + ROWS_PER_REPLY]
                  for i in range(0, len(containers), ROWS_PER_REPLY)] or [[]]
        for chunk in chunks[:-1]:  # each sent before the next is made: the loop turns
            await send_continued_value("rows", [row_of(c, rows) for c in chunk], ERRORS)
        return [row_of(c, rows) for c in chunks[-1]]

    @varlinkmethod(return_parameter="container")
    async def Get(self, *, name: str | None = None) -> ContainerInfo:
        """One container's properties. Called with more and without name: one reply
        per container (NoSuchContainer when there is none)."""
        if name is not None:
            with self._container(name) as container:
                return container_info(container)
        if not wants_more():
            raise ERRORS.make("InvalidArgument", "Get needs a name, or more to list all")
        infos = [container_info(c) for c in self._ops.list_containers()]
        if not infos:
            raise ERRORS.of(NoSuchContainer("there are no containers"), {"name": ""})
        return await all_but_last(infos, "container", ContainerInfo, ERRORS)

    @varlinkmethod
    async def Init(self, *, name: str) -> None:
        """Create it in the OCI runtime without starting it."""
        with self._container(name) as container:
            await container.init()

    @varlinkmethod
    async def Start(self, *, name: str) -> None:
        """Start it; returns once its process runs."""
        with self._container(name) as container:
            await container.start()

    @varlinkmethod
    async def Stop(self, *, name: str, timeout: int | None = None) -> None:
        """Send the stop signal, then SIGKILL after timeout seconds (default: the
        container's stop_timeout; 0 kills at once). Returns once it has exited."""
        with self._container(name) as container:
            if timeout is not None and not 0 <= timeout <= UINT32_MAX:
                raise InvalidArgument(f"timeout {timeout} is out of range 0..{UINT32_MAX}")
            await self._ops.stop(container, timeout)

    @varlinkmethod
    async def Kill(self, *, name: str, signal: str) -> None:
        """Send a signal ("SIGHUP", "HUP" or a number) to its process."""
        with self._container(name) as container:
            await self._ops.kill(container, signal)

    @varlinkmethod
    async def Pause(self, *, name: str) -> None:
        """Freeze all its processes."""
        with self._container(name) as container:
            await container.pause()

    @varlinkmethod
    async def Unpause(self, *, name: str) -> None:
        """Thaw them."""
        with self._container(name) as container:
            await container.unpause()

    @varlinkmethod(return_parameter="mountpoint")
    async def Mount(self, *, name: str) -> str:
        """Mount its root filesystem on the host."""
        with self._container(name) as container:
            return await container.mount()

    @varlinkmethod
    async def Unmount(self, *, name: str) -> None:
        """Undo Mount (refused while it runs)."""
        with self._container(name) as container:
            await container.unmount()

    @varlinkmethod
    async def Export(self, *, name: str, fd: FileDescriptor) -> None:
        """Write its root filesystem as an uncompressed tar to the file descriptor
        passed with the call (fd is its index among the passed descriptors)."""
        with self._container(name) as container:
            await container.export(fd.fileno())

    @varlinkmethod(return_parameter="exit_code")
    async def Wait(self, *, name: str) -> int:
        """Return once it has exited (at once if it has): its exit code."""
        with self._container(name) as container:
            return await container.wait()

    @varlinkmethod
    async def Remove(self, *, name: str, force: bool | None = None) -> None:
        """Delete it with its storage; force stops it first if it runs."""
        with self._container(name) as container:
            await self._ops.remove_container(container, bool(force))

    @varlinkmethod(return_parameter="info", allow_foreign=True)
    async def Inspect(self, *, name: str) -> InspectInfo:
        """Everything about it, podman-inspect style: config (env included), state,
        mounts and the OCI runtime spec in use."""
        with self._container(name) as container:
            return inspect_info(self._ops.inspect(container))

    @varlinkmethod(return_parameter="status")
    async def RunHealthCheck(self, *, name: str) -> str:
        """Run its health check now (joining one under way); its health after it:
        starting, healthy or unhealthy. A check still running after health_timeout
        seconds is killed and counts as failed."""
        with self._container(name) as container:
            return await self._ops.run_health_check(container)

    @varlinkmethod(return_parameter="stats")
    async def GetStats(self, *, name: str) -> Stats:
        """Resource use of a running or paused container, from its cgroup (v1 or
        v2) and network namespace: CPU time, memory in use (less inactive file
        cache) and its limit (0: none), processes, block I/O bytes, network bytes
        (only with a network namespace of its own), and when they were read."""
        with self._container(name) as container:
            return stats_of(self._ops.stats(container))

    # Streams as descriptors, as D-Bus's OpenLog and Attach hand them: the caller's
    # (capped per uid as there), closed here once the reply is sent.

    @varlinkmethod(return_parameter="fd")
    async def OpenLog(self, *, name: str, follow: bool | None = None) -> FileDescriptor:
        """Its log as a passed descriptor (a pipe to read): one record per line,
        "<RFC 3339 time> <stdout|stderr> <text>", bytes as written; with follow,
        new records as they come until it exits, then EOF. For a caller that can
        take a descriptor (Logs sends the records as replies instead)."""
        with self._container(name) as container:
            fd = await self._ops.open_log(container, bool(follow), stream_owner())
        return FileDescriptor(fd, should_close=True)

    @varlinkmethod(return_parameter="fd")
    async def Attach(self, *, name: str, detach_keys: str | None = None) -> FileDescriptor:
        """A socket (a passed descriptor) joined to the running container's stdio
        from now on: its terminal, or its merged stdout and stderr and (with the
        stdin option) its stdin; detach_keys as D-Bus Attach's ("": the default
        ctrl-p,ctrl-q). EOF once it exits or the keys detached."""
        with self._container(name) as container:
            fd = await self._ops.attach(container, detach_keys or "", stream_owner())
        return FileDescriptor(fd, should_close=True)

    @varlinkmethod(return_parameter="record")
    async def Logs(self, *, name: str, follow: bool | None = None,
                   since: int | None = None) -> LogRecord | None:
        """Called with more: its log, one reply per record (time in RFC 3339,
        stream, text), from since (microseconds since the epoch; absent or 0:
        the start); with follow, new records as they are written until it
        exits. The last reply has no record."""
        with self._container(name) as container:
            if not wants_more():
                raise InvalidArgument("Logs sends one reply per record: call it with more")
            await stream_logs(self._ops, container, bool(follow), since or 0, ERRORS)
        return None

    @varlinkmethod(return_parameter="event", delay_generator=False)  # never held back
    async def Watch(self, *, existing: bool | None = None) -> AsyncIterator[ContainerEvent]:
        """Called with more: a ready event, then one event per change (added,
        removed, changed with the fields that changed) until the client hangs up.
        With existing, an existing event per container comes before ready. A
        client more than 1024 events behind gets Overflow and is hung up on."""

        def snapshot() -> list[ContainerEvent]:
            if not existing:
                return []
            return [ContainerEvent(EventKind.existing, c.id, [], container_info(c))
                    for c in self._ops.list_containers()]

        ready = ContainerEvent(EventKind.ready, "", [], None)
        async with contextlib.aclosing(
                watch(self._watchers.containers, snapshot, ready, ERRORS)) as events:
            async for event in events:
                yield event
