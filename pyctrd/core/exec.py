"""Exec sessions: processes run inside a running container, each watched by a
conmon of its own (pyctrd/oci/execmon.py), as libpod's ExecSession.

A session is ``running`` until its process exits, then ``exited`` with the
code its conmon wrote. It lives in a directory of the container's per-boot
bundle (``exec/<n>``), where ``session.json`` records what a restarted daemon
needs to re-adopt it: the exit code is conmon's, so neither the process nor
its code is lost while the daemon is away.

A session goes (its object removed) when removed, when its container stops,
or RETENTION seconds after it exited, whichever comes first. Stopping the
container ends the sessions' processes (the kernel kills the PID namespace):
their codes are recorded before they go.

Front ends hear of sessions through ExecListener; the stdio of a new session
is one end of a socketpair whose relay counts as its caller's stream.
"""

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import socket
from collections.abc import Hashable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyctrd.core import stdio
from pyctrd.core.config import now_us
from pyctrd.core.container import Container
from pyctrd.core.state import State
from pyctrd.detachkeys import parse_detach_keys
from pyctrd.errors import (
    InvalidArgument,
    InvalidState,
    NoSuchObject,
    NotSupported,
    RuntimeFailed,
)
from pyctrd.oci.attach import relay_exec
from pyctrd.oci.execmon import ExecLaunched, ExecRequest
from pyctrd.storage.etcfiles import resolve_user
from pyctrd.storage.trees import remove_quietly

log = logging.getLogger(__name__)

RETENTION = 300.0  # seconds an exited session stays
END_GRACE = 10.0  # after its container stopped: how long to wait for a session's conmon
NOT_FOUND, CANNOT_INVOKE = 127, 126  # as podman (and a shell) report a command
RUNNING, EXITED = "running", "exited"
RECORD = "session.json"


class ExecMonitorPort(Protocol):
    """conmon in exec mode (pyctrd.oci.execmon.ConmonExec)."""

    async def launch(self, request: ExecRequest) -> ExecLaunched: ...

    def is_alive(self, conmon_pid: int) -> bool: ...

    def read_exit(self, directory: Path) -> int | None: ...

    def resize(self, directory: Path, rows: int, cols: int) -> None: ...

    def signal(self, pid: int, conmon_pid: int, sig: int) -> bool: ...

    def kill_conmon(self, directory: Path) -> None: ...


class ExitWatcher(Protocol):
    def __call__(self, pid: int, on_exit: Any) -> Any: ...


class ExecListener(Protocol):
    def exec_added(self, session: "ExecSession") -> None: ...
    def exec_changed(self, session: "ExecSession", changes: list[str]) -> None: ...
    def exec_removed(self, session: "ExecSession") -> None: ...


@dataclass
class ExecOptions:
    terminal: bool = False
    stdin: bool = False
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    detach_keys: str = ""  # podman's syntax; "" for ctrl-p,ctrl-q


@dataclass
class ExecRecord:
    """What session.json keeps."""

    id: str
    number: int
    command: list[str]
    terminal: bool
    created: int
    pid: int = 0
    conmon_pid: int = 0


class ExecSession:
    def __init__(self, container: Container, record: ExecRecord, directory: Path) -> None:
        self.container = container
        self.record = record
        self.directory = directory
        self.state = RUNNING
        self.exit_code = -1
        self.finished = 0
        self.removed = False
        self._exited = asyncio.Event()
        self._watch: Any = None
        self._expiry: asyncio.TimerHandle | None = None

    # read by the property tables

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def number(self) -> int:
        return self.record.number

    @property
    def command(self) -> list[str]:
        return self.record.command

    @property
    def terminal(self) -> bool:
        return self.record.terminal

    @property
    def pid(self) -> int:
        return self.record.pid if self.state == RUNNING else 0

    @property
    def created(self) -> int:
        return self.record.created

    async def wait(self) -> int:
        if self.state != EXITED:
            if self.removed:
                raise NoSuchObject(f"exec session {self.number} was removed before it exited")
            await self._exited.wait()
            if self.state != EXITED:
                raise NoSuchObject(f"exec session {self.number} was removed before it exited")
        return self.exit_code


