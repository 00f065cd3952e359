"""The io.pyctrd socket: who may connect, and a Connection per client.

The system daemon's socket is mode 0666 because polkit gates every method
that changes anything (and its directory is made traversable, not listable);
a session daemon's is 0600, reachable only by its user, and asks no polkit,
as on the session bus. The accept loop is ours (not asyncvarlink's) to read
the peer's credentials once, at accept, and to hold each uid to its share of
connections (limits.py): a refused client is hung up on at once.
"""

import asyncio
import collections
import contextlib
import dataclasses
import errno
import logging
import os
import socket
import stat
from pathlib import Path

from asyncvarlink import VarlinkInterfaceRegistry, VarlinkTransport, varlinksignature
from asyncvarlink.serviceinterface import VarlinkServiceInterface

from pyctrd import fdbudget
from pyctrd.errors import LimitsExceeded
from pyctrd.ops.authority import Authority
from pyctrd.ops.names import VARLINK_CONTAINER, VARLINK_IMAGE
from pyctrd.ops.operations import Operations
from pyctrd.ops.ratelimit import RateLimitedLog
from pyctrd.varlink.authz import operation_of
from pyctrd.varlink.container import ContainerVarlink
from pyctrd.varlink.image import ImageVarlink
from pyctrd.varlink.job import JobVarlink
from pyctrd.varlink.limits import Limits, PendingBytes
from pyctrd.varlink.network import NetworkVarlink
from pyctrd.varlink.observe import EventsVarlink
from pyctrd.varlink.peer import peer_of
from pyctrd.varlink.protocol import Connection
from pyctrd.varlink.volume import VolumeVarlink
from pyctrd.varlink.watch import Watchers

log = logging.getLogger(__name__)
refusals = RateLimitedLog(log)

ACCEPT_RETRY = 1.0  # s to pause accepting when out of file descriptors
ACCEPT_BATCH = 32  # connections accepted per wake-up


