"""The io.pyctrd socket: who may connect, and a Connection per client.

The system daemon's socket is mode 0666 because polkit gates every method
that changes anything (and its directory is made traversable, not listable);
a session daemon's is 0600, reachable only by its user, and asks no polkit,
as on the session bus. The accept loop is ours (not asyncvarlink's) to read
the peer's credentials once, at accept.
"""

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from pathlib import Path

from asyncvarlink import VarlinkInterfaceRegistry, VarlinkTransport, varlinksignature
from asyncvarlink.serviceinterface import VarlinkServiceInterface

from pyctrd.ops.authority import Authority
from pyctrd.ops.names import VARLINK_CONTAINER, VARLINK_IMAGE
from pyctrd.ops.operations import Operations
from pyctrd.varlink.authz import operation_of
from pyctrd.varlink.container import ContainerVarlink
from pyctrd.varlink.image import ImageVarlink
from pyctrd.varlink.peer import peer_of
from pyctrd.varlink.protocol import Connection
from pyctrd.varlink.watch import Watchers

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 1024  # beyond this, new clients are hung up on at once
ACCEPT_RETRY = 1.0  # s to pause accepting when out of file descriptors


def make_registry(operations: Operations, watchers: Watchers) -> VarlinkInterfaceRegistry:
    """The interfaces served; UnknownMethod if a method is no operation."""
    registry = VarlinkInterfaceRegistry()
    registry.register_interface(VarlinkServiceInterface(
        "pyctrd", "pyctrd", operations.version, "", registry))
    registry.register_interface(ContainerVarlink(operations, watchers))
    registry.register_interface(ImageVarlink(operations, watchers))
    for interface in registry:
        for member in dir(interface):
            if varlinksignature(getattr(interface, member)) is not None:
                operation_of(interface.name, member)  # UnknownMethod if in no table
    return registry


class VarlinkServer:
    def __init__(self, operations: Operations, path: Path,
                 authority: Authority | None) -> None:
        self.path = path
        self._operations = operations
        self._authority = authority
        self._watchers = Watchers()
        self._registry = make_registry(operations, self._watchers)
        self._sock: socket.socket | None = None
        self._transports: set[VarlinkTransport] = set()

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
        assert self._sock is not None
        try:
            conn, _addr = self._sock.accept()
        except BlockingIOError:
            return
        except OSError as err:
            if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.warning("varlink: cannot accept a client: %s; pausing", err)
                self._pause_accepting()
            return
        if len(self._transports) >= MAX_CONNECTIONS:
            log.warning("varlink: %d clients already; refusing another", MAX_CONNECTIONS)
            conn.close()
            return
        conn.setblocking(False)
        try:
            peer = peer_of(conn)
        except OSError:
            conn.close()
            return
        protocol = Connection(self._registry, self._operations, self._authority, peer, conn)
        transport = VarlinkTransport(asyncio.get_running_loop(), conn, conn, protocol,
                                     {"peer": peer})
        self._transports.add(transport)
        transport.closed_future.add_done_callback(lambda _: self._transports.discard(transport))

    def _pause_accepting(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        fd = self._sock.fileno()
        loop.remove_reader(fd)

        def resume() -> None:
            if self._sock is not None:
                loop.add_reader(fd, self._accept)

        loop.call_later(ACCEPT_RETRY, resume)

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
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dir_fd)
    return sock