class ExecSessions:
    """Every container's exec sessions; one per engine."""

    def __init__(self, monitor: ExecMonitorPort | None, socket_dir: Path,
                 watch_exit: ExitWatcher) -> None:
        """``monitor`` None: a runtime conmon cannot drive (a unit test's fake)."""
        self._monitor: ExecMonitorPort = monitor or _NoMonitor()
        self._socket_dir = socket_dir
        self._watch_exit = watch_exit
        self._listeners: list[ExecListener] = []
        self.by_container: dict[str, dict[int, ExecSession]] = {}
        self._ending: dict[str, asyncio.Task[None]] = {}
        self._last: dict[str, int] = {}  # container id → its last session number

    def add_listener(self, listener: ExecListener) -> None:
        self._listeners.append(listener)

    def _tell(self, event: str, *args: Any) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, event)(*args)
            except Exception:
                log.exception("an exec listener failed on %s", event)

    def sessions(self, container: Container | None = None) -> list[ExecSession]:
        if container is not None:
            return list(self.by_container.get(container.id, {}).values())
        return [s for group in self.by_container.values() for s in group.values()]

    def lookup(self, container: Container, number: int) -> ExecSession:
        session = self.by_container.get(container.id, {}).get(number)
        if session is None:
            raise NoSuchObject(f"container {container.name} has no exec session {number}")
        return session

    # Exec

    async def exec(self, container: Container, command: list[str], options: ExecOptions,
                   owner: Hashable | None = None) -> tuple[ExecSession, socket.socket]:
        """Start ``command`` in the running ``container``; the session and the
        caller's end of its stdio (joined before the process starts)."""
        if not command or not command[0]:
            raise InvalidArgument("Exec needs a command: at least a program to run")
        keys = parse_detach_keys(options.detach_keys)
        if not options.terminal:
            keys = b""  # piped data passes untouched, whatever bytes it holds
        _require_running(container)
        process = self._process(container, command, options)
        # Never a number used before in this container: a client holding an old
        # session's path must not reach a new one.
        number = max(_next_number(container), self._last.get(container.id, 0) + 1)
        self._last[container.id] = number
        directory = container.bundle / "exec" / str(number)
        directory.mkdir(parents=True, mode=0o700)
        record = ExecRecord(id=secrets.token_hex(32), number=number, command=list(command),
                            terminal=options.terminal, created=now_us())
        try:
            launched = await self._monitor.launch(ExecRequest(
                cid=container.id, session_id=record.id, directory=directory,
                socket_dir=self._socket_dir, process=process, stdin=options.stdin))
        except BaseException:
            # Cancelled mid-handshake (the daemon stopping), conmon would go on to run
            # the command with nobody to know of it.
            self._monitor.kill_conmon(directory)
            remove_quietly(directory)
            raise
        session = ExecSession(container, record, directory)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if launched.failure:
            code = _failure_code(launched.failure)
            if code is None:
                ours.close()
                theirs.close()
                remove_quietly(directory)
                raise RuntimeFailed(f"exec of {command[0]!r} failed: "
                                    f"{_runtime_message(launched.failure)}")
            # podman's statuses for a command that cannot run; the message as its stderr
            with contextlib.suppress(OSError):
                ours.sendall(f"{_runtime_message(launched.failure)}\n".encode())
            ours.close()
            self._add(session)
            self._exited_with(session, code)
            return session, theirs
        assert launched.attach is not None
        record.pid, record.conmon_pid = launched.pid, launched.conmon_pid
        _save(record, directory)  # durable before anyone hears of it
        self._add(session)
        self._watch(session)
        stdio.spawn_stream(relay_exec(launched.attach, ours, keys),
                           f"exec {number} in {container.name}", owner)
        if container.removed or container.state in (State.EXITED, State.CONFIGURED):
            self.container_stopped(container)  # it stopped while we launched: ends with it
        return session, theirs

    def _process(self, container: Container, command: list[str],
                 options: ExecOptions) -> dict[str, Any]:
        """The container's own process spec, with the exec's command and options."""
        try:
            spec = json.loads((container.bundle / "config.json").read_text())
        except (OSError, ValueError) as err:
            raise InvalidState(f"container {container.name} has no runtime spec to exec "
                               f"in ({err}); is it running?") from None
        process: dict[str, Any] = spec["process"]
        process["args"] = list(command)
        process["terminal"] = options.terminal
        process.pop("consoleSize", None)
        env = [e for e in process.get("env", [])]
        for entry in options.env:
            if "=" not in entry or entry.startswith("="):
                raise InvalidArgument(f"env entry {entry!r} is not NAME=VALUE")
            name = entry.split("=", 1)[0]
            env = [e for e in env if e.split("=", 1)[0] != name] + [entry]
        if options.terminal and not any(e.startswith("TERM=") for e in env):
            env.append("TERM=xterm")
        process["env"] = env
        if options.workdir:
            if not options.workdir.startswith("/"):
                raise InvalidArgument(f"workdir {options.workdir!r} must be absolute")
            process["cwd"] = options.workdir
        if options.user:
            root = container.status.mountpoint
            uid, gid = resolve_user(options.user, Path(root) if root else
                                    container.paths.lower)
            process["user"] = {"uid": uid, "gid": gid}
        return process

    # watching exits

    def _watch(self, session: ExecSession) -> None:
        session._watch = self._watch_exit(session.record.conmon_pid,
                                          lambda: self._conmon_exited(session))

    def _conmon_exited(self, session: ExecSession) -> None:
        session._watch = None
        code = self._monitor.read_exit(session.directory)
        if code is None:
            log.warning("exec session %d in %s: its conmon left no exit code; -1",
                        session.number, session.container.name)
            code = -1
        self._exited_with(session, code)

    def _exited_with(self, session: ExecSession, code: int, finished: int = 0) -> None:
        if session.state == EXITED or session.removed:
            return
        session.state, session.exit_code = EXITED, code
        session.finished = finished or now_us()
        session._exited.set()
        self._tell("exec_changed", session, ["state", "pid", "exit_code", "finished"])
        session._expiry = asyncio.get_running_loop().call_later(
            RETENTION, self.remove, session)

    # Kill, ResizeTerminal, Remove

    def kill(self, session: ExecSession, sig: int) -> None:
        if session.removed:
            raise NoSuchObject(f"exec session {session.number} has been removed")
        if session.state != RUNNING or not self._monitor.signal(
                session.record.pid, session.record.conmon_pid, sig):
            raise InvalidState(f"exec session {session.number} in {session.container.name} "
                               "has exited; there is nothing to signal")

    def resize(self, session: ExecSession, rows: int, cols: int) -> None:
        if not session.terminal:
            raise InvalidArgument(f"exec session {session.number} has no terminal (it was "
                                  "started without the terminal option)")
        if rows == 0 or cols == 0:
            raise InvalidArgument(f"a terminal of {rows} rows and {cols} columns is no "
                                  "terminal; give both at least 1")
        if session.state != RUNNING:
            raise InvalidState(f"exec session {session.number} has exited")
        self._monitor.resize(session.directory, rows, cols)

    def remove(self, session: ExecSession, force: bool = True) -> None:
        """Forget the session; a running one only with ``force`` (killed first)."""
        if session.removed:
            return
        if session.state == RUNNING and not force:
            raise InvalidState(f"exec session {session.number} in {session.container.name} "
                               "is running; Kill it (or wait for it) first")
        if session.state == RUNNING:
            self._monitor.signal(session.record.pid, session.record.conmon_pid,
                                 signal.SIGKILL)
        session.removed = True
        if session._watch is not None:
            session._watch.cancel()
        if session._expiry is not None:
            session._expiry.cancel()
        session._exited.set()  # waiters learn it went
        group = self.by_container.get(session.container.id, {})
        group.pop(session.number, None)
        if not group:
            self.by_container.pop(session.container.id, None)
        remove_quietly(session.directory)
        self._tell("exec_removed", session)

    def _add(self, session: ExecSession) -> None:
        self.by_container.setdefault(session.container.id, {})[session.number] = session
        self._tell("exec_added", session)

    # the container's life

    def container_stopped(self, container: Container) -> None:
        """Its sessions end with it: record their codes, then remove them."""
        if container.id in self.by_container and container.id not in self._ending:
            task = asyncio.get_running_loop().create_task(self._end_all(container))
            self._ending[container.id] = task
            task.add_done_callback(lambda _: self._ending.pop(container.id, None))

    def forget(self, container: Container) -> None:
        self._last.pop(container.id, None)

    async def _end_all(self, container: Container) -> None:
        sessions = self.sessions(container)
        waits = [s.wait() for s in sessions if s.state == RUNNING]
        if waits:
            try:
                async with asyncio.timeout(END_GRACE):
                    await asyncio.gather(*waits, return_exceptions=True)
            except TimeoutError:
                log.warning("container %s stopped; some exec sessions' conmons did not "
                            "report within %.0f s", container.name, END_GRACE)
        for session in sessions:
            if session.state == RUNNING:
                self._monitor.kill_conmon(session.directory)
            self.remove(session)

    # recovery

    def recover(self, containers: Iterable[Container]) -> None:
        """Re-adopt the sessions of containers that may run (their conmons kept
        them); forget those of stopped ones."""
        for container in containers:
            exec_dir = container.bundle / "exec"
            if not exec_dir.is_dir():
                continue
            if container.removed or container.state in (State.EXITED, State.CONFIGURED):
                remove_quietly(exec_dir)
                continue
            for directory in sorted(exec_dir.iterdir(), key=lambda p: p.name):
                try:
                    self._readopt(container, directory)
                except Exception:
                    log.exception("exec session %s of %s could not be re-adopted; removed",
                                  directory.name, container.name)
                    remove_quietly(directory)

    def _readopt(self, container: Container, directory: Path) -> None:
        try:
            data = json.loads((directory / RECORD).read_text())
        except FileNotFoundError:
            remove_quietly(directory)  # the daemon died while launching it
            return
        session = ExecSession(container, ExecRecord(**data), directory)
        self._add(session)
        if self._monitor.is_alive(session.record.conmon_pid):
            self._watch(session)
            return
        code = self._monitor.read_exit(directory)
        finished = 0
        with contextlib.suppress(OSError):
            finished = (directory / "exit").stat().st_mtime_ns // 1000
        self._exited_with(session, -1 if code is None else code, finished)


