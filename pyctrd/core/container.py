"""A container: libpod's state machine over the OCI runtime, conmon and storage.

One asyncio.Lock per container serializes the calls that change it, while
other containers proceed in parallel. conmon's exit is recorded the moment
it is seen, without the lock (it is a plain state update), so a Stop holding
the lock can wait for it.
"""

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pyctrd.core.config import ContainerConfig, now_us
from pyctrd.core.faults import checkpoint
from pyctrd.core.state import ACTIVE, State, require
from pyctrd.database import Database
from pyctrd.errors import NoSuchContainer, RuntimeFailed
from pyctrd.layout import Layout
from pyctrd.oci.conmon import Conmon, ConmonRequest, is_live_conmon, oom_file
from pyctrd.oci.exitwatch import ExitWatch
from pyctrd.oci.runtime import OCIRuntime
from pyctrd.oci.spec import SpecInput, build_spec
from pyctrd.storage import archive, rootfs

log = logging.getLogger(__name__)

KILL_GRACE = 30.0  # after SIGKILL, how long to wait for conmon's report


@dataclass
class ContainerStatus:
    """The mutable part of a container, saved on every transition."""

    state: State = State.CONFIGURED
    pid: int = 0
    conmon_pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    mounted: bool = False
    mountpoint: str = ""
    user_mounted: bool = False
    needs_cleanup: bool = False
    removing: bool = False  # Remove began: a restart finishes it
    started: int = 0
    finished: int = 0

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "ContainerStatus":
        known = {f.name for f in fields(cls)}
        status = cls(**{k: v for k, v in record.items() if k in known})
        status.state = State(status.state)
        return status


class ChangeListener(Protocol):
    def container_changed(self, container: "Container", changes: dict[str, Any]) -> None: ...


@dataclass
class ContainerEnv:
    """What a container needs from the daemon around it."""

    layout: Layout
    store: Database
    oci: OCIRuntime
    conmon: Conmon
    layer_paths: Callable[[str], list[Path]]  # image id → lowerdirs, top first
    listener: ChangeListener
    log_size_max: int = -1


