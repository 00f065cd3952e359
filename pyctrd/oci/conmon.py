"""Launching conmon, each container's monitor and parent.

conmon runs ``runtime create`` for us, then stays as the container's parent:
it holds stdio, writes the log and the exit file, and outlives the daemon.
We hand it a sync pipe so that launching returns only once the runtime has
created the container (or failed, with its message).
"""

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyctrd.errors import RuntimeFailed
from pyctrd.oci.exitwatch import ExitWatch
from pyctrd.oci.runtime import OCIRuntime
from pyctrd.oci.spawn import spawn


@dataclass(frozen=True)
class ConmonRequest:
    cid: str
    name: str
    bundle: Path
    log_path: Path
    exit_dir: Path
    socket_dir: Path
    terminal: bool = False
    stdin: bool = False
    log_size_max: int = -1


@dataclass(frozen=True)
class Launched:
    pid: int
    conmon_pid: int


def pidfile(bundle: Path) -> Path:
    return bundle / "pidfile"


def conmon_pidfile(bundle: Path) -> Path:
    return bundle / "conmon.pid"


def oom_file(bundle: Path) -> Path:
    """conmon creates this in its persist dir when the kernel OOM-killed the container."""
    return bundle / "oom"


class Conmon:
    def __init__(self, runtime: OCIRuntime, path: str | None = None) -> None:
        found = path or shutil.which("conmon") or "/usr/bin/conmon"
        self.path = found
        self.runtime = runtime

    def argv(self, req: ConmonRequest) -> list[str]:
        argv = [
            self.path,
            "--api-version", "1",
            "-c", req.cid,
            "-u", req.cid,
            "-n", req.name,
            "-r", self.runtime.path,
            "-b", str(req.bundle),
            "-p", str(pidfile(req.bundle)),
            "-P", str(conmon_pidfile(req.bundle)),
            "-l", f"k8s-file:{req.log_path}",
            "--exit-dir", str(req.exit_dir),
            "--socket-dir-path", str(req.socket_dir),
            "--persist-dir", str(req.bundle),
            "--log-level", "error",
        ]
        for arg in self.runtime.global_args:
            argv += ["--runtime-arg", arg]
        if req.terminal:
            argv.append("-t")
        if req.stdin:
            argv.append("-i")
            if req.terminal:
                # A shell outlives its clients: without this conmon closes stdin when
                # the first one detaches and nothing typed after a re-attach arrives.
                # A plain stdin is a pipe: the client's end of input must reach the
                # command (`echo x | pyctr run -i busybox cat`), as with docker's
                # StdinOnce.
                argv.append("--leave-stdin-open")
        if req.log_size_max > 0:
            argv += ["--log-size-max", str(req.log_size_max)]
        return argv

    async def launch(self, req: ConmonRequest) -> Launched:
        """Start conmon and return once the runtime has created the container."""
        # In the runtime's queue: conmon runs `runtime create` for us.
        async with self.runtime.spawner.slot():
            return await self._launch(req)

    async def _launch(self, req: ConmonRequest) -> Launched:
        # Close-on-exec here; spawn() makes it inheritable in the child alone.
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "_OCI_SYNCPIPE": str(write_end)}
        try:
            child = spawn(
                self.argv(req), env=env, pass_fds=(write_end,), capture_stdout=False,
                # conmon also drops an "oom" file into its cwd (for CRI-O); keep it in
                # the bundle.
                cwd=req.bundle, new_session=True)
        except BaseException:
            os.close(read_end)  # not started (EMFILE for its pipes, say): leak nothing
            raise
        finally:
            os.close(write_end)
        timeout = self.runtime.timeout
        try:
            report = await asyncio.wait_for(_read_sync_report(read_end), timeout)
        except TimeoutError:
            # The daemonized conmon leads a session of its own, where the hung
            # runtime runs too; the process we started leads the first one.
            _kill_session_of(req.cid, conmon_pidfile(req.bundle))
            child.killpg()
            await child.wait()
            child.close()
            raise RuntimeFailed(f"conmon did not report within {timeout:.0f} s") from None
        finally:
            os.close(read_end)
        try:
            done = await child.communicate()
        finally:
            child.close()
        pid = int(report.get("data", -1)) if report else -1
        if pid <= 0:
            message = (report or {}).get("message") or done.stderr.decode(
                errors="replace").strip()
            raise RuntimeFailed(f"creating the container failed: {message or 'no output'}")
        conmon_pid = int(conmon_pidfile(req.bundle).read_text().strip())
        return Launched(pid=pid, conmon_pid=conmon_pid)

    # what a container needs of its monitor after the launch (core.ports.MonitorPort)

    def is_alive(self, conmon_pid: int) -> bool:
        return is_live_conmon(conmon_pid)

    def watch_exit(self, conmon_pid: int, on_exit: Callable[[], None]) -> ExitWatch:
        return ExitWatch(conmon_pid, on_exit)

    def read_exit(self, exit_file: Path) -> tuple[int, int] | None:
        """conmon writes the code as text; the file's mtime is when it did."""
        try:
            code = int(exit_file.read_text().strip())
            return code, exit_file.stat().st_mtime_ns // 1000
        except (OSError, ValueError):
            return None

    def oom_killed(self, bundle: Path) -> bool:
        return oom_file(bundle).exists()

    def clear_exit(self, exit_file: Path, bundle: Path) -> None:
        for path in (exit_file, oom_file(bundle)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def is_live_conmon(pid: int) -> bool:
    """``pid`` is a live conmon (a zombie nobody reaped yet has exited)."""
    if pid <= 0:
        return False
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        comm_end = stat.rindex(")")
        return stat[stat.index("(") + 1:comm_end] == "conmon" and stat[comm_end + 2] != "Z"
    return False


def _kill_session_of(cid: str, pidfile: Path) -> None:
    """SIGKILL container ``cid``'s conmon and everything in its session."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    # the pid file may be an earlier run's, and the PID reused since
    if is_live_conmon(pid) and cid.encode() in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


async def _read_sync_report(fd: int) -> dict[str, Any] | None:
    """Read conmon's first JSON message from the sync pipe (None on EOF)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    buf = b""
    decoder = json.JSONDecoder()
    while True:
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, ready.set_result, None)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return None
        buf += chunk
        try:
            doc, _ = decoder.raw_decode(buf.decode(errors="replace").strip())
        except ValueError:
            continue
        return dict(doc)
