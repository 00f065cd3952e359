"""Attaching to a container's stdio through conmon, and resizing its terminal.

conmon (2.1.6, with ``--socket-dir-path``) listens on a SOCK_SEQPACKET socket
``<bundle>/attach`` and links ``<socket-dir>/<id>`` to the bundle, because a
socket path is limited to 108 bytes. We reach it through an O_PATH descriptor
of the bundle (``/proc/self/fd/N/attach``), which is short whatever the paths.

- Each packet conmon sends is one read of the container's output, prefixed
  with one byte naming the stream (2 stdout, 3 stderr; a terminal's output
  comes as stdout). We strip that byte: an attached client gets the merged
  output, as a terminal shows it (OpenLog tells the streams apart).
- Each packet we send is written to the container's stdin (its terminal for
  a terminal container); it reaches the process only when the container was
  created with ``stdin``. conmon reads at most 8 KiB of a packet, so we send
  no more per packet.
- When an attach connection closes, conmon closes the container's stdin
  unless it runs with ``--leave-stdin-open``.

The client gets one end of a stream socketpair; the relay between it and
conmon runs in the event loop and holds at most one packet per direction, so
a client that does not read slows the relay down, never the daemon.
The control FIFO ``<bundle>/ctl`` takes "<type> <rows> <cols>\\n"; type 1
resizes the terminal.
"""

import asyncio
import contextlib
import os
import socket
from pathlib import Path

from pyctrd.errors import InvalidState, RuntimeFailed

CONMON_PACKET_MAX = 8192  # conmon's read buffer for a stdin packet
RECV_MAX = 65536  # more than conmon's largest output packet; a seqpacket read truncates
RESIZE = 1  # conmon's ctl message type for a window resize

class DetachMatcher:
    """Finds the detach sequence in the client's input, across reads.

    Bytes that might begin the sequence are held back; if the sequence does
    not complete they are passed on after all, so nothing typed is lost.
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = 0  # how many bytes of keys matched so far

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(what to pass to the container, whether the client detached)."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self._held]:
                self._held += 1
                if self._held == len(self.keys):
                    self._held = 0
                    return bytes(out), True
                continue
            if self._held:
                out += self.keys[:self._held]
                self._held = 0
                if byte == self.keys[0]:
                    self._held = 1
                    continue
            out.append(byte)
        return bytes(out), False


async def connect(bundle: Path) -> socket.socket:
    """A non-blocking connection to conmon's attach socket in ``bundle``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    try:
        dir_fd = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        sock.close()
        raise InvalidState("the container has no monitor to attach to (it exited)") from None
    try:
        await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{dir_fd}/attach")
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise InvalidState("the container's monitor is gone (it exited)") from None
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dir_fd)
    return sock


async def relay(conmon: socket.socket, client: socket.socket, detach_keys: bytes) -> str:
    """Join ``client`` (a stream socket) to ``conmon``'s attach socket until one side ends.

    Returns why it ended: "exited" (conmon closed: the container exited),
    "detached" (the detach keys) or "closed" (the client went away). Both
    sockets are closed at the end, so the client sees EOF.
    """
    client.setblocking(False)
    outgoing = asyncio.ensure_future(_to_client(conmon, client))
    incoming = asyncio.ensure_future(_to_container(client, conmon, DetachMatcher(detach_keys)))
    try:
        done, _ = await asyncio.wait({outgoing, incoming},
                                     return_when=asyncio.FIRST_COMPLETED)
        return done.pop().result()
    finally:
        for task in (outgoing, incoming):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(outgoing, incoming, return_exceptions=True)
        conmon.close()
        client.close()


async def _to_client(conmon: socket.socket, client: socket.socket) -> str:
    loop = asyncio.get_running_loop()
    while True:
        try:
            packet = await loop.sock_recv(conmon, RECV_MAX)
        except ConnectionError:
            return "exited"
        if not packet:
            return "exited"
        try:
            await loop.sock_sendall(client, packet[1:])  # [0] names the stream
        except ConnectionError:
            return "closed"


async def _to_container(client: socket.socket, conmon: socket.socket,
                        matcher: DetachMatcher | None, pass_eof: bool = False) -> str:
    """The caller's input to the process; with ``pass_eof`` the caller's end of
    input (a shutdown of its writing side) ends the process's stdin ("eof")."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await loop.sock_recv(client, CONMON_PACKET_MAX)
        except ConnectionError:
            return "closed"
        if not data:
            if not pass_eof:
                return "closed"
            with contextlib.suppress(OSError):
                conmon.shutdown(socket.SHUT_WR)  # conmon closes the process's stdin
            return "eof"
        detached = False
        if matcher is not None:
            data, detached = matcher.feed(data)
        try:
            # one packet per conmon read; held-back keys may make data a little longer
            for start in range(0, len(data), CONMON_PACKET_MAX):
                await loop.sock_sendall(conmon, data[start:start + CONMON_PACKET_MAX])
        except ConnectionError:
            return "exited"
        if detached:
            return "detached"


def resize_terminal(bundle: Path, rows: int, cols: int) -> None:
    """Ask conmon to set its terminal's size (the container gets SIGWINCH)."""
    try:
        fd = os.open(bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        # ENXIO: nobody reads the FIFO, conmon is gone
        raise InvalidState(f"the container's monitor is gone (it exited): {err}") from None
    try:
        os.write(fd, b"%d %d %d\n" % (RESIZE, rows, cols))
    except BlockingIOError:
        raise RuntimeFailed("conmon is not reading its control FIFO") from None
    finally:
        os.close(fd)


async def relay_exec(conmon: socket.socket, client: socket.socket, keys: bytes) -> str:
    """The caller's stream socket ⇄ conmon's attach socket, until conmon closes
    (the process exited: its output was all sent) or the caller goes or detaches.

    Unlike Attach, the caller's end of input (a shutdown of its writing side)
    is passed on as the end of the process's stdin, and its output still flows.
    """
    client.setblocking(False)
    conmon.setblocking(False)
    out_task = asyncio.ensure_future(_to_client(conmon, client))
    in_task = asyncio.ensure_future(_to_container(
        client, conmon, DetachMatcher(keys) if keys else None, pass_eof=True))
    try:
        done, _ = await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
        if in_task in done and in_task.result() == "eof":
            return await out_task  # the output goes on to its end
        return done.pop().result()
    finally:
        for task in (out_task, in_task):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(out_task, in_task, return_exceptions=True)
        conmon.close()
        client.close()
