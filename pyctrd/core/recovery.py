"""Start-up recovery: make every stored container true again after a daemon
restart (conmon kept the containers running) or a reboot (nothing runs).

The Engine decides whether this is a new boot (the boot id stored in the
database differs) and, before serving, calls ``Recovery.prepare``: what must
happen before anything else (a new boot's per-boot state wiped, its
containers marked exited) and which containers need reconciling. Those are
then held (core/recovering.py) and reconciled in the background by
``recover_each`` while the daemon serves the others.
"""

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from pyctrd.core.config import now_us
from pyctrd.core.container import Container
from pyctrd.core.ports import MonitorPort, OCIRuntimePort, RootfsPort
from pyctrd.core.state import ACTIVE, State
from pyctrd.errors import RuntimeFailed
from pyctrd.layout import Layout
from pyctrd.storage.trees import remove_tree

log = logging.getLogger(__name__)

PARALLELISM = 8  # runc state calls at once when re-adopting

_RUNTIME_STATES = {"created": State.CREATED, "running": State.RUNNING,
                   "paused": State.PAUSED}


class Recovery:
    def __init__(self, layout: Layout, oci: OCIRuntimePort, monitor: MonitorPort,
                 storage: RootfsPort) -> None:
        self._layout = layout
        self._oci = oci
        self._monitor = monitor
        self._storage = storage
        self._mounted: set[str] = set()  # the host's mount points when prepared

    def prepare(self, containers: Iterable[Container], new_boot: bool) -> list[Container]:
        """Synchronous, before serving: the containers whose stored state may be
        stale or that have something to tidy (cheap tests, for 100,000 containers)."""
        self._mounted = self._storage.mounted_paths()
        if new_boot:
            self.wipe_per_boot_state()
        # Containers with runtime state or a mount: looked up, not a path made for each.
        involved = set(os.listdir(self._layout.runtime_root)) | self._mounted_ids()
        pending = [c for c in containers if self.needs_recovery(c, involved)]
        if new_boot:
            # Nothing of the last boot runs: true at once, before anyone asks.
            for container in pending:
                if not container.status.removing:
                    self._forget_last_boot(container)
        return pending

    async def recover_each(self, containers: Iterable[Container], new_boot: bool,
                           recovered: Callable[[Container], None]) -> None:
        """Reconcile each of ``containers`` (from ``prepare``; their locks held by the
        caller), calling ``recovered`` for each once it is done, failed or not.

        A container whose recovery fails is logged and marked unknown; the others go on.
        """
        limit = asyncio.Semaphore(PARALLELISM)
        mounted = self._mounted

        async def recover_one(container: Container) -> None:
            async with limit:
                try:
                    await self.recover(container, new_boot, mounted)
                except Exception:
                    # Its state is not known for sure: say so, and serve the others. The
                    # next start tries again (unknown always needs recovery).
                    log.exception("container %s: recovery failed; marked unknown",
                                  container.name)
                    try:
                        container.update_status(state=State.UNKNOWN)
                    except Exception:
                        log.exception("container %s: could not be marked unknown",
                                      container.name)
                finally:
                    recovered(container)

        await asyncio.gather(*(recover_one(c) for c in list(containers)))

    def wipe_per_boot_state(self) -> None:
        """The last boot's runc state, bundles and exit files describe processes that
        are gone; runc must not act on PIDs recycled since. Removed at once, not per
        container."""
        layout = self._layout
        for directory in (layout.runtime_root, layout.run_root / "containers", layout.exits):
            try:
                remove_tree(directory)  # iterative; never into a mount left there
            except OSError as err:
                log.warning("could not delete %s: %s", directory, err)
        layout.create_dirs()

    def needs_recovery(self, container: Container, involved: set[str]) -> bool:
        """Cheap test, for 100,000 containers at start-up: is there anything to
        reconcile? ``involved``: the IDs of those with runtime state or a mount."""
        st = container.status
        return bool(st.removing or st.needs_cleanup or st.mounted or st.user_mounted
                    or st.netns or container.state not in (State.CONFIGURED, State.EXITED)
                    or container.id in involved)

    def _mounted_ids(self) -> set[str]:
        """The containers whose root filesystem or /dev/shm is mounted."""
        ids: set[str] = set()
        for where in (self._layout.rootfs_mountpoint, self._layout.shm_dir):
            prefix, _, suffix = str(where("\0")).partition("\0")
            for path in self._mounted:
                if path.startswith(prefix) and path.endswith(suffix):
                    ids.add(path[len(prefix):len(path) - len(suffix)])
        return ids

    async def recover(self, container: Container, new_boot: bool,
                      mounted: set[str]) -> None:
        """Make the stored state true again, with the container's lock held (by the
        caller); ``mounted`` is the host's mount points."""
        if container.status.removing:
            await container.finish_removal()
            return
        if new_boot:
            self._forget_last_boot(container)  # done in prepare(): repeating costs nothing
        elif container.state in ACTIVE or container.state == State.UNKNOWN:
            await self._readopt(container)
        elif container.status.needs_cleanup or container.has_runtime_state():
            # Killed between runc create and saving, or before cleaning up an exit.
            container.update_status(needs_cleanup=True)
            await container.cleanup_runtime()
        elif container.status.netns:
            # Killed between setting up its network and launching it.
            await container.detach_network()
        self._reconcile_mounts(container, mounted)

    def _forget_last_boot(self, container: Container) -> None:
        # Nothing of the last boot runs any more; its per-boot files are gone already
        # (wipe_per_boot_state).
        # Its network namespace, veth, rules and leases went with the boot: a Start sets
        # them up afresh.
        changes: dict[str, Any] = {"needs_cleanup": False, "init_pid": 0, "conmon_pid": 0,
                                   "netns": "", "addresses": {}, "published": []}
        if container.state in ACTIVE or container.state == State.UNKNOWN:
            log.info("container %s: was %s before the reboot; now exited", container.name,
                     container.state)
            changes.update(state=State.EXITED, exit_code=-1, finished=now_us())
        container.update_status(**changes)

    async def _readopt(self, container: Container) -> None:
        if not self._monitor.is_alive(container.status.conmon_pid):
            # It exited while the daemon was away: the exit file tells how and when.
            code, finished = container.read_exit()
            container.record_exit(code, finished)
            return
        try:
            runtime_state = await self._oci.state(container.id)
        except RuntimeFailed as err:
            log.warning("container %s: state unknown: %s", container.name, err)
            container.update_status(state=State.UNKNOWN)
            container.watch_exit()
            return
        current = _RUNTIME_STATES.get((runtime_state or {}).get("status", ""))
        if current is not None and runtime_state is not None:
            changes: dict[str, Any] = {
                "state": current,
                "init_pid": runtime_state.get("pid") or container.status.init_pid}
            if current != State.CREATED and container.state == State.CREATED:
                # Killed between runc start and saving "running".
                changes.update(started=now_us(), exit_code=0, finished=0, oom_killed=False)
            container.update_status(**changes)
        # else the process is gone and the monitor is about to report it
        container.watch_exit()

    def _reconcile_mounts(self, container: Container, mounted: set[str]) -> None:
        paths, st = container.paths, container.status
        active = container.state in ACTIVE
        if not active and str(paths.shm_dir) in mounted:
            container.unmount_shm()
        if str(paths.merged) not in mounted:
            if st.mounted or st.user_mounted:
                container.update_status(mounted=False, mountpoint="", user_mounted=False)
        elif active or st.user_mounted:
            if not st.mounted:
                container.update_status(mounted=True, mountpoint=str(paths.merged))
        else:
            # Mounted by a call that never answered, or left by a cleanup cut short.
            container.unmount_storage()
