"""What ``runc state``, ``runc start`` and ``runc delete`` do, on runc's own files.

runc keeps each container's truth in ``<root>/<id>/state.json`` (the init
process's pid and start time, the cgroup paths, the hooks) and an
``exec.fifo`` while the container is created but not started. ``runc
state`` derives the status from those and /proc (runc 1.1,
libcontainer/container_linux.go refreshState/runType):

- paused:   the freezer cgroup is frozen (checked first);
- stopped:  the init pid is gone, a zombie, or its start time differs (reused);
- created:  alive and exec.fifo still there;
- running:  alive otherwise.

``runc delete --force`` of a stopped container removes its cgroup
directories (deepest first) and its state directory, and runs poststop
hooks. Doing that in-process saves a fork+exec of a Go binary (~15 ms of
CPU) per exit: in an exit storm that was most of the loop's time. Anything
this module is not sure of (another layout, hooks, an init sharing the
host's pid namespace whose leftovers runc would kill, a busy cgroup) is
answered with None/False and the caller runs runc as before.

``runc start`` of a created container opens its ``exec.fifo`` for reading:
runc's init, blocked opening the other end, writes "0" and closes it as it
execs the command; runc reads to the end and removes the fifo (runc 1.1,
container_linux.go exec/handleFifoResult). The daemon does the same (oci/
runtime.py), saving a Go process (~4 ms) per Start; this module opens the
fifo only for a container that is created and has no hooks.
"""

import contextlib
import errno
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"


class Unsure(Exception):
    """The files do not tell for sure: ask runc."""


def load(container_dir: Path) -> dict[str, Any] | None:
    """runc's state.json, None if runc does not know the container."""
    try:
        data = (container_dir / STATE_FILE).read_bytes()
    except FileNotFoundError:
        if container_dir.exists():
            raise Unsure(f"{container_dir} has no {STATE_FILE}") from None
        return None  # runc: "container does not exist"
    except OSError as err:
        raise Unsure(str(err)) from None
    try:
        state = json.loads(data)
    except ValueError:
        raise Unsure(f"{container_dir / STATE_FILE} is not JSON") from None
    if not isinstance(state, dict) or not isinstance(state.get("init_process_pid"), int):
        raise Unsure(f"{container_dir / STATE_FILE} is not runc's")
    return state


# runc writes state.json compactly: a key is preceded by "{" or "," (inside a JSON
# string a quote is always escaped, so never so preceded). Its config is most of
# the file (the seccomp profile alone tens of kB) and decoding it all holds the
# GIL for a millisecond: only the values asked for are decoded, where they stand.
STATUS_KEYS = ("init_process_pid", "init_process_start", "cgroup_paths")
# for start: hooks are runc's business
START_KEYS = (*STATUS_KEYS, "Hooks")
# the config's, for delete (each key occurs once in runc's state.json)
DELETE_KEYS = (*STATUS_KEYS, "intel_rdt_path", "Hooks", "namespaces")
_DECODER = json.JSONDecoder()
_KEY = {key: re.compile('[{,]"' + re.escape(key) + '":') for key in DELETE_KEYS}


def load_brief(container_dir: Path, keys: tuple[str, ...] = STATUS_KEYS
               ) -> dict[str, Any] | None:
    """The values of ``keys`` in state.json (top-level, or the config's), decoded
    where they stand; None if runc does not know the container. Raises Unsure."""
    try:
        text = (container_dir / STATE_FILE).read_bytes().decode()
    except FileNotFoundError:
        return _flat(load(container_dir), keys)  # tells absent from unsure
    except (OSError, UnicodeDecodeError) as err:
        raise Unsure(str(err)) from None
    found: dict[str, Any] = {}
    for key in keys:
        match = _KEY[key].search(text)
        if match is None:
            return _flat(load(container_dir), keys)
        try:
            found[key], _ = _DECODER.raw_decode(text, match.end())
        except ValueError:
            return _flat(load(container_dir), keys)
    if not isinstance(found.get("init_process_pid"), int):
        raise Unsure(f"{container_dir / STATE_FILE} is not runc's")
    return found


def _flat(state: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """``keys`` of a fully decoded state.json, the config's beside the top level's."""
    if state is None:
        return None
    config = state.get("config") or {}
    return {key: state[key] if key in state else config.get(key) for key in keys}


def _proc_start_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # after "pid (comm) ": state is field 3, starttime field 22
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19]), fields[0]