class Container:
    def __init__(self, config: ContainerConfig, status: ContainerStatus,
                 env: ContainerEnv) -> None:
        self.config = config
        self.status = status
        self._env = env
        self.lock = asyncio.Lock()
        self.removed = False
        self._watch: ExitWatch | None = None
        self._exit_waiters: list[asyncio.Future[int]] = []
        self._starting = False
        self._pending_exit: int | None = None
        self._cleanup_task: asyncio.Task[None] | None = None

    # identity

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def state(self) -> State:
        return self.status.state

    @property
    def paths(self) -> rootfs.RootfsPaths:
        layout = self._env.layout
        return rootfs.RootfsPaths(
            lower=self._env.layer_paths(self.config.image_id),
            container_dir=layout.container_dir(self.id),
            shm_dir=layout.bundle(self.id) / "shm",
        )

    @property
    def bundle(self) -> Path:
        """Per boot: the OCI bundle, conmon's pid files, ctl FIFO and attach socket."""
        return self._env.layout.bundle(self.id)

    @property
    def log_path(self) -> Path:
        return self._env.layout.log_file(self.id)

    # state bookkeeping

    def _update(self, **changes: Any) -> None:
        """Apply, save, then tell listeners: durable before anyone hears of it."""
        changed = {k: v for k, v in changes.items() if getattr(self.status, k) != v}
        if not changed:
            return
        for key, value in changed.items():
            setattr(self.status, key, value)
        if not self.removed:
            self._env.store.save_container_state(self.id, self.status.to_record())
            self._env.listener.container_changed(self, changed)

    def _check(self, operation: str) -> None:
        if self.removed:
            raise NoSuchContainer(f"container {self.name} has been removed")
        require(operation, self.state, self.name)

    # operations

    async def init(self) -> None:
        async with self.lock:
            self._check("Init")
            await self._init()

    async def start(self) -> None:
        async with self.lock:
            self._check("Start")
            if self.state in (State.CONFIGURED, State.EXITED):
                await self._init()
            self._starting = True
            try:
                await self._env.oci.start(self.id)
                checkpoint("start:started")
            except RuntimeFailed:
                await self._abort_start()
                raise
            finally:
                self._starting = False
            self._update(state=State.RUNNING, started=now_us(), exit_code=0, finished=0,
                         oom_killed=False)
            if self._pending_exit is not None:
                code, self._pending_exit = self._pending_exit, None
                self._record_exit(code)

    async def stop(self, timeout: int) -> None:
        async with self.lock:
            self._check("Stop")
            await self._stop(timeout)

    async def kill(self, sig: int) -> None:
        async with self.lock:
            self._check("Kill")
            await self._on_live_process("Kill", self._env.oci.kill(self.id, sig))
            checkpoint("kill:sent")

    async def pause(self) -> None:
        async with self.lock:
            self._check("Pause")
            await self._on_live_process("Pause", self._env.oci.pause(self.id))
            checkpoint("pause:paused")
            # An exit recorded during the call stands: exited is not paused.
            self._check("Pause")
            self._update(state=State.PAUSED)

    async def unpause(self) -> None:
        async with self.lock:
            self._check("Unpause")
            await self._on_live_process("Unpause", self._env.oci.resume(self.id))
            checkpoint("unpause:resumed")
            self._resumed()

    async def mount(self) -> str:
        async with self.lock:
            self._check("Mount")
            mountpoint = self._mount_storage()
            self._update(user_mounted=True)
            return mountpoint

    async def unmount(self) -> None:
        async with self.lock:
            self._check("Unmount")
            self._unmount_storage()
            self._update(user_mounted=False)

    async def export(self, fd: int) -> None:
        async with self.lock:
            self._check("Export")
            was_mounted = self.status.mounted
            mountpoint = Path(self._mount_storage())
            try:
                await asyncio.to_thread(archive.export_tree, mountpoint, fd)
            finally:
                if not was_mounted:
                    self._unmount_storage()

    async def wait(self) -> int:
        while self.state != State.EXITED:
            if self.removed:
                raise NoSuchContainer(f"container {self.name} was removed before it exited")
            waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._exit_waiters.append(waiter)
            try:
                await waiter
            finally:
                # a cancelled waiter (a caller gone) must not pile up until the exit
                with contextlib.suppress(ValueError):
                    self._exit_waiters.remove(waiter)
        return self.status.exit_code

    async def remove(self, force: bool) -> None:
        """Tear down runtime state and storage; the caller drops the object."""
        async with self.lock:
            if self.removed:
                raise NoSuchContainer(f"container {self.name} has been removed")
            if force and self.state in ACTIVE:
                await self._stop(0)
            self._check("Remove")
            self._update(removing=True)
            checkpoint("remove:marked")
            try:
                await self._teardown()
            except Exception:
                # A step failed before destroying anything (runc delete, or storage still
                # mounted): the container stays whole, and a restart must not finish a
                # Remove its caller was told had failed.
                if not self.removed:
                    self._update(removing=False)
                raise

    async def _teardown(self) -> None:
        """Remove's destructive part; each step may be repeated after a crash."""
        if self.status.needs_cleanup or self._runtime_dir().exists():
            # Usually done already, right after the exit: runc delete costs ~7 ms.
            await self._cleanup_runtime()
        checkpoint("remove:runtime-deleted")
        await asyncio.to_thread(rootfs.destroy, self.paths)
        with contextlib.suppress(FileNotFoundError):
            self._env.layout.exit_file(self.id).unlink()
        await asyncio.to_thread(_remove_tree, self._env.layout.bundle(self.id))
        checkpoint("remove:storage-destroyed")
        self._env.store.remove_container(self.id)
        self._forget()

    def _forget(self) -> None:
        self.removed = True
        if self._watch:
            self._watch.cancel()
        for waiter in self._exit_waiters:
            if not waiter.done():
                waiter.set_exception(
                    NoSuchContainer(f"container {self.name} was removed before it exited"))
        self._exit_waiters.clear()

    def inspect(self) -> dict[str, Any]:
        """Everything about the container, shaped like `podman inspect`."""
        cfg, st = self.config, self.status
        bundle = self._env.layout.bundle(self.id)
        paths = self.paths
        return {
            "Id": self.id,
            "Name": self.name,
            "Created": _rfc3339(cfg.created),
            "Path": cfg.command[0],
            "Args": cfg.command[1:],
            "Image": cfg.image_id,
            "ImageName": cfg.image_ref,
            "State": {
                "Status": str(st.state),
                "Running": st.state == State.RUNNING,
                "Paused": st.state == State.PAUSED,
                "Pid": st.pid,
                "ConmonPid": st.conmon_pid,
                "ExitCode": st.exit_code,
                "OOMKilled": st.oom_killed,
                "StartedAt": _rfc3339(st.started),
                "FinishedAt": _rfc3339(st.finished),
            },
            "Config": {
                "Cmd": cfg.command,
                "Env": cfg.env,
                "WorkingDir": cfg.workdir,
                "User": cfg.user,
                "Uid": cfg.uid,
                "Gid": cfg.gid,
                "Hostname": cfg.hostname,
                "Labels": cfg.labels,
                "Annotations": cfg.annotations,
                "StopSignal": cfg.stop_signal,
                "StopTimeout": cfg.stop_timeout,
                "Tty": cfg.terminal,
                "OpenStdin": cfg.stdin,
            },
            "HostConfig": {
                "Memory": cfg.memory_limit,
                "Cpus": cfg.cpu_quota,
                "PidsLimit": cfg.pids_limit,
                "NetworkMode": cfg.network,
                "ReadonlyRootfs": cfg.read_only,
            },
            "Mounts": [{"Source": src, "Destination": dst, "Options": opts.split(",")
                        if opts else []} for src, dst, opts in cfg.mounts],
            "GraphDriver": {
                "Name": "overlay",
                "Data": {"LowerDir": ":".join(str(p) for p in paths.lower),
                         "UpperDir": str(paths.upper), "WorkDir": str(paths.work),
                         "MergedDir": str(paths.merged)},
            },
            "Mounted": st.mounted,
            "Mountpoint": st.mountpoint,
            "LogPath": str(self.log_path),
            "BundlePath": str(bundle),
            "OCIRuntime": self._env.oci.name,
            "OCISpec": _read_json(bundle / "config.json"),
        }

    # recovery after a daemon restart or a reboot

    def needs_recovery(self, mounted: set[str], runtime_ids: set[str]) -> bool:
        """Cheap test, for 10,000 containers at start-up: is there anything to reconcile?"""
        st = self.status
        if (st.removing or st.needs_cleanup or st.mounted or st.user_mounted
                or self.state not in (State.CONFIGURED, State.EXITED)
                or self.id in runtime_ids):
            return True
        layout = self._env.layout
        return (os.path.join(layout.root, "containers", self.id, "merged") in mounted
                or os.path.join(layout.run_root, "containers", self.id, "shm") in mounted)

    async def recover(self, new_boot: bool, mounted: set[str]) -> None:
        """Make the stored state true again; ``mounted`` is the host's mount points."""
        async with self.lock:
            if self.status.removing:
                await self._teardown()
                return
            if new_boot:
                self._forget_last_boot()
            elif self.state in ACTIVE or self.state == State.UNKNOWN:
                await self._readopt()
            elif self.status.needs_cleanup or self._runtime_dir().exists():
                # Killed between runc create and saving, or before cleaning up an exit.
                self._update(needs_cleanup=True)
                await self._cleanup_runtime()
            self._reconcile_mounts(mounted)

    def _runtime_dir(self) -> Path:
        return self._env.layout.runtime_root / self.id

    def _forget_last_boot(self) -> None:
        # Nothing of the last boot runs any more. Its per-boot files are gone
        # already: Engine.recover wipes them all at once before this.
        changes: dict[str, Any] = {"needs_cleanup": False, "pid": 0, "conmon_pid": 0}
        if self.state in ACTIVE or self.state == State.UNKNOWN:
            log.info("container %s: was %s before the reboot; now exited", self.name,
                     self.state)
            changes.update(state=State.EXITED, exit_code=-1, finished=now_us())
        self._update(**changes)

    async def _readopt(self) -> None:
        if not is_live_conmon(self.status.conmon_pid):
            # It exited while the daemon was away: conmon's exit file tells how and when.
            code, finished = self._exit_from_file()
            self._record_exit(code, finished)
            return
        try:
            runtime_state = await self._env.oci.state(self.id)
        except RuntimeFailed as err:
            log.warning("container %s: state unknown: %s", self.name, err)
            self._update(state=State.UNKNOWN)
            self.watch_exit()
            return
        current = _RUNC_STATES.get((runtime_state or {}).get("status", ""))
        if current is not None and runtime_state is not None:
            changes: dict[str, Any] = {"state": current,
                                       "pid": runtime_state.get("pid") or self.status.pid}
            if current != State.CREATED and self.state == State.CREATED:
                # Killed between runc start and saving "running".
                changes.update(started=now_us(), exit_code=0, finished=0, oom_killed=False)
            self._update(**changes)
        # else the process is gone and conmon is about to report it
        self.watch_exit()

    def _exit_from_file(self) -> tuple[int, int]:
        path = self._env.layout.exit_file(self.id)
        try:
            code = int(path.read_text().strip())
            return code, path.stat().st_mtime_ns // 1000
        except (OSError, ValueError):
            log.warning("container %s: its conmon is gone and left no exit file "
                        "(killed, or the runtime state vanished); exit code -1", self.name)
            return -1, 0

    def _reconcile_mounts(self, mounted: set[str]) -> None:
        paths, st = self.paths, self.status
        active = self.state in ACTIVE
        if not active and str(paths.shm_dir) in mounted:
            rootfs.unmount_shm(paths)
        if str(paths.merged) not in mounted:
            if st.mounted or st.user_mounted:
                self._update(mounted=False, mountpoint="", user_mounted=False)
        elif active or st.user_mounted:
            if not st.mounted:
                self._update(mounted=True, mountpoint=str(paths.merged))
        else:
            # Mounted by a call that never answered, or left by a cleanup cut short.
            self._unmount_storage()

    # internals

    async def _init(self) -> None:
        await self._cleanup_if_needed()
        env = self._env
        bundle = env.layout.bundle(self.id)
        bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
        rootfs_path = Path(self._mount_storage())
        paths = self.paths
        rootfs.mount_shm(paths)
        cfg = self.config
        spec = build_spec(SpecInput(
            cid=self.id, rootfs=rootfs_path, args=cfg.command, env=cfg.env, cwd=cfg.workdir,
            uid=cfg.uid, gid=cfg.gid, hostname=cfg.hostname, shm_dir=paths.shm_dir,
            terminal=cfg.terminal, read_only=cfg.read_only,
            network_host=cfg.network == "host", mounts=cfg.mounts,
            memory_limit=cfg.memory_limit, cpu_quota=cfg.cpu_quota,
            pids_limit=cfg.pids_limit, annotations=cfg.annotations,
        ))
        _write_atomic(bundle / "config.json", json.dumps(spec).encode())
        with contextlib.suppress(FileNotFoundError):
            env.layout.exit_file(self.id).unlink()
        with contextlib.suppress(FileNotFoundError):
            oom_file(bundle).unlink()
        try:
            launched = await env.conmon.launch(ConmonRequest(
                cid=self.id, name=self.name, bundle=bundle, log_path=self.log_path,
                exit_dir=env.layout.exits, socket_dir=env.layout.sockets,
                terminal=cfg.terminal, stdin=cfg.stdin, log_size_max=env.log_size_max,
            ))
        except RuntimeFailed:
            await env.oci.delete(self.id)
            rootfs.unmount_shm(paths)
            if not self.status.user_mounted:
                self._unmount_storage()
            raise
        checkpoint("init:launched")
        self._update(state=State.CREATED, pid=launched.pid, conmon_pid=launched.conmon_pid,
                     needs_cleanup=True)
        self.watch_exit()

    def watch_exit(self) -> None:
        """Arm the exit watch on this container's conmon."""
        if self._watch:
            self._watch.cancel()
        self._watch = ExitWatch(self.status.conmon_pid, self._on_conmon_exit)

    def _on_conmon_exit(self) -> None:
        self._watch = None
        # Seen now: our clock is finer than the exit file's coarse mtime.
        code, _ = self._exit_from_file()
        if self._starting:
            self._pending_exit = code
            return
        if self.state in ACTIVE or self.state == State.UNKNOWN:
            self._record_exit(code)

    def _record_exit(self, code: int, finished: int = 0) -> None:
        oom = oom_file(self._env.layout.bundle(self.id)).exists()
        # An exit racing Start may predate the StartedTimestamp taken after runc start.
        finished = max(finished or now_us(), self.status.started)
        self._update(state=State.EXITED, exit_code=code, pid=0, conmon_pid=0,
                     finished=finished, oom_killed=oom)
        for waiter in self._exit_waiters:
            if not waiter.done():
                waiter.set_result(code)
        self._exit_waiters.clear()
        self.schedule_cleanup()

    def schedule_cleanup(self) -> None:
        """Release runtime state and storage soon, once the lock is free."""
        if self._cleanup_task is None or self._cleanup_task.done():
            self._cleanup_task = asyncio.get_running_loop().create_task(self._cleanup_later())

    async def _cleanup_later(self) -> None:
        async with self.lock:
            if self.removed:
                return
            try:
                await self._cleanup_if_needed()
            except Exception:
                log.exception("container %s: cleanup after exit failed", self.name)

    async def _cleanup_if_needed(self) -> None:
        if self.status.needs_cleanup and self.state not in ACTIVE:
            await self._cleanup_runtime()

    async def _cleanup_runtime(self) -> None:
        """After an exit: forget the runtime container; release storage not held by Mount."""
        await self._env.oci.delete(self.id)
        checkpoint("cleanup:deleted")
        rootfs.unmount_shm(self.paths)
        if not self.status.user_mounted:
            self._unmount_storage()
        self._update(needs_cleanup=False)

    async def _abort_start(self) -> None:
        # No longer starting: an exit is recorded the moment conmon reports it (while
        # starting it would only be set aside, and the wait below would never end).
        self._starting = False
        code, self._pending_exit = self._pending_exit, None
        if code is not None and self.state in ACTIVE:
            self._record_exit(code)
        with contextlib.suppress(RuntimeFailed):
            await self._env.oci.kill(self.id, signal.SIGKILL)
        if self.state in ACTIVE:
            await self._wait_exit(KILL_GRACE)
        await self._cleanup_if_needed()

    async def _stop(self, timeout: int) -> None:
        oci = self._env.oci
        if self.state == State.PAUSED:
            await oci.resume(self.id)
            self._resumed()
        if timeout > 0:
            try:
                await oci.kill(self.id, self.config.stop_signal)
            except RuntimeFailed:
                if not await self._exited_meanwhile():
                    raise
            checkpoint("stop:signalled")
            if self.state in ACTIVE:
                await self._wait_exit(timeout)
        if self.state in ACTIVE:
            try:
                await oci.kill(self.id, signal.SIGKILL, all_processes=True)
            except RuntimeFailed:
                if self.state in ACTIVE:
                    raise
            if self.state in ACTIVE and not await self._wait_exit(KILL_GRACE):
                raise RuntimeFailed(f"container {self.name} did not exit after SIGKILL")
        await self._cleanup_if_needed()

    def _resumed(self) -> None:
        # Thawed, it may exit at once (a signal sent while frozen), and that exit may be
        # recorded before runc resume returns: it must not be overwritten with "running".
        if self.state == State.PAUSED:
            self._update(state=State.RUNNING)

    async def _on_live_process(self, operation: str, call: Awaitable[None]) -> None:
        """A runtime call that needs the process alive: if it died just before (conmon has
        not reported yet), the caller is told the state it finds, as if it came later."""
        try:
            await call
        except RuntimeFailed:
            if await self._exited_meanwhile():
                self._check(operation)
            raise

    async def _exited_meanwhile(self) -> bool:
        """After a failed runtime call: has the process exited? Then wait for its record."""
        if self.state in ACTIVE:
            try:
                runtime_state = await self._env.oci.state(self.id)
            except RuntimeFailed:
                return False
            if (runtime_state or {}).get("status") not in (None, "stopped"):
                return False
            if self.state in ACTIVE:  # the report may have come while runc answered
                await self._wait_exit(KILL_GRACE)
        return self.state not in ACTIVE

    async def _wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the exit to be recorded; False on timeout."""
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exit_waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
            return True
        except TimeoutError:
            # else removal sets an exception on it that nobody retrieves (logged as an error)
            with contextlib.suppress(ValueError):  # unless an exit or removal took it
                self._exit_waiters.remove(waiter)
            return False

    def _mount_storage(self) -> str:
        mountpoint = str(rootfs.mount_rootfs(self.paths))
        checkpoint("storage:mounted")
        self._update(mounted=True, mountpoint=mountpoint)
        return mountpoint

    def _unmount_storage(self) -> None:
        rootfs.unmount_rootfs(self.paths)
        checkpoint("storage:unmounted")
        self._update(mounted=False, mountpoint="")


_RUNC_STATES = {"created": State.CREATED, "running": State.RUNNING, "paused": State.PAUSED}


def _rfc3339(us: int) -> str:
    if not us:
        return ""
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