class StopsSessions:
    """An engine listener: a container that stops, or goes, ends its sessions."""

    def __init__(self, execs: ExecSessions) -> None:
        self._execs = execs

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        # (unknown: recovery could not tell; its sessions' conmons may well live on)
        if "state" in changes and container.state not in (State.RUNNING, State.PAUSED,
                                                          State.UNKNOWN):
            self._execs.container_stopped(container)

    def container_removed(self, container: Container) -> None:
        self._execs.container_stopped(container)
        self._execs.forget(container)

    def __getattr__(self, event: str) -> Any:
        # Every other engine event (images, containers added, ...) is none of ours.
        if event.startswith("_"):
            raise AttributeError(event)
        return _ignore


def _ignore(*args: Any) -> None:
    return None


class _NoMonitor:
    async def launch(self, request: ExecRequest) -> ExecLaunched:
        raise NotSupported("Exec needs conmon and a runc-like runtime; this daemon runs "
                           "another runtime")

    def is_alive(self, conmon_pid: int) -> bool:
        return False

    def read_exit(self, directory: Path) -> int | None:
        return None

    def resize(self, directory: Path, rows: int, cols: int) -> None:
        raise NotSupported("no exec monitor")

    def signal(self, pid: int, conmon_pid: int, sig: int) -> bool:
        return False

    def kill_conmon(self, directory: Path) -> None:
        return None


def _require_running(container: Container) -> None:
    if container.removed:
        raise InvalidState(f"container {container.name} has been removed")
    if container.state != State.RUNNING:
        raise InvalidState(f"cannot Exec in container {container.name}: it is "
                           f"{container.state}; Exec needs a running container")


def _next_number(container: Container) -> int:
    exec_dir = container.bundle / "exec"
    with contextlib.suppress(FileNotFoundError):
        taken = [int(n) for n in os.listdir(exec_dir) if n.isdigit()]
        return max(taken, default=0) + 1
    return 1


def _save(record: ExecRecord, directory: Path) -> None:
    tmp = directory / (RECORD + ".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    os.replace(tmp, directory / RECORD)


_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def _runtime_message(text: str) -> str:
    """runc's logrus line reduced to its message."""
    found = _MSG.search(text)
    if found:
        return found.group(1).replace('\\"', '"')
    return text.strip()


def _failure_code(text: str) -> int | None:
    lowered = text.lower()
    if "not found" in lowered or "no such file or directory" in lowered:
        return NOT_FOUND
    if "permission denied" in lowered or "is a directory" in lowered:
        return CANNOT_INVOKE
    return None
