"""Exec on Varlink: io.pyctrd.Container's Exec* methods (a mixin of ContainerVarlink).

The same operations as D-Bus's Container.Exec and ExecSession (pyctrd.ops.exec);
a session is named by its container and its number (the N of its D-Bus path).
Exec's reply passes the stdio socket as a descriptor, as Export takes one.
ExecWatch follows one session: a reply per change until it is removed.
ExecOutput is for a caller that cannot take a descriptor (the Cockpit page,
whose stream channel carries bytes only): the daemon holds the stdio socket
and relays the output as `more` replies.
"""

import asyncio
import codecs
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import TypedDict

from asyncvarlink import FileDescriptor, LastResult, varlinkmethod

from pyctrd.core.exec import ExecSession
from pyctrd.errors import InvalidArgument, NoSuchObject
from pyctrd.ops import exec as exec_ops
from pyctrd.ops.operations import Operations
from pyctrd.ops.streams import StreamOwner
from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.protocol import current_call
from pyctrd.varlink.streaming import wants_more


class ExecOptions(TypedDict, total=False):
    terminal: bool
    stdin: bool
    env: list[str]
    workdir: str
    user: str
    detach_keys: str


class ExecStarted(TypedDict):
    session: int
    id: str
    stdio: FileDescriptor


class ExecInfo(TypedDict):
    session: int
    id: str
    command: list[str]
    state: str
    pid: int
    exit_code: int
    terminal: bool
    created_timestamp: int
    finished_timestamp: int


class ExecOutputOptions(TypedDict, total=False):
    env: list[str]
    workdir: str
    user: str


class ExecOutputChunk(TypedDict):
    session: int
    data: str
    exit_code: int


OUTPUT_CHUNK = 1 << 16


def exec_info(session: ExecSession) -> ExecInfo:
    return {"session": session.number, "id": session.id, "command": session.command,
            "state": session.state, "pid": session.pid, "exit_code": session.exit_code,
            "terminal": session.terminal, "created_timestamp": session.created,
            "finished_timestamp": session.finished}


class ExecMethods:
    """Mixed into ContainerVarlink, which provides these two."""

    _ops: Operations
    error_set: ErrorSet

    @contextlib.contextmanager
    def _session(self, name: str, session: int) -> Iterator[ExecSession]:
        with self.error_set.translated(name=name):
            container = self._ops.get_container(name)
            try:
                found = self._ops.engine.execs.lookup(container, session)
            except NoSuchObject as err:
                raise InvalidArgument(str(err)) from None
        with self.error_set.translated(name=name, state=lambda: found.state):
            yield found

    @varlinkmethod
    async def Exec(self, *, name: str, command: list[str],
                   options: ExecOptions | None = None) -> ExecStarted:
        """Run a process in the running container: its session number and ID, and
        a socket (stdio, a passed descriptor) joined to its stdin, stdout and
        stderr from its first byte, its terminal with the terminal option.
        Closing the socket does not kill it. Options as D-Bus Container.Exec's."""
        call = current_call.get()
        owner = StreamOwner(call.peer.uid, f"varlink:{id(call.connection)}")
        with self.error_set.translated(name=name):
            container = self._ops.get_container(name)
        with self.error_set.translated(name=name, state=lambda: str(container.state)):
            decoded = exec_ops.decode_options(dict(options or {}))
            session, fd = await exec_ops.exec_in(self._ops, container, command, decoded,
                                                 owner)
        return {"session": session.number, "id": session.id,
                "stdio": FileDescriptor(fd, should_close=True)}

    @varlinkmethod(return_parameter="session")
    async def ExecGet(self, *, name: str, session: int) -> ExecInfo:
        """One exec session's properties."""
        with self._session(name, session) as found:
            return exec_info(found)

    @varlinkmethod(return_parameter="exit_code")
    async def ExecWait(self, *, name: str, session: int) -> int:
        """Return once the session's process has exited: its exit code."""
        with self._session(name, session) as found:
            return await found.wait()

    @varlinkmethod
    async def ExecKill(self, *, name: str, session: int, signal: str) -> None:
        """Send a signal ("SIGTERM", "TERM", a number; "" is SIGKILL) to its process."""
        with self._session(name, session) as found:
            exec_ops.kill(self._ops, found, signal)

    @varlinkmethod
    async def ExecResizeTerminal(self, *, name: str, session: int, rows: int,
                                 cols: int) -> None:
        """Set the size of its terminal."""
        with self._session(name, session) as found:
            if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
                raise InvalidArgument("rows and cols must be within 0..65535")
            exec_ops.resize(self._ops, found, rows, cols)

    @varlinkmethod
    async def ExecRemove(self, *, name: str, session: int) -> None:
        """Forget an exited session (InvalidState while it runs)."""
        with self._session(name, session) as found:
            exec_ops.remove(self._ops, found)

    @varlinkmethod(return_parameter="session", delay_generator=False)
    async def ExecWatch(self, *, name: str, session: int) -> AsyncIterator[ExecInfo]:
        """Called with more: the session now, then again at each change (its exit),
        until it exits; the last reply is the exited session."""
        with self._session(name, session) as found:
            if not wants_more():
                raise InvalidArgument("ExecWatch sends one reply per change: call it "
                                      "with more")
        if found.state != "exited":
            yield exec_info(found)
            with contextlib.suppress(Exception):  # removed meanwhile: as it was last
                await found.wait()
        raise LastResult(exec_info(found))

    @varlinkmethod(delay_generator=False)
    async def ExecOutput(self, *, name: str, command: list[str], stdin: str | None = None,
                         options: ExecOutputOptions | None = None
                         ) -> AsyncIterator[ExecOutputChunk]:
        """Called with more: run a process in the running container without a
        terminal, stdin given whole (or none: at its end at once), and relay its
        output (stdout and stderr as they come, UTF-8, an invalid byte as U+FFFD)
        as replies with exit_code -1; the last reply has its exit code. For a
        caller that cannot take Exec's descriptor; the session is removed once it
        has been reported. Closing the connection stops the relay, not the process."""
        # Without more, asyncvarlink answers org.varlink.service.ExpectedMore.
        call = current_call.get()
        owner = StreamOwner(call.peer.uid, f"varlink:{id(call.connection)}")
        with self.error_set.translated(name=name):
            container = self._ops.get_container(name)
        with self.error_set.translated(name=name, state=lambda: str(container.state)):
            decoded = exec_ops.decode_options({**(options or {}),
                                               "stdin": stdin is not None})
            session, fd = await exec_ops.exec_in(self._ops, container, command, decoded,
                                                 owner)
        loop = asyncio.get_running_loop()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with socket.socket(fileno=fd) as conn:
            conn.setblocking(False)
            if stdin:
                await loop.sock_sendall(conn, stdin.encode())
            with contextlib.suppress(OSError):  # it exited before reading: no matter
                conn.shutdown(socket.SHUT_WR)  # the end of its stdin
            while chunk := await loop.sock_recv(conn, OUTPUT_CHUNK):
                if text := decoder.decode(chunk):
                    yield {"session": session.number, "data": text, "exit_code": -1}
        code = await session.wait()
        with contextlib.suppress(Exception):  # removed meanwhile by another caller
            exec_ops.remove(self._ops, session)
        raise LastResult({"session": session.number, "data": decoder.decode(b"", final=True),
                          "exit_code": code})
