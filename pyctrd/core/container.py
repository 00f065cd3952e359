"""A container: libpod's state machine over the OCI runtime, the monitor and storage.

One asyncio.Lock per container serializes the calls that change it, while
other containers proceed in parallel. The lock is never held while waiting
for an exit: Stop sends its signal under the lock, lets go of it for the
grace period (so that Kill or Remove(force) act at once meanwhile), and
re-checks the state under the lock before sending SIGKILL. The monitor's
report of an exit is recorded the moment it is seen, without the lock (it is
a plain state update).

Recovery after a restart (core/recovery.py) and the podman-style Inspect
output (core/inspect.py) live beside this; they change a container only
through the methods under "for recovery" below.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from pyctrd import teardown
from pyctrd.core import inspect as inspect_output
from pyctrd.core.cgroupoptions import refuse_cgroup_call
from pyctrd.core.config import ContainerConfig, now_us, shared
from pyctrd.core.faults import checkpoint
from pyctrd.core.guarded import failing_as
from pyctrd.core.networks import MODE_PASTA, Attachment, Networks
from pyctrd.core.pastanet import PastaNetworks
from pyctrd.core.ports import (
    ConmonRequest,
    ExitWatchHandle,
    MonitorPort,
    OCIRuntimePort,
    RootfsPort,
)
from pyctrd.core.state import ACTIVE, WITH_PID, State, require
from pyctrd.database import Database
from pyctrd.errors import Failed, InvalidState, NoSuchContainer, RuntimeFailed, StorageFailed
from pyctrd.layout import Layout
from pyctrd.oci.spec import SpecInput, build_spec
from pyctrd.pacing import pacer
from pyctrd.storage import archive
from pyctrd.storage.rootfs import RootfsPaths
from pyctrd.storage.trees import remove_quietly

log = logging.getLogger(__name__)

KILL_GRACE = 30.0  # after SIGKILL, how long to wait for the monitor's report
# How long a monitor may take to report an exit the runtime already shows.
EXIT_REPORT_GRACE = 0.5


@dataclass(slots=True)
class ContainerStatus:
    """The mutable part of a container, saved on every transition."""

    state: State = State.CONFIGURED
    pid: int = 0  # shown: init_pid while running or paused, else 0 (kept so by Container)
    init_pid: int = 0  # the runtime's init process, from create until the exit
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
    # Restart policy (core/restart.py): a caller's Stop/Kill (or a reboot) ended the last
    # run: no failure (unless-stopped remembers it across reboots); restarts since a caller's
    # Start; consecutive quick restarts (the back-off's exponent); when the next
    # restart is due (µs since the epoch, 0: none), so a daemon restart carries on.
    stopped_by_user: bool = False
    restart_count: int = 0
    restart_streak: int = 0
    restart_at: int = 0
    # Health checks (core/health.py): "" (no check), starting, healthy, unhealthy;
    # consecutive failures; the last results as Inspect shows them.
    health: str = ""
    health_failures: int = 0
    health_log: list[dict[str, Any]] = field(default_factory=list)
    # Networks (core/networks.py): the names it is on; while set up, its namespace,
    # its address on each network and the ports published (host_port filled in).
    networks: list[str] = field(default_factory=list)
    netns: str = ""
    addresses: dict[str, str] = field(default_factory=dict)
    published: list[list[Any]] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        # Not asdict(): its deep copies were most of a status write's cost, and the
        # record is serialised at once (Database.save_container_state).
        return {name: getattr(self, name) for name in _STATUS_FIELD_NAMES}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "ContainerStatus":
        known = _STATUS_FIELDS
        values: dict[str, Any] = {k: (shared(v) if type(v) is not int else v)
                                  for k, v in record.items() if k in known}
        status = cls(**values)
        status.state = State(status.state)
        if "init_pid" not in record:
            # Saved before init_pid existed: pid was runc's init PID in every state.
            status.init_pid = status.pid
        status.pid = shown_pid(status.state, status.init_pid)
        return status


_STATUS_FIELD_NAMES = tuple(f.name for f in fields(ContainerStatus))
_STATUS_FIELDS = frozenset(_STATUS_FIELD_NAMES)


def shown_pid(state: State, init_pid: int) -> int:
    return init_pid if state in WITH_PID else 0


class ChangeListener(Protocol):
    def container_changed(self, container: "Container", changes: dict[str, Any]) -> None: ...


@dataclass
class ContainerEnv:
    """What a container needs from the daemon around it."""

    layout: Layout
    store: Database
    oci: OCIRuntimePort
    monitor: MonitorPort
    storage: RootfsPort
    layer_paths: Callable[[str], list[Path]]  # image id → lowerdirs, top first
    listener: ChangeListener
    log_size_max: int = -1
    networks: Networks | None = None  # None: bridge networks are unavailable
    rootless: bool = False  # a user's own daemon, in its user namespace
    pasta: PastaNetworks | None = None  # a user's own daemon's networks (core/pastanet.py)


class Container:
    # 100,000 of them in memory: no __dict__ each.
    __slots__ = (
        "__weakref__",
        "_cleanup_task",
        "_ending_runs",
        "_env",
        "_exit_waiters",
        "_lock",
        "_pending_exit",
        "_run",
        "_starting",
        "_watch",
        "config",
        "removed",
        "status",
    )

    def __init__(self, config: ContainerConfig, status: ContainerStatus,
                 env: ContainerEnv) -> None:
        self.config = config
        self.status = status
        self._env = env
        self._lock: asyncio.Lock | None = None  # made on first use
        self.removed = False
        self._watch: ExitWatchHandle | None = None
        self._exit_waiters: list[asyncio.Future[int]] = []
        self._starting = False
        self._pending_exit: int | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        # Each Init begins a new run; a Stop or Remove(force) ends the run it signalled
        # and no other (it may have exited and started again while they waited unlocked).
        self._run = 0
        self._ending_runs: list[int] = []  # one entry per Stop/Remove/abort under way

    @property
    def lock(self) -> asyncio.Lock:
        """Serializes the calls that change the container."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

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
    def paths(self) -> RootfsPaths:
        layout = self._env.layout
        return RootfsPaths(
            lower=self._env.layer_paths(self.config.image_id),
            container_dir=layout.container_dir(self.id),
            shm_dir=layout.shm_dir(self.id),
        )

    @property
    def bundle(self) -> Path:
        """Per boot: the OCI bundle, conmon's pid files, ctl FIFO and attach socket."""
        return self._env.layout.bundle(self.id)

    @property
    def log_path(self) -> Path:
        return self._env.layout.log_file(self.id)

    # state bookkeeping

    def update_status(self, **changes: Any) -> None:
        """Apply, save, then tell listeners: durable before anyone hears of it.

        The one way a status changes; ``pid`` follows ``state`` and ``init_pid``.
        """
        state = changes.get("state", self.status.state)
        changes["pid"] = shown_pid(state, changes.get("init_pid", self.status.init_pid))
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

    async def start(self, restarting: bool = False) -> None:
        """``restarting``: by its restart policy (core/restart.py), not by a caller."""
        async with self.lock:
            self._check("Start")
            if self.state == State.CREATED and self._run in self._ending_runs:
                # podman's "stopping": the created container is on its way out.
                raise InvalidState(f"cannot Start container {self.name}: it is being "
                                   "stopped; wait for it to exit, then start it")
            if not restarting:
                # A caller's Start: the restart policy begins afresh, as podman's.
                self.update_status(stopped_by_user=False, restart_count=0,
                                   restart_streak=0, restart_at=0)
            if self.state in (State.CONFIGURED, State.EXITED):
                await self._init()
            self._starting = True
            try:
                await self._env.oci.start(self.id)
                checkpoint("start:started")
            except Exception:
                await self._abort_start()
                raise
            finally:
                self._starting = False
            self.update_status(state=State.RUNNING, started=now_us(), exit_code=0,
                               finished=0, oom_killed=False)
            if self._pending_exit is not None:
                code, self._pending_exit = self._pending_exit, None
                self.record_exit(code)

    async def stop(self, timeout: int | None = None) -> None:
        """Send the stop signal, wait up to ``timeout`` s (None: the container's own
        stop timeout), then SIGKILL. Returns once it has exited, or is gone: a
        Remove(force) meanwhile stops it too."""
        async with self.lock:
            self._check("Stop")
            await self._stop(self.config.stop_timeout if timeout is None else timeout)

    async def kill(self, sig: int) -> None:
        async with self.lock:
            self._check("Kill")
            self.update_status(stopped_by_user=True)  # not a failure: no restart
            await self._on_live_process("Kill", self._env.oci.kill(self.id, sig))
            checkpoint("kill:sent")

    @property
    def has_own_cgroup(self) -> bool:
        """False for a user's own daemon's containers (core/cgroupoptions.py)."""
        return not self._env.rootless

    async def pause(self) -> None:
        if not self.has_own_cgroup:  # the freezer is a cgroup's
            refuse_cgroup_call("Pause", self.name)
        async with self.lock:
            self._check("Pause")
            await self._on_live_process("Pause", self._env.oci.pause(self.id))
            checkpoint("pause:paused")
            # An exit recorded during the call stands: exited is not paused.
            self._check("Pause")
            self.update_status(state=State.PAUSED)

    async def unpause(self) -> None:
        if not self.has_own_cgroup:
            refuse_cgroup_call("Unpause", self.name)
        async with self.lock:
            self._check("Unpause")
            await self._on_live_process("Unpause", self._env.oci.resume(self.id))
            checkpoint("unpause:resumed")
            self._resumed()

    async def mount(self) -> str:
        async with self.lock:
            self._check("Mount")
            mountpoint = self._mount_storage()
            self.update_status(user_mounted=True)
            return mountpoint

    async def unmount(self) -> None:
        async with self.lock:
            self._check("Unmount")
            self.unmount_storage()
            self.update_status(user_mounted=False)

    async def export(self, fd: int) -> None:
        async with self.lock:
            self._check("Export")
            was_mounted = self.status.mounted
            mountpoint = Path(self._mount_storage())
            try:
                with failing_as(StorageFailed, "exporting the root filesystem"):
                    await asyncio.to_thread(archive.export_tree, mountpoint, fd)
            finally:
                if not was_mounted:
                    self.unmount_storage()

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
            # Stopping lets go of the lock: it may have been removed, or (not forced)
            # started again, meanwhile.
            while force and self.state in ACTIVE:
                await self._stop(0)
                if self.removed:
                    raise NoSuchContainer(f"container {self.name} has been removed")
            self._check("Remove")
            self.update_status(removing=True)
            checkpoint("remove:marked")
            try:
                await self.finish_removal()
            except Exception:
                # A step failed before destroying anything (runc delete, or storage still
                # mounted): the container stays whole, and a restart must not finish a
                # Remove its caller was told had failed.
                if not self.removed:
                    self.update_status(removing=False)
                raise

    def inspect(self) -> dict[str, Any]:
        """Everything about the container, shaped like `podman inspect`."""
        if self.removed:
            raise NoSuchContainer(f"container {self.name} has been removed")
        return inspect_output.inspect(self, runtime_name=self._env.oci.name)

    # for recovery (core/recovery.py), which holds the lock while calling these

    async def finish_removal(self) -> None:
        """Remove's destructive part; each step may be repeated after a crash."""
        env = self._env
        if self.status.needs_cleanup or self.has_runtime_state():
            # Usually done already, right after the exit: runc delete costs ~7 ms.
            await self.cleanup_runtime()
        await self.detach_network()
        checkpoint("remove:runtime-deleted")
        # Unbounded (whatever the container wrote): the default pool's, not the
        # teardown thread every exit needs (pyctrd/teardown.py).
        await asyncio.to_thread(env.storage.destroy, self.paths)
        env.monitor.clear_exit(env.layout.exit_file(self.id), self.bundle)
        await teardown.in_thread(_remove_tree, self.bundle)
        # conmon links <sockets>/<id> to the bundle's attach socket: it would dangle.
        with contextlib.suppress(FileNotFoundError):
            (env.layout.sockets / self.id).unlink()
        checkpoint("remove:storage-destroyed")
        env.store.remove_container(self.id)
        self._forget()

    def has_runtime_state(self) -> bool:
        """runc still has a directory for it under the daemon's runtime root."""
        return (self._env.layout.runtime_root / self.id).exists()

    def read_exit(self) -> tuple[int, int]:
        """(exit code, finished µs) as the monitor recorded them; (-1, 0) if it did not."""
        found = self._env.monitor.read_exit(self._env.layout.exit_file(self.id))
        if found is None:
            log.warning("container %s: its conmon is gone and left no exit file "
                        "(killed, or the runtime state vanished); exit code -1", self.name)
            return -1, 0
        return found

    def record_exit(self, code: int, finished: int = 0) -> None:
        """The process has exited: save it, answer waiters, release resources soon."""
        oom = self._env.monitor.oom_killed(self.bundle)
        # An exit racing Start may predate the StartedTimestamp taken after runc start.
        finished = max(finished or now_us(), self.status.started)
        self.update_status(state=State.EXITED, exit_code=code, init_pid=0, conmon_pid=0,
                           finished=finished, oom_killed=oom)
        for waiter in self._exit_waiters:
            if not waiter.done():
                waiter.set_result(code)
        self._exit_waiters.clear()
        self.schedule_cleanup()

    def watch_exit(self) -> None:
        """Arm the exit watch on this container's monitor."""
        if self._watch:
            self._watch.cancel()
        self._watch = self._env.monitor.watch_exit(self.status.conmon_pid,
                                                   self._on_conmon_exit)

    def schedule_cleanup(self) -> None:
        """Release runtime state and storage soon, once the lock is free."""
        if self._cleanup_task is None or self._cleanup_task.done():
            self._cleanup_task = asyncio.get_running_loop().create_task(self._cleanup_later())

    async def cleanup_runtime(self) -> None:
        """After an exit: forget the runtime container; release storage not held by Mount."""
        await self._env.oci.delete(self.id)
        checkpoint("cleanup:deleted")
        # umount(2) waits for an RCU grace period (milliseconds, tens under load): in
        # an exit storm, on the loop thread, that was most of the stall. A worker does it.
        storage, paths = self._env.storage, self.paths

        async def release_storage() -> None:
            await teardown.in_thread(storage.unmount_shm, paths)
            if not self.status.user_mounted:
                # Not the teardown thread: an overlay's last umount syncs the upper
                # filesystem, for as long as what the container wrote takes.
                await asyncio.to_thread(storage.unmount_rootfs, paths)
                checkpoint("storage:unmounted")
                self.update_status(mounted=False, mountpoint="")

        if not self.status.netns:
            await release_storage()
        else:
            # Its network goes with the run (nothing left: veth, rules, lease,
            # namespace), beside the unmounts (netavark takes ~15 ms, more when the
            # bridge goes too); the next Start sets it up afresh.
            done = await asyncio.gather(release_storage(), self.detach_network(),
                                        return_exceptions=True)
            for result in done:
                if isinstance(result, BaseException):
                    raise result
        self.update_status(needs_cleanup=False)

    def unmount_shm(self) -> None:
        self._env.storage.unmount_shm(self.paths)

    def unmount_storage(self) -> None:
        self._env.storage.unmount_rootfs(self.paths)
        checkpoint("storage:unmounted")
        self.update_status(mounted=False, mountpoint="")

    async def detach_network(self) -> None:
        """Tear down its network and namespace, if set up (netavark, core/networks.py;
        pasta, core/pastanet.py)."""
        if not self.status.netns:
            return
        if self.config.network == MODE_PASTA:
            if self._env.pasta is not None:
                await self._env.pasta.detach(self, self.update_status)
        elif self._env.networks is not None:
            await self._env.networks.detach(self, self.update_status)

    # internals

    async def _attach_network(self) -> Attachment | None:
        if self.config.network == MODE_PASTA:
            if self._env.pasta is None:
                raise RuntimeFailed(f"container {self.name} needs pasta, which only a user's "
                                    "own daemon runs; create it with another network")
            await self.detach_network()  # a setup left by a crash
            return await self._env.pasta.attach(self, self.update_status)
        networks = self._env.networks
        if self.config.network != "bridge" or not self.status.networks:
            return None  # none: the runtime makes an empty namespace; host: none at all
        if networks is None:
            raise RuntimeFailed(f"container {self.name} needs a bridge network and this "
                                "daemon has none; create it with network \"none\"")
        await self.detach_network()  # a setup left by a crash
        return await networks.attach(self, self.update_status)

    def _forget(self) -> None:
        self.removed = True
        if self._watch:
            self._watch.cancel()
        for waiter in self._exit_waiters:
            if not waiter.done():
                waiter.set_exception(
                    NoSuchContainer(f"container {self.name} was removed before it exited"))
        self._exit_waiters.clear()

    async def _init(self) -> None:
        await self._cleanup_if_needed()
        env = self._env
        bundle = self.bundle
        with failing_as(RuntimeFailed, "making the container's bundle"):
            bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
        # From here on a failure, whatever it is (EMFILE, a bug), undoes the mounts and
        # any runtime state: the container stays as it was, not half made.
        launching = False
        try:
            rootfs_path = Path(self._mount_storage())
            paths = self.paths
            env.storage.mount_shm(paths)
            cfg = self.config
            network = await self._attach_network()
            with failing_as(Failed, "building the runtime spec"):
                spec = build_spec(SpecInput(
                    cid=self.id, rootfs=rootfs_path, args=cfg.command, env=cfg.env,
                    cwd=cfg.workdir, uid=cfg.uid, gid=cfg.gid, hostname=cfg.hostname,
                    shm_dir=paths.shm_dir, terminal=cfg.terminal, read_only=cfg.read_only,
                    network_host=cfg.network == "host", mounts=cfg.mounts,
                    memory_limit=cfg.memory_limit, cpu_quota=cfg.cpu_quota,
                    pids_limit=cfg.pids_limit, annotations=cfg.annotations,
                    no_new_privileges=cfg.no_new_privileges, capabilities=cfg.capabilities,
                    privileged=cfg.privileged, seccomp=cfg.seccomp, ulimits=cfg.ulimits,
                    netns_path=str(network.netns) if network else "",
                    etc_files={k: str(v) for k, v in network.etc_files.items()}
                    if network else {},
                    rootless=env.rootless,
                ))
                data = json.dumps(spec).encode()
            with failing_as(RuntimeFailed, "writing the runtime spec"):
                _write_atomic(bundle / "config.json", data)
            env.monitor.clear_exit(env.layout.exit_file(self.id), bundle)
            launching = True
            launched = await env.monitor.launch(ConmonRequest(
                cid=self.id, name=self.name, bundle=bundle, log_path=self.log_path,
                exit_dir=env.layout.exits, socket_dir=env.layout.sockets,
                terminal=cfg.terminal, stdin=cfg.stdin, log_size_max=env.log_size_max,
            ))
        except BaseException:  # cancelled too (the daemon stopping): nothing half made
            await self._undo_init(launching)
            raise
        checkpoint("init:launched")
        self._run += 1
        self.update_status(state=State.CREATED, init_pid=launched.pid,
                           conmon_pid=launched.conmon_pid, needs_cleanup=True)
        self.watch_exit()

    def _on_conmon_exit(self) -> None:
        self._watch = None
        # Seen now: our clock is finer than the exit file's coarse mtime.
        code, _ = self.read_exit()
        if self._starting:
            self._pending_exit = code
            return
        if self.state in ACTIVE or self.state == State.UNKNOWN:
            self.record_exit(code)

    async def _cleanup_later(self) -> None:
        # One exit's cleanup per loop iteration: in an exit storm calls keep flowing.
        await pacer().turn()
        async with self.lock:
            if self.removed:
                return
            try:
                await self._cleanup_if_needed()
            except Exception:
                log.exception("container %s: cleanup after exit failed", self.name)

    async def _cleanup_if_needed(self) -> None:
        if self.status.needs_cleanup and self.state not in ACTIVE:
            await self.cleanup_runtime()

    async def _abort_start(self) -> None:
        # No longer starting: an exit is recorded the moment the monitor reports it
        # (while starting it would only be set aside, and the wait below never end).
        self._starting = False
        code, self._pending_exit = self._pending_exit, None
        if code is not None and self.state in ACTIVE:
            self.record_exit(code)
        async with self._ending(self._run) as run:
            try:
                await self._env.oci.kill(self.id, signal.SIGKILL)
                killed = True
            except RuntimeFailed:
                killed = False
            if self._is_current(run):
                if killed:
                    await self._wait_exit_unlocked(KILL_GRACE)
                else:
                    # Exited already (then its report is awaited), or runc could not be
                    # run at all (EMFILE): no exit is coming, and it stays created, as
                    # runc has it; a later Start or Stop finds it so.
                    await self._exited_meanwhile()
            if not self.removed:
                try:
                    await self._cleanup_if_needed()
                except Exception:
                    log.exception("container %s: cleanup after a failed Start failed",
                                  self.name)

    async def _stop(self, timeout: int) -> None:
        """With the lock held (let go of while waiting): end the current run."""
        oci = self._env.oci
        self.update_status(stopped_by_user=True)  # not a failure: no restart
        async with self._ending(self._run) as run:
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
                if self._is_current(run):
                    await self._wait_exit_unlocked(timeout)
            # Re-checked after every wait: a Kill, a Remove(force) or the exit itself
            # may have come while the lock was free.
            if self._is_current(run):
                if self.state == State.PAUSED:  # paused during the grace period
                    await oci.resume(self.id)
                    self._resumed()
                try:
                    # --all walks the cgroup; a rootless container has none of its own
                    # (SIGKILL to its pid namespace's init ends the rest anyway).
                    await oci.kill(self.id, signal.SIGKILL,
                                   all_processes=not self._env.rootless)
                except RuntimeFailed:
                    if self._is_current(run):
                        raise
                if (self._is_current(run) and not await self._wait_exit_unlocked(KILL_GRACE)
                        and self._is_current(run)):
                    raise RuntimeFailed(f"container {self.name} did not exit after SIGKILL")
            if not self.removed:
                await self._cleanup_if_needed()

    @contextlib.asynccontextmanager
    async def _ending(self, run: int) -> AsyncIterator[int]:
        """Mark ``run`` as being ended (a Start of it is refused meanwhile)."""
        self._ending_runs.append(run)
        try:
            yield run
        finally:
            self._ending_runs.remove(run)

    def _is_current(self, run: int) -> bool:
        """``run`` is still this container's, and its process has not exited."""
        return not self.removed and self._run == run and self.state in ACTIVE

    def _resumed(self) -> None:
        # Thawed, it may exit at once (a signal sent while frozen), and that exit may be
        # recorded before runc resume returns: it must not be overwritten with "running".
        if self.state == State.PAUSED:
            self.update_status(state=State.RUNNING)

    async def _on_live_process(self, operation: str, call: Awaitable[None]) -> None:
        """A runtime call that needs the process alive: if it died just before (the
        monitor has not reported yet), the caller is told the state it finds, as if it
        came later."""
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
            if self.state in ACTIVE:
                # The monitor reports within milliseconds of the end (the runtime
                # state is read from files now, not by a runtime call long enough
                # for the report to come meanwhile): wait for it holding the lock, so
                # that no other call starts a new run in between and this one is
                # told the state the exit left. Only a slower monitor is waited for
                # without the lock.
                await self._wait_exit_locked(EXIT_REPORT_GRACE)
            if self.state in ACTIVE:
                await self._wait_exit_unlocked(KILL_GRACE)
        return self.state not in ACTIVE

    async def _wait_exit_locked(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the exit to be recorded, keeping the lock (the
        record needs no lock)."""
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exit_waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (TimeoutError, NoSuchContainer):
            pass
        finally:
            with contextlib.suppress(ValueError):  # unless the exit or removal took it
                self._exit_waiters.remove(waiter)

    async def _wait_exit_unlocked(self, timeout: float) -> bool:
        """Called with the lock held and the process alive: let go of the lock, wait up
        to ``timeout`` s for the exit to be recorded (False on timeout), and hold the
        lock again on return. Anything may have happened meanwhile: the caller
        re-checks the state."""
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exit_waiters.append(waiter)  # before letting go: the exit may come at once
        self.lock.release()
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            return False
        except NoSuchContainer:
            return True  # removed meanwhile (the caller sees self.removed)
        finally:
            with contextlib.suppress(ValueError):  # unless the exit or removal took it
                self._exit_waiters.remove(waiter)
            await _relock(self.lock)

    async def _undo_init(self, launched: bool) -> None:
        """Init failed part-way: release what it took. Each step is tried on its own, so
        that one failing (under EMFILE, say) does not keep the others from running."""
        if launched:
            try:
                await self._env.oci.delete(self.id)
            except Exception:
                log.exception("container %s: deleting its runtime state after a failed "
                              "Init failed; retried at the next Init or restart", self.name)
                self.update_status(needs_cleanup=True)
        try:
            await self.detach_network()
        except Exception:
            log.exception("container %s: undoing a failed Init: releasing its network "
                          "failed; retried at the next Init or restart", self.name)
        steps = [self.unmount_shm]
        if not self.status.user_mounted:
            steps.append(self.unmount_storage)
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("container %s: undoing a failed Init: %s failed", self.name,
                              step.__name__)

    def _mount_storage(self) -> str:
        mountpoint = str(self._env.storage.mount_rootfs(self.paths))
        checkpoint("storage:mounted")
        self.update_status(mounted=True, mountpoint=mountpoint)
        return mountpoint


async def _relock(lock: asyncio.Lock) -> None:
    """Acquire ``lock`` even if cancelled meanwhile (then re-raise): the caller's
    ``async with`` will release it."""
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await lock.acquire()
            break
        except asyncio.CancelledError as err:
            cancelled = err
    if cancelled is not None:
        raise cancelled


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _remove_tree(path: Path) -> None:
    # iterative (shutil.rmtree recurses per level); never into a mount
    remove_quietly(path)
