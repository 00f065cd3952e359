"""The user namespace a user's own daemon lives in, kept by a pause process.

An unprivileged user's daemon cannot chown image files or mount overlays. In a
user namespace mapped from the user's subordinate ids (newuidmap/newgidmap,
as podman does) it is root for those ids and may mount in a mount namespace of
its own. Containers, their conmons and every later daemon must share that one
namespace pair: after a crash a new daemon has to see the old one's mounts and
signal its containers. So, like podman's pause process, a tiny process that
does nothing holds the namespaces and records its pid; a daemon joins it with
setns(2), or makes it when there is none. If the pause process was killed,
a running container's conmon still holds the namespaces and is joined instead.

setns(CLONE_NEWUSER) works only in a single-threaded process: ``enter`` runs
first thing in the daemon's main(), before asyncio or any thread.
"""

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import pwd
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyctrd.rootless.subids import SUBGID, SUBUID, IdRange, NoSubordinateIds, largest

log = logging.getLogger("pyctrd.rootless")

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_REC = 0x4000
MS_SLAVE = 1 << 19

PAUSE_NAME = b"pyctrd-pause"  # argv[0] of the pause process: how we know it again
PAUSE_PID_FILE = "pause.pid"
PAUSE_LOCK_FILE = "pause.lock"
PAUSE_PROGRAM = "/bin/sleep"

_libc = ctypes.CDLL(None, use_errno=True)


class RootlessError(Exception):
    """The user namespace cannot be set up; the message says what to fix."""


@dataclass(frozen=True)
class Namespace:
    """What the daemon joined: for logs and for the adapters that need the ids."""
    pause_pid: int
    uid: int  # the user's uid outside, mapped to 0 inside
    gid: int
    uids: IdRange  # mapped to 1.. inside
    gids: IdRange
    created: bool  # made now rather than joined


def in_user_namespace() -> bool:
    """True inside a user namespace other than the initial one."""
    try:
        first = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return first[:3] != ["0", "0", "4294967295"]


def check_prerequisites(uid: int) -> tuple[str, IdRange, IdRange, str, str]:
    """The user's name, ranges and the two helpers, or one error naming all fixes."""
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise RootlessError(f"uid {uid} has no entry in the user database; "
                            "subordinate ids are granted by user name") from None
    problems = []
    try:
        uids = largest(SUBUID, user, uid)
        gids = largest(SUBGID, user, uid)
    except NoSubordinateIds as err:
        problems.append(str(err))
    newuidmap, newgidmap = shutil.which("newuidmap"), shutil.which("newgidmap")
    if not newuidmap or not newgidmap:
        problems.append("newuidmap/newgidmap not found: as root, install Debian's "
                        "'uidmap' package")
    if problems:
        raise RootlessError("a user's own pyctrd needs a user namespace: "
                            + "; ".join(problems))
    assert newuidmap and newgidmap
    return user, uids, gids, newuidmap, newgidmap


