"""Joining the local terminal or stdin to a container through an Attach socket.

The daemon relays raw bytes both ways (a terminal container's output, or
the merged stdout and stderr of another) and handles the detach keys: the
socket reaching EOF means the container exited or we detached, and the
caller asks the container which.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import stat
import sys
import termios
import tty
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from pyctrd.cli.bus import Daemon, Ref
from pyctrd.cli.detachkeys import SentTail
from pyctrd.cli.errors import CliError
from pyctrd.cli.logstream import overlap
from pyctrd.cli.sigproxy import GIVE_UP_AFTER, PROXIED_SIGNALS

CHUNK = 8192  # conmon takes at most 8 KiB per stdin packet
EOT = b"\x04"  # what a terminal sends for ctrl-d: EOF for the program reading it


async def stdin_chunks(fd: int = 0) -> AsyncIterator[bytes]:
    """Our stdin in chunks, without blocking the loop; ends at EOF."""
    loop = asyncio.get_running_loop()
    if stat.S_ISREG(os.fstat(fd).st_mode):  # epoll refuses regular files: read in a thread
        while chunk := await loop.run_in_executor(None, os.read, fd, CHUNK):
            yield chunk
        return
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            # The event may be stale (set again after we had read what woke us);
            # stdin stays blocking, as the shell after us expects, so look first.
            if not select.select([fd], [], [], 0)[0]:
                continue
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                continue
            if not chunk:
                return
            yield chunk
    finally:
        loop.remove_reader(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[written:]


def attach_socket(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


async def send_stdin(sock: socket.socket, at_eof: bytes | None,
                     sent: SentTail | None = None) -> None:
    """Our stdin to the container. At EOF: send ``at_eof`` and keep the socket
    open, or with None end the attach (the daemon keeps the container's stdin
    open, though: it runs conmon with --leave-stdin-open)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError, OSError):
        async for chunk in stdin_chunks():
            await loop.sock_sendall(sock, chunk)
            if sent is not None:
                sent.add(chunk)
        if at_eof is None:
            # EOF for the daemon's relay, which then ends the attach (and the
            # socket keeps its descriptor for the receiving side meanwhile)
            sock.shutdown(socket.SHUT_WR)
        elif at_eof:
            await loop.sock_sendall(sock, at_eof)


async def receive(sock: socket.socket, out_fd: int | None) -> None:
    """The container's side until EOF: to ``out_fd``, or dropped with None."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError, OSError):
        while data := await loop.sock_recv(sock, 65536):
            if out_fd is not None:
                write_all(out_fd, data)


def terminal_size() -> tuple[int, int] | None:
    for fd in (1, 0, 2):
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            return size.lines, size.columns
    return None


@contextlib.contextmanager
def raw_terminal(fd: int = 0) -> Iterator[None]:
    """Our terminal in raw mode (keys go to the container as typed), restored after."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def resize(daemon: Daemon, ref: Ref) -> None:
    if (size := terminal_size()) is None:
        return
    with contextlib.suppress(CliError):  # the container may be exiting: nothing to resize
        await daemon.container_call(ref, "ResizeTerminal", "qq", list(size))


async def relay_terminal(daemon: Daemon, ref: Ref, sock: socket.socket, send_input: bool,
                         replay: Callable[[], Awaitable[bytes]] | None = None,
                         sent: SentTail | None = None) -> None:
    """This terminal ⇄ the container's terminal until the socket ends.

    ``replay`` gives what the container showed before we attached (its prompt);
    it is printed first, without what the socket repeats of it.
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def on_winch() -> None:
        task = loop.create_task(resize(daemon, ref))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    with raw_terminal():
        await resize(daemon, ref)
        loop.add_signal_handler(signal.SIGWINCH, on_winch)
        sender = loop.create_task(send_stdin(sock, EOT, sent)) if send_input else None
        try:
            if replay is not None:
                shown = await replay()
                pending = b""
                with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
                    pending = sock.recv(65536)
                write_all(1, shown + pending[overlap(shown, pending):])
            await receive(sock, 1)
        finally:
            loop.remove_signal_handler(signal.SIGWINCH)
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            for task in list(tasks):
                task.cancel()
            sock.close()


async def relay_plain(sock: socket.socket, send_input: bool, close_on_eof: bool,
                      show_output: bool, sent: SentTail | None = None) -> None:
    """A non-terminal container: our stdin to it, its (merged) output to our stdout."""
    loop = asyncio.get_running_loop()
    sender = (loop.create_task(send_stdin(sock, None if close_on_eof else b"", sent))
              if send_input else None)
    try:
        await receive(sock, 1 if show_output else None)
    finally:
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        sock.close()


@contextlib.contextmanager
def proxy_signals(daemon: Daemon, ref: Ref) -> Iterator[asyncio.Event]:
    """While attached, signals sent to us go to the container instead.

    The event yielded is set at the third SIGINT: the container ignores them
    (a PID 1 without a handler does), and the user wants their shell back.
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    give_up = asyncio.Event()
    interrupts = 0

    async def forward(signum: int) -> None:
        with contextlib.suppress(CliError):
            await daemon.container_call(ref, "Kill", "s", [signal.Signals(signum).name])

    def on_signal(signum: int) -> None:
        nonlocal interrupts
        if signum == signal.SIGINT:
            interrupts += 1
            if interrupts >= GIVE_UP_AFTER:
                give_up.set()
        task = loop.create_task(forward(signum))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    installed = []
    for signum in PROXIED_SIGNALS:
        with contextlib.suppress(ValueError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        yield give_up
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def stdin_is_terminal() -> bool:
    return sys.stdin is not None and os.isatty(0)
