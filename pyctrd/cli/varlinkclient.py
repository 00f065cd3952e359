"""pyctr's side of the io.pyctrd socket, for ps and run: stdlib only.

A blocking socket and json load far faster than asyncio and dbus-fast (about
35 ms of a 70 ms `pyctr ps`). Error replies become the DaemonError the same
reply over D-Bus would be, so they print alike. VarlinkUnavailable means this
daemon cannot be asked here (no socket, a refused connection, a daemon
without the method): the caller asks over D-Bus instead, having printed
nothing. Descriptors a reply passes (SCM_RIGHTS) are received with it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from pyctrd.cli.errors import CliError, DaemonError

SYSTEM_SOCKET = "/run/pyctrd/io.pyctrd"  # the system daemon's run root (settings.py)
SOCKET_NAME = "io.pyctrd"  # pyctrd.ops.names.VARLINK_SOCKET_NAME
_CHUNK = 1 << 20
_MAX_FDS = 4  # per read; a reply of ours passes one


class VarlinkUnavailable(Exception):
    """Not this way: ask over D-Bus."""


class VarlinkHungUp(VarlinkUnavailable):
    """The daemon closed the connection before replying: harmless to retry over
    D-Bus for a reading call, not for one that may have been carried out."""


def socket_path(varlink: str | None, address: str | None, user: bool) -> str | None:
    """The socket to try: --varlink's (empty: none), else the default daemon's own
    when the bus is the default one too (a bus chosen by --address or
    $DBUS_SYSTEM_BUS_ADDRESS may belong to a daemon elsewhere)."""
    if varlink is not None:
        return varlink or None
    if address:
        return None
    if user:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        return os.path.join(runtime, "pyctrd", SOCKET_NAME) if runtime else None
    return None if os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") else SYSTEM_SOCKET


class VarlinkClient:
    """One connection; calls one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no NUL: not searched again
        self._fds: list[int] = []  # passed with the reply being read
        self.replies = 0  # replies read on this connection (it was accepted, then)

    @classmethod
    def connect(cls, path: str) -> VarlinkClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(path)
        except OSError as err:  # none there, not ours to reach, a path too long
            sock.close()
            raise VarlinkUnavailable(str(err)) from None
        return cls(sock)

    def close(self) -> None:
        self._drop_fds()
        self._sock.close()

    def call(self, method: str, parameters: dict[str, Any],
             more: bool = True) -> Iterator[dict[str, Any]]:
        """The replies' parameters, one by one (several with ``more``); the call
        ends with the reply that does not continue."""
        message: dict[str, Any] = {"method": method, "parameters": parameters}
        if more:
            message["more"] = True
        try:
            self._sock.sendall(json.dumps(message).encode() + b"\0")
        except OSError as err:
            raise VarlinkUnavailable(str(err)) from None
        replied = False
        while True:
            self._drop_fds()  # none asked for by an earlier reply
            reply = json.loads(self._message(replied))
            replied = True
            self.replies += 1
            if "error" in reply:
                _raise(reply["error"], reply.get("parameters") or {})
            yield reply.get("parameters") or {}
            if not reply.get("continues"):
                return

    def call_once(self, method: str, parameters: dict[str, Any]) -> dict[str, Any]:
        """A call without more: its one reply's parameters."""
        (reply,) = self.call(method, parameters, more=False)
        self._drop_fds()
        return reply

    def call_for_fd(self, method: str, parameters: dict[str, Any], field: str = "fd") -> int:
        """A method whose reply passes one descriptor (``field`` is its index):
        the descriptor, ours to close."""
        (reply,) = self.call(method, parameters, more=False)
        fds, self._fds = self._fds, []
        index = reply.get(field)
        if not isinstance(index, int) or not 0 <= index < len(fds):
            for fd in fds:
                os.close(fd)
            raise CliError(f"pyctrd's {method} reply carried no descriptor")
        for other in fds[:index] + fds[index + 1:]:
            os.close(other)
        return fds[index]

    def _drop_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _message(self, replied: bool) -> bytes:
        while True:
            end = self._buffer.find(b"\0", self._scanned)
            if end >= 0:
                message = bytes(self._buffer[:end])
                del self._buffer[:end + 1]
                self._scanned = 0
                return message
            self._scanned = len(self._buffer)
            try:
                data, fds, _flags, _address = socket.recv_fds(
                    self._sock, _CHUNK, _MAX_FDS, socket.MSG_CMSG_CLOEXEC)
            except OSError as err:
                data, why = b"", str(err)
            else:
                self._fds += fds
                why = "the daemon hung up"
            if not data:
                if not replied:  # refused at accept (a limit), or gone: D-Bus may do
                    raise VarlinkHungUp(why)
                from pyctrd.ops.errors import FAILED
                raise DaemonError(FAILED.dbus_name, f"pyctrd's Varlink socket: {why}")
            self._buffer += data


def _raise(error: str, parameters: dict[str, Any]) -> None:
    interface, _, short = error.rpartition(".")
    if interface == "org.varlink.service":  # an older daemon, an unknown method: D-Bus
        raise VarlinkUnavailable(error)
    from pyctrd.ops.errors import BY_VARLINK_NAME, FAILED  # the catalogue: on errors only
    kind = BY_VARLINK_NAME.get(short)
    name = kind.dbus_name if kind is not None else FAILED.dbus_name
    raise DaemonError(name, str(parameters.get("message") or error))
