"""Driving the real `pyctr` binary against the test daemon: plain runs, runs in a
pseudo-terminal, and a background `pyctr events`."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from typing import Any

from conftest import REPO, bus_driver, run_coro
from dbus_fast import Message
from dbus_fast.aio import MessageBus

PYCTR = REPO / ".venv" / "bin" / "pyctr"
TIMEOUT = 30.0


def env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def pyctr_argv(address: str, *args: str) -> list[str]:
    return [str(PYCTR), "--address", address, *args]


def pyctr(address: str, *args: str, input: str | bytes | None = None,
          timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run pyctr to completion; text stdout/stderr. A traceback fails the test."""
    out = subprocess.run(pyctr_argv(address, *args), capture_output=True, timeout=timeout,
                         input=input.encode() if isinstance(input, str) else input,
                         env=env(), stdin=None if input is not None else subprocess.DEVNULL)
    result = subprocess.CompletedProcess(out.args, out.returncode,
                                         out.stdout.decode(errors="replace"),
                                         out.stderr.decode(errors="replace"))
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(address: str, *args: str, input: str | None = None) -> str:
    """pyctr's stdout; AssertionError with its stderr if it failed."""
    result = pyctr(address, *args, input=input)
    assert result.returncode == 0, f"pyctr {' '.join(args)}: {result.returncode}\n" \
        f"{result.stderr}"
    return result.stdout


def ps_all(address: str) -> list[dict[str, Any]]:
    return list(json.loads(ok(address, "ps", "-a", "--format", "json")))


class Terminal:
    """pyctr in a pseudo-terminal of a given size, as a user would run it."""

    def __init__(self, address: str, *args: str, rows: int = 30, cols: int = 100) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become pyctr
            os.execve(str(PYCTR), pyctr_argv(address, *args), env())
        self.resize(rows, cols, notify=False)
        self.output = b""

    def resize(self, rows: int, cols: int, notify: bool = True) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        if notify:  # the kernel signals the foreground group; pty.fork's child leads it
            os.kill(self.pid, signal.SIGWINCH)

    def wait_raw(self, timeout: float = TIMEOUT) -> None:
        """Until pyctr has put the terminal in raw mode (it is attached by then).

        Typed earlier, keys would be echoed and edited by the terminal itself.
        Nothing announces the mode change, so it is looked at every 20 ms.
        """
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.fd)[3] & termios.ECHO:
            assert time.monotonic() < deadline, f"never raw; showed {self.output!r}"
            time.sleep(0.02)

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def expect(self, wanted: bytes, timeout: float = TIMEOUT) -> bytes:
        """Read until ``wanted`` has appeared; everything read so far."""
        deadline = time.monotonic() + timeout
        while wanted not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise AssertionError(f"{wanted!r} not seen; got {self.output!r}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: pyctr has exited and closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"EOF before {wanted!r}; got {self.output!r}")
            self.output += chunk
        return self.output

    def wait(self, timeout: float = TIMEOUT) -> int:
        """pyctr's exit status (the terminal is drained meanwhile)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.05)[0]:
                with contextlib.suppress(OSError):
                    self.output += os.read(self.fd, 4096)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"pyctr did not exit; terminal showed {self.output!r}")


async def _match_rules_of(address: str, pid: int) -> int:
    """How many match rules the bus connection of process ``pid`` has (0: none yet)."""
    bus = await MessageBus(bus_address=address).connect()
    try:
        (names,) = await bus_driver(bus, "ListNames")
        for name in names:
            if not name.startswith(":"):
                continue
            try:
                (owner_pid,) = await bus_driver(bus, "GetConnectionUnixProcessID", "s", [name])
            except Exception:  # it left meanwhile
                continue
            if owner_pid == pid:
                reply = await bus.call(Message(
                    destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus.Debug.Stats",
                    member="GetConnectionStats", signature="s", body=[name]))
                assert reply is not None and reply.body, reply
                return int(reply.body[0]["MatchRules"].value)
        return 0
    finally:
        bus.disconnect()


class Events:
    """`pyctr events` in the background, its lines read as they come."""

    MATCH_RULES = 3  # what pyctr events subscribes to (commands/events.py)

    def __init__(self, address: str, *args: str) -> None:
        self.proc = subprocess.Popen(pyctr_argv(address, "events", *args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=env())
        self.lines: list[str] = []
        self._buffer = b""
        self._wait_subscribed(address)

    def _wait_subscribed(self, address: str) -> None:
        """Until the bus says its match rules are in place, so no event is missed.

        dbus-daemon's Debug.Stats is the one place that tells; it is asked a few
        times a tenth of a second apart, since nothing announces a match rule.
        """
        deadline = time.monotonic() + TIMEOUT
        while run_coro(_match_rules_of(address, self.proc.pid)) < self.MATCH_RULES:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "pyctr events did not subscribe"
            time.sleep(0.02)
        # the rules are there; GetManagedObjects may still be on its way, which is fine:
        # signals that come meanwhile wait in pyctr's queue

    def read_until(self, predicate: Any, timeout: float = TIMEOUT) -> list[str]:
        """Lines up to and including the first for which ``predicate`` is true."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        start = len(self.lines)
        while True:
            for i in range(start, len(self.lines)):
                if predicate(self.lines[i]):
                    return self.lines[:i + 1]
            start = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"event not seen; lines: {self.lines}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"pyctr events ended; lines: {self.lines}")
            self._buffer += chunk
            *complete, self._buffer = self._buffer.split(b"\n")
            self.lines += [line.decode() for line in complete]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(TIMEOUT)
        finally:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
        return status