def _is_frozen(cgroup_paths: dict[str, str]) -> bool:
    if "freezer" in cgroup_paths:  # cgroup v1, or hybrid (runc uses the v1 freezer)
        try:
            return Path(cgroup_paths["freezer"], "freezer.state").read_text().strip() == "FROZEN"
        except FileNotFoundError:
            return False
    unified = cgroup_paths.get("")
    if unified:
        try:
            return Path(unified, "cgroup.freeze").read_text().strip() == "1"
        except FileNotFoundError:
            return False
    return False


def status(container_dir: Path, state: dict[str, Any]) -> str:
    """runc's status of a container whose state.json is ``state``."""
    if _is_frozen(state.get("cgroup_paths") or {}):
        return "paused"
    pid = state["init_process_pid"]
    found = _proc_start_and_state(pid) if pid > 0 else None
    if found is None:
        return "stopped"
    start, proc_state = found
    if start != state.get("init_process_start") or proc_state in ("Z", "X"):
        return "stopped"
    if (container_dir / EXEC_FIFO).exists():
        return "created"
    return "running"


def read_state(root: Path, cid: str) -> dict[str, Any] | None:
    """What ``runc state`` says (id, pid, status), or None if runc does not know
    ``cid``. Raises Unsure."""
    container_dir = root / cid
    state = load_brief(container_dir)
    if state is None:
        return None
    current = status(container_dir, state)
    return {"id": cid, "status": current,
            "pid": state["init_process_pid"] if current != "stopped" else 0}


def open_exec_fifo(root: Path, cid: str) -> tuple[int, int] | None:
    """For ``runc start`` done in-process: (the exec fifo opened for reading without
    blocking, a pidfd of the init) if ``cid`` is created and runc would do nothing
    else; None: let runc start it (and give its own errors). Nothing is opened for
    the fifo until all is checked: opening it lets the init go."""
    container_dir = root / cid
    try:
        state = load_brief(container_dir, START_KEYS)
    except Unsure:
        return None
    if state is None or _has_hooks(state):
        return None
    try:
        pidfd = os.pidfd_open(int(state["init_process_pid"]))
    except OSError:  # gone (runc says so), or no pidfds here (ENOSYS): runc starts it
        return None
    try:
        # After the pidfd: the pid is still the init's (its start time), so the
        # pidfd is the init's, not a process that took the pid since.
        if status(container_dir, state) != "created":
            raise Unsure("not created")
        fd = os.open(container_dir / EXEC_FIFO, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (Unsure, OSError):
        os.close(pidfd)
        return None
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        os.close(pidfd)
        return None
    return fd, pidfd


def remove_exec_fifo(root: Path, cid: str) -> None:
    """Once read: without its fifo, runc sees the container as running."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(root / cid / EXEC_FIFO)


def delete_stopped(root: Path, cid: str) -> bool:
    """Do what ``runc delete --force`` does for a stopped container. True when done
    (or when runc does not know ``cid``); False when runc must do it."""
    container_dir = root / cid
    try:
        state = load_brief(container_dir, DELETE_KEYS)
        if state is None:
            return True
        if status(container_dir, state) != "stopped" or not _safe_to_delete(state):
            return False
    except Unsure:
        return False
    for path in (state.get("cgroup_paths") or {}).values():
        if not _remove_cgroup(Path(path)):
            return False  # tasks still there (exiting): runc retries and reports
    shutil.rmtree(container_dir, ignore_errors=True)
    return not container_dir.exists()


def _has_hooks(state: dict[str, Any]) -> bool:
    """runc runs them (poststop at delete; startContainer's at start): we do not."""
    return any((state.get("Hooks") or {}).values())


def _safe_to_delete(state: dict[str, Any]) -> bool:
    if _has_hooks(state):
        return False
    if state.get("intel_rdt_path"):
        return False
    namespaces = state.get("namespaces") or []
    own_pid_ns = any(ns.get("type") == "NEWPID" and not ns.get("path") for ns in namespaces)
    # Without a pid namespace of its own, processes may outlive init: runc kills them.
    return own_pid_ns


def _remove_cgroup(path: Path) -> bool:
    """rmdir a cgroup and its children, deepest first (only empty ones go)."""
    if not path.is_absolute() or not str(path).startswith("/sys/fs/cgroup/"):
        return False
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError as err:
        if err.errno != errno.EBUSY:
            return False
    # Busy: children first (a nested manager inside the container made some).
    with contextlib.suppress(FileNotFoundError):
        for dirpath, dirnames, _ in os.walk(path, topdown=False):
            for name in dirnames:
                with contextlib.suppress(FileNotFoundError):
                    try:
                        os.rmdir(os.path.join(dirpath, name))
                    except OSError:
                        return False
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True
