"""Running a process in a container under conmon's exec mode.

conmon (2.1.6) with ``--exec --exec-process-spec FILE --exec-attach`` runs
``runtime exec --process FILE --detach`` and then watches the process as it
watches a container: it holds its stdio, serves an attach socket and a ctl
FIFO in its bundle dir (``-b``: here the session's own directory), and
writes the exit code to ``<persist-dir>/exit`` when the process ends. It is
not our child: the process and its exit code outlive the daemon.

The handshake, as libpod drives it:

1. ``_OCI_STARTPIPE``: conmon waits for a first write before forking away.
2. ``_OCI_ATTACHPIPE``: once its attach socket listens, conmon reports
   ``{"data": 0}``; we connect then, before the process exists.
3. A second write to the start pipe lets its child run ``runtime exec``.
4. ``_OCI_SYNCPIPE``: ``{"data": PID}``, or a negative number with the
   runtime's message when the exec failed (command not found, say).

So the caller's connection sees every byte the process writes.
"""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyctrd.errors import RuntimeFailed
from pyctrd.oci import attach as oci_attach
from pyctrd.oci.conmon import _read_sync_report, is_live_conmon
from pyctrd.oci.runtime import OCIRuntime
from pyctrd.oci.spawn import spawn


@dataclass(frozen=True)
class ExecRequest:
    cid: str
    session_id: str  # conmon's uuid: names its link in the socket dir
    directory: Path  # the session's: process spec, pid files, attach socket, ctl, exit
    socket_dir: Path
    process: dict[str, Any]  # the OCI process (args, env, cwd, user, terminal, ...)
    stdin: bool


@dataclass
class ExecLaunched:
    """A started exec (pid > 0, attach connected), or one the runtime refused
    (pid 0 and its message in ``failure``; conmon has gone)."""

    pid: int
    conmon_pid: int
    attach: socket.socket | None
    failure: str = ""


def exit_file(directory: Path) -> Path:
    return directory / "exit"


def conmon_pidfile(directory: Path) -> Path:
    return directory / "conmon.pid"


class ConmonExec:
    def __init__(self, runtime: OCIRuntime, path: str | None = None) -> None:
        self.path = path or shutil.which("conmon") or "/usr/bin/conmon"
        self.runtime = runtime

    def argv(self, req: ExecRequest) -> list[str]:
        d = req.directory
        argv = [
            self.path,
            "--api-version", "1",
            "-c", req.cid,
            "-u", req.session_id,
            "-r", self.runtime.path,
            "-b", str(d),
            "-p", str(d / "pid"),
            "-P", str(conmon_pidfile(d)),
            # The caller's socket carries the output; no log of it is kept.
            "-l", "none:",
            "--exit-dir", str(d),
            "--persist-dir", str(d),
            "--socket-dir-path", str(req.socket_dir),
            "--exec",
            "--exec-process-spec", str(d / "process.json"),
            "--exec-attach",
            "--log-level", "error",
        ]
        for arg in self.runtime.global_args:
            argv += ["--runtime-arg", arg]
        if req.process.get("terminal"):
            argv.append("-t")
        if req.stdin:
            argv.append("-i")
        return argv

    async def launch(self, req: ExecRequest) -> ExecLaunched:
        (req.directory / "process.json").write_text(json.dumps(req.process))
        # In the runtime's queue, as a container's conmon is: it runs `runtime exec`.
        async with self.runtime.spawner.slot():
            return await self._launch(req)

    async def _launch(self, req: ExecRequest) -> ExecLaunched:
        d = req.directory
        # Close-on-exec here; spawn() makes them inheritable in the child alone.
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        start_r, start_w = os.pipe2(os.O_CLOEXEC)
        attach_r, attach_w = os.pipe2(os.O_CLOEXEC)
        theirs = (sync_w, start_r, attach_w)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "_OCI_SYNCPIPE": str(sync_w), "_OCI_STARTPIPE": str(start_r),
               "_OCI_ATTACHPIPE": str(attach_w)}
        ours = [sync_r, start_w, attach_r]
        conn: socket.socket | None = None
        try:
            try:
                # cwd: conmon drops an "oom" file there
                child = spawn(self.argv(req), env=env, pass_fds=theirs, capture_stdout=False,
                              cwd=d, new_session=True)
            finally:
                for fd in theirs:
                    os.close(fd)
            timeout = self.runtime.timeout
            try:
                async with asyncio.timeout(timeout):
                    os.write(start_w, b"0")  # 1: may fork away now
                    try:
                        done = await child.communicate()
                    finally:
                        child.close()
                    ready = await _read_sync_report(attach_r)  # 2: the socket listens
                    if ready is None:
                        message = done.stderr.decode(errors="replace").strip()
                        raise RuntimeFailed(f"conmon failed before exec: {message or '?'}")
                    conn = await oci_attach.connect(d)
                    os.write(start_w, b"0")  # 3: run the runtime's exec
                    report = await _read_sync_report(sync_r)  # 4
            except TimeoutError:  # (an OSError too: first)
                # conmon forked away into a session of its own; the launcher led another
                self.kill_conmon(d)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                raise RuntimeFailed(f"conmon did not report within {timeout:.0f} s") from None
            except OSError as err:  # EPIPE: conmon went away mid-handshake
                self.kill_conmon(d)
                raise RuntimeFailed(f"conmon failed during exec's handshake: {err}") from None
            pid = int((report or {}).get("data", -1))
            conmon_pid = _read_pid(conmon_pidfile(d))
            if pid <= 0:
                if conn is not None:
                    conn.close()
                message = (report or {}).get("message") or "no output"
                return ExecLaunched(0, conmon_pid, None, failure=str(message).strip())
            return ExecLaunched(pid, conmon_pid, conn)
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        finally:
            for fd in ours:
                os.close(fd)

    # after the launch

    def is_alive(self, conmon_pid: int) -> bool:
        return is_live_conmon(conmon_pid)

    def read_exit(self, directory: Path) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(exit_file(directory).read_text().strip())
        return None

    def resize(self, directory: Path, rows: int, cols: int) -> None:
        oci_attach.resize_terminal(directory, rows, cols)

    def signal(self, pid: int, conmon_pid: int, sig: int) -> bool:
        """Signal the exec'd process while its conmon lives (so ``pid`` is still
        that process, not a PID reused since); False if it is gone."""
        if not is_live_conmon(conmon_pid):
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    def kill_conmon(self, directory: Path) -> None:
        """SIGKILL the session's conmon (it may hang in a runtime that hangs)."""
        pid = _read_pid(conmon_pidfile(directory))
        if is_live_conmon(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _read_pid(path: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return 0
