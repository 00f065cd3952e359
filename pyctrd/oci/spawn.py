"""Running the runtime's binaries (runc, crun, conmon) without stalling the loop.

asyncio's subprocesses cost the loop a fork per child and, with the default
child watcher, a thread per child blocked in waitpid: an exit storm of 500
containers meant 500 ``runc delete`` children and 500 threads at once. Here a
child is made with ``posix_spawn`` (glibc's clone(CLONE_VFORK): the loop waits
only for the exec, not for a copy of the daemon's memory), its exit is seen
through a pidfd in the loop (no thread, no SIGCHLD handler), and its output
pipes are read by the loop too. A :class:`Spawner` bounds the runtime work in
flight with a FIFO queue, so that a storm of calls for some containers
delays the others' calls by a queue slot at most, never the loop.
"""

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

# Runtime calls at once. A runc call is ~15 ms of CPU but longer in wall time
# (conmon's create waits on the container's setup, mounts and cgroups): four per
# core keeps the cores busy (measured: 2 per core lost ~15% of the starts/s of
# 4 clients x 8 Starts in flight), and the rest queue in order.
DEFAULT_LIMIT = max(8, 4 * (os.cpu_count() or 1))

# conmon needs its cwd in the bundle; posix_spawn in Python has no chdir action.
ENV = "/usr/bin/env"

_READ_SIZE = 65536


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


class Child:
    """A child made by :func:`spawn`: its pid, its pidfd, its output pipes."""

    def __init__(self, pid: int, pidfd: int, stdout: int | None, stderr: int | None) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._loop = asyncio.get_running_loop()
        self._pidfd: int | None = pidfd
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._loop.add_reader(pidfd, self._reap)
        self._outputs: dict[int, tuple[bytearray, asyncio.Future[bytes]]] = {}
        self.stdout = self._read_all(stdout)
        self.stderr = self._read_all(stderr)

    def _read_all(self, fd: int | None) -> "asyncio.Future[bytes]":
        done: asyncio.Future[bytes] = self._loop.create_future()
        if fd is None:
            done.set_result(b"")
            return done
        os.set_blocking(fd, False)
        self._outputs[fd] = (bytearray(), done)
        self._loop.add_reader(fd, self._on_output, fd)
        return done

    def _on_output(self, fd: int) -> None:
        buf, done = self._outputs[fd]
        try:
            chunk = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            buf += chunk
            return
        self._close_output(fd)
        if not done.done():
            done.set_result(bytes(buf))

    def _close_output(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        os.close(fd)
        del self._outputs[fd]

    def _reap(self) -> None:
        if self._pidfd is None:
            return
        try:
            info = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:  # reaped by someone else (a waitpid(-1) somewhere)
            info = None
            code = 255
        else:
            if info is None:
                return  # spurious wake-up
            code = (info.si_status if info.si_code == os.CLD_EXITED
                    else -info.si_status)
        self._close_pidfd()
        self.returncode = code
        if not self._exited.done():
            self._exited.set_result(code)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def send_signal(self, sig: int) -> None:
        # Through the pidfd: never a recycled pid, even if something else reaped it.
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def killpg(self) -> None:
        """SIGKILL the process group it leads (spawned with ``new_session``)."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    async def communicate(self) -> Completed:
        """Wait for exit and end of output (a daemonizing child's grandchild may hold
        the pipes: those are read until EOF too, as asyncio's communicate does)."""
        code = await self.wait()
        stdout, stderr = await asyncio.gather(asyncio.shield(self.stdout),
                                              asyncio.shield(self.stderr))
        return Completed(code, stdout, stderr)

    def close(self) -> None:
        """Stop watching and release the descriptors (the child is not waited for)."""
        for fd in list(self._outputs):
            _, done = self._outputs[fd]
            self._close_output(fd)
            if not done.done():
                done.set_result(b"")
        self._close_pidfd()


def spawn(argv: Sequence[str], *, env: dict[str, str] | None = None,
          cwd: str | os.PathLike[str] | None = None, pass_fds: Sequence[int] = (),
          capture_stdout: bool = True, capture_stderr: bool = True,
          new_session: bool = False) -> Child:
    """Start ``argv`` with stdin on /dev/null and the chosen outputs piped to us.

    Only ``pass_fds`` are inherited: every descriptor the daemon opens is
    close-on-exec, and each passed one is dup2'ed onto itself in the child
    alone, which clears the flag there (glibc ≥ 2.29) and never in the daemon
    where concurrent spawns would leak it.
    """
    args = [str(a) for a in argv]
    if cwd is not None:
        args = [ENV, f"--chdir={os.fspath(cwd)}", *args]
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    ours: list[int] = []  # parent ends to keep
    theirs: list[int] = []  # child ends to close here after the spawn
    try:
        out_r = err_r = None
        if capture_stdout:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            ours.append(out_r)
            theirs.append(out_w)
            actions.append((os.POSIX_SPAWN_DUP2, out_w, 1))
        else:
            actions.append((os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0))
        if capture_stderr:
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            ours.append(err_r)
            theirs.append(err_w)
            actions.append((os.POSIX_SPAWN_DUP2, err_w, 2))
        else:
            actions.append((os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0))
        for fd in pass_fds:
            actions.append((os.POSIX_SPAWN_DUP2, fd, fd))
        # a bare name ("runc") is looked up in PATH, as subprocess does
        start = os.posix_spawn if "/" in args[0] else os.posix_spawnp
        pid = start(args[0], args, os.environ if env is None else env,
                    file_actions=actions, setsid=new_session, setsigdef=_DEFAULT_SIGNALS)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    try:
        pidfd = os.pidfd_open(pid)
    except BaseException:
        # Our unreaped child: its pid cannot have been recycled.
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for fd in ours:
            os.close(fd)
        raise
    return Child(pid, pidfd, out_r, err_r)


# The daemon ignores or handles some signals; a child starts with the defaults
# (as subprocess does with restore_signals).
_DEFAULT_SIGNALS = tuple(s for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT,
                                     signal.SIGTERM, signal.SIGHUP)
                         if hasattr(signal, s.name))


class Spawner:
    """A bounded FIFO queue of runtime work in flight.

    ``async with spawner.slot():`` around a whole runtime call (spawn, output,
    exit). Waiting for a slot costs the loop nothing; a slot is held only
    while a runtime binary runs for us.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)

    def slot(self) -> asyncio.Semaphore:
        return self._slots

    async def run(self, argv: Sequence[str], *, timeout: float,
                  env: dict[str, str] | None = None) -> Completed:
        """Run ``argv`` in a slot to its end; TimeoutError (after killing it) if it
        takes longer than ``timeout`` s."""
        async with self._slots:
            child = spawn(argv, env=env)
            try:
                return await asyncio.wait_for(child.communicate(), timeout)
            except BaseException:
                child.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(child.wait(), 5)
                raise
            finally:
                child.close()