class Transport(VarlinkTransport):
    """asyncvarlink's transport, reading in bounded turns, writing without copies.

    Its read loop runs until the socket is empty, so a client that writes as
    fast as the daemon reads would keep the event loop to itself. This one
    stops after READ_TURN bytes or when the protocol pauses reading (it does
    once a whole call is queued), and lets the loop serve others meanwhile.
    """

    # Fewer, larger reads than asyncvarlink's 4 KiB (a 16 MiB message: 256 reads).
    RECV_BUFFER_SIZE = 64 * 1024
    READ_TURN = 1024 * 1024
    # No method takes more than one fd; the kernel closes any beyond these.
    MAX_RECV_FDS = 8

    def send_message(self, data: bytes, fds: list[int] | None = None) -> asyncio.Future[None]:
        # asyncvarlink keeps the unsent rest of a message as data[sent:]: of bytes,
        # a copy at every partial write (a 64 MiB reply to a slow reader: 5.7 s of
        # copying, not 0.6); of a memoryview, a view.
        return super().send_message(memoryview(data), fds)  # type: ignore[arg-type]

    def _handle_read_socket_peek(self) -> None:
        assert isinstance(self._recvfd, socket.socket)
        assert self._boundary_predictor is not None
        turn = self.READ_TURN
        while turn > 0 and not self._paused and self._recvfd is not None:
            if self._peeked_boundaries:
                received = self._sock_receive_fds(self._peeked_boundaries[0])
                if not received:
                    return
                turn -= received
                self._peeked_boundaries[0] -= received
                if self._peeked_boundaries[0] <= 0:
                    del self._peeked_boundaries[0]
                continue
            # Peek first: fds must go with the message they were sent with.
            try:
                data = self._recvfd.recv(self.RECV_BUFFER_SIZE, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                self._close_receiver(err)
                return
            self._peeked_boundaries = (self._boundary_predictor(data)
                                       or [self.RECV_BUFFER_SIZE])


def make_registry(operations: Operations, watchers: Watchers) -> VarlinkInterfaceRegistry:
    """The interfaces served; UnknownMethod if a method is no operation."""
    registry = VarlinkInterfaceRegistry()
    registry.register_interface(VarlinkServiceInterface(
        "pyctrd", "pyctrd", operations.version, "", registry))
    registry.register_interface(ContainerVarlink(operations, watchers))
    registry.register_interface(ImageVarlink(operations, watchers))
    registry.register_interface(EventsVarlink(operations))
    registry.register_interface(JobVarlink(operations))
    registry.register_interface(NetworkVarlink(operations))
    registry.register_interface(VolumeVarlink(operations))
    for interface in registry:
        for member in dir(interface):
            if varlinksignature(getattr(interface, member)) is not None:
                operation_of(interface.name, member)  # UnknownMethod if in no table
    return registry


class VarlinkServer:
    def __init__(self, operations: Operations, path: Path,
                 authority: Authority | None, limits: Limits | None = None) -> None:
        self.path = path
        self._operations = operations
        self._authority = authority
        self.limits = Limits.from_environment() if limits is None else limits
        if authority is None:
            # A 0600 socket: its one user has no one to share with.
            self.limits = dataclasses.replace(self.limits, per_uid=self.limits.max_connections,
                                              root_reserve=0)
        self._watchers = Watchers()
        self._registry = make_registry(operations, self._watchers)
        self._sock: socket.socket | None = None
        self._transports: set[VarlinkTransport] = set()
        self._per_uid: collections.Counter[int] = collections.Counter()
        self._pending = PendingBytes(self.limits.pending_per_uid)

    @property
    def public(self) -> bool:
        """Anyone may connect: only when polkit guards every method that changes things."""
        return self._authority is not None

    def start(self) -> None:
        self._sock = _listening_socket(self.path, 0o666 if self.public else 0o600)
        if self.public:
            # Others must reach the socket, not list or read the run root.
            parent = self.path.parent
            parent.chmod(stat.S_IMODE(parent.stat().st_mode) | 0o111)
        self._operations.engine.listener.add(self._watchers)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._accept)
        log.info("varlink: serving %s and %s on %s (%s)", VARLINK_CONTAINER, VARLINK_IMAGE,
                 self.path, "polkit-guarded, mode 0666" if self.public else "mode 0600")

    def _accept(self) -> None:
        # A few at a time: a burst of connections (refused ones, mostly) leaves
        # the listen backlog free for others sooner, and the loop still turns.
        for _ in range(ACCEPT_BATCH):
            if self._sock is None:
                return
            try:
                conn, _addr = self._sock.accept()
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("varlink: cannot accept a client: %s; pausing", err)
                    self._pause_accepting()
                return
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        try:
            peer = peer_of(conn)
        except OSError:
            conn.close()
            return
        why = self.limits.admits(peer.uid, len(self._transports), self._per_uid[peer.uid])
        if not why:
            try:
                fdbudget.check("a Varlink connection")
            except LimitsExceeded as err:
                why = str(err)
        if why:
            refusals(logging.WARNING, "connections",
                     "varlink: refusing a client (pid %d, uid %d): %s", peer.pid, peer.uid, why)
            conn.close()
            return
        protocol = Connection(self._registry, self._operations, self._authority, peer, conn,
                              self.limits, self._pending)
        transport = Transport(asyncio.get_running_loop(), conn, conn, protocol, {"peer": peer})
        self._transports.add(transport)
        self._per_uid[peer.uid] += 1

        def closed(_: object) -> None:
            self._transports.discard(transport)
            self._per_uid[peer.uid] -= 1
            if not self._per_uid[peer.uid]:
                del self._per_uid[peer.uid]

        transport.closed_future.add_done_callback(closed)

    def _pause_accepting(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        fd = self._sock.fileno()
        loop.remove_reader(fd)

        def resume() -> None:
            if self._sock is not None:
                loop.add_reader(fd, self._accept)

        loop.call_later(ACCEPT_RETRY, resume)

    async def end_calls(self) -> None:
        """At shutdown, before close: answer every call still running (Wait, a long
        Stop, a Watch) with Failed, "shutting down"."""
        connections = [t.get_protocol() for t in self._transports]
        await asyncio.gather(*(c.end_calls() for c in connections
                               if isinstance(c, Connection)))

    def close(self) -> None:
        """Stop listening, drop every client, remove the socket file."""
        if self._sock is None:
            return
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for transport in list(self._transports):
            transport.abort()
        with contextlib.suppress(ValueError):
            self._operations.engine.listener.remove(self._watchers)


def _listening_socket(path: Path, mode: int) -> socket.socket:
    """A stream socket bound at ``path`` with ``mode``, listening.

    Bound through /proc/self/fd/<dir> so a long run root cannot exceed the
    108 bytes of sun_path; chmod before listen, so no one connects meanwhile.
    """
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()  # left by a daemon that died; we own the run root now
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
                         | socket.SOCK_CLOEXEC)
    dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.bind(f"/proc/self/fd/{dir_fd}/{path.name}")
        os.chmod(path.name, mode, dir_fd=dir_fd)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dir_fd)
    return sock