def enter(run_root: Path) -> Namespace:
    """Join the user's pause process's namespaces, making them first if need be."""
    if threading.active_count() != 1:
        raise RootlessError("internal: the user namespace must be joined before any thread starts")
    uid, gid = os.getuid(), os.getgid()
    user, uids, gids, newuidmap, newgidmap = check_prerequisites(uid)
    run_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Two daemons starting at once must not make two namespaces.
    with open(run_root / PAUSE_LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pid_file = run_root / PAUSE_PID_FILE
        found = _find_holder(pid_file, run_root, uid)
        created = found is None
        if found is None:
            pause_pid = _make_pause(uid, gid, uids, gids, newuidmap, newgidmap)
            holder = _open_proc(pause_pid)
            if holder is None:
                raise RootlessError("the pause process ended at once")
            is_pause = True
        else:
            holder, pause_pid, is_pause = found
        try:
            _join(holder)
        finally:
            os.close(holder)
        if not is_pause:
            # joined through a container's conmon: a new pause keeps the namespaces
            log.info("the pause process was gone; joined a conmon's namespaces")
            pause_pid = _spawn_pause_here()
        if created or not is_pause:
            _write_pid(pid_file, pause_pid)
    log.debug("in user namespace of pause process %d (%s: uids %d+%d, gids %d+%d)",
              pause_pid, user, uids.start, uids.count, gids.start, gids.count)
    return Namespace(pause_pid, uid, gid, uids, gids, created)


def _find_holder(pid_file: Path, run_root: Path, uid: int
                 ) -> tuple[int, int, bool] | None:
    """A /proc/PID dir fd of a live process holding our namespaces, if any, its
    pid, and whether it is the pause process (rather than a container's conmon)."""
    for pid, name in _candidates(pid_file, run_root):
        fd = _open_proc(pid)
        if fd is None:
            continue
        if _is_ours(fd, uid, name):
            return fd, pid, name == PAUSE_NAME
        os.close(fd)
    return None


def _candidates(pid_file: Path, run_root: Path) -> Iterator[tuple[int, bytes]]:
    """The pause process; then, only if it is gone, the containers' conmons."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        pass
    else:
        yield pid, PAUSE_NAME
    # conmon writes its pid next to each container's bundle (oci/conmon.py)
    for conmon_pid in sorted(run_root.glob("containers/*/conmon.pid")):
        try:
            pid = int(conmon_pid.read_text())
        except (OSError, ValueError):
            continue
        yield pid, b"conmon"


def _open_proc(pid: int) -> int | None:
    try:
        return os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _read_at(dir_fd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _is_ours(proc_fd: int, uid: int, name: bytes) -> bool:
    """The process is ours, has the expected name and maps its root to us.

    Read through one /proc/PID fd, so a recycled pid cannot pass for it; and
    from outside the namespace (inside, owners and maps read differently).
    """
    try:
        if os.fstat(proc_fd).st_uid != uid:
            return False
        argv0 = _read_at(proc_fd, "cmdline").split(b"\0", 1)[0]
        if os.path.basename(argv0) != name:
            return False
        first = _read_at(proc_fd, "uid_map").split()
    except OSError:
        return False
    return first[:2] == [b"0", str(uid).encode()]


def _join(proc_fd: int) -> None:
    user_fd = os.open("ns/user", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)
    mnt_fd = os.open("ns/mnt", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)
    try:
        _setns(user_fd, CLONE_NEWUSER)
        _setns(mnt_fd, CLONE_NEWNS)
    finally:
        os.close(user_fd)
        os.close(mnt_fd)
    # supplementary groups from outside show as the overflow gid inside
    with contextlib.suppress(OSError):
        os.setgroups([])


def _make_pause(uid: int, gid: int, uids: IdRange, gids: IdRange,
                newuidmap: str, newgidmap: str) -> int:
    """Fork a child into new user and mount namespaces, map it, let it pause."""
    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its outcome is checked by the parent
        status = 1
        try:
            os.close(to_parent_r)
            os.close(to_child_w)
            os.setsid()
            _unshare(CLONE_NEWUSER)
            os.write(to_parent_w, b"u")
            if os.read(to_child_r, 1) == b"m":
                _unshare(CLONE_NEWNS)
                # host mounts still reach us; ours never leave
                _mount(b"none", b"/", MS_REC | MS_SLAVE)
                os.write(to_parent_w, b"r")
                _become_pause()
        except BaseException:
            pass
        os._exit(status)
    os.close(to_parent_w)
    os.close(to_child_r)
    try:
        if os.read(to_parent_r, 1) != b"u":
            raise RootlessError("could not create a user namespace (is "
                                "kernel.unprivileged_userns_clone or user.max_user_namespaces 0?)")
        for helper, outer, sub in ((newuidmap, uid, uids), (newgidmap, gid, gids)):
            done = subprocess.run(
                [helper, str(pid), "0", str(outer), "1", "1", str(sub.start), str(sub.count)],
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RootlessError(f"{os.path.basename(helper)} failed: "
                                    f"{done.stderr.strip() or done.returncode}")
        os.write(to_child_w, b"m")
        if os.read(to_parent_r, 1) != b"r":
            raise RootlessError("could not create a mount namespace in the user namespace")
    except BaseException:
        _reap(pid, kill=True)
        raise
    finally:
        os.close(to_parent_r)
        os.close(to_child_w)
    return pid


def _spawn_pause_here() -> int:
    """A pause process in the namespaces this process is already in."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        try:
            os.setsid()
            _become_pause()
        finally:
            os._exit(1)
    return pid


def _become_pause() -> None:
    """Exec a program that sleeps forever, deaf to the signals of a logout."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)  # ignored dispositions survive exec
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.chdir("/")
    os.execv(PAUSE_PROGRAM, [PAUSE_NAME.decode(), "infinity"])


def _reap(pid: int, kill: bool) -> None:
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _write_pid(path: Path, pid: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)


def _unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def _setns(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        if err == errno.EINVAL and nstype == CLONE_NEWUSER:
            raise RootlessError("cannot join the user namespace: the daemon is not "
                                "single-threaded or already in it")
        raise OSError(err, f"setns: {os.strerror(err)}")


def _mount(source: bytes, target: bytes, flags: int) -> None:
    if _libc.mount(source, target, None, ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount --make-rslave /: {os.strerror(err)}")
