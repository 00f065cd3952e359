"""The core's adapters with their failures named: nothing but catalogued errors comes out.

The real adapters raise RuntimeFailed and StorageFailed for what they expect
(runc's stderr, a refused mount); anything else (EMFILE from a pipe, an
OSError from umount, a bug) would reach a caller as a bare Python exception
and skip the state machine's ``except RuntimeFailed`` clean-ups. Wrapped
here, a runtime or monitor failure is RuntimeFailed and a storage one
StorageFailed, logged once with its traceback; the Engine hands only these
wrappers to containers and to recovery.
"""

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pyctrd.core.ports import (
    ConmonRequest,
    ExitWatchHandle,
    Launched,
    MonitorPort,
    OCIRuntimePort,
    RootfsPort,
)
from pyctrd.errors import PyctrdError, RuntimeFailed, StorageFailed
from pyctrd.storage.rootfs import RootfsPaths

log = logging.getLogger(__name__)


@contextlib.contextmanager
def failing_as(kind: type[PyctrdError], what: str) -> Iterator[None]:
    """Let a PyctrdError through; turn anything else into ``kind`` ("``what`` failed:
    ..."), logged with its traceback: the caller meets an error of the catalogue
    naming the layer that failed, never a Python exception's name."""
    try:
        yield
    except PyctrdError:
        raise
    except Exception as err:
        log.error("%s failed unexpectedly", what, exc_info=err)
        detail = " ".join(str(err).split()) or type(err).__name__
        raise kind(f"{what} failed: {detail}") from err


class GuardedRuntime:
    """OCIRuntimePort: every failure is RuntimeFailed."""

    def __init__(self, inner: OCIRuntimePort) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def path(self) -> str:
        return self.inner.path

    async def start(self, cid: str) -> None:
        with failing_as(RuntimeFailed, f"{self.name} start"):
            await self.inner.start(cid)

    async def kill(self, cid: str, signal: int, *, all_processes: bool = False) -> None:
        with failing_as(RuntimeFailed, f"{self.name} kill"):
            await self.inner.kill(cid, signal, all_processes=all_processes)

    async def pause(self, cid: str) -> None:
        with failing_as(RuntimeFailed, f"{self.name} pause"):
            await self.inner.pause(cid)

    async def resume(self, cid: str) -> None:
        with failing_as(RuntimeFailed, f"{self.name} resume"):
            await self.inner.resume(cid)

    async def delete(self, cid: str) -> None:
        with failing_as(RuntimeFailed, f"{self.name} delete"):
            await self.inner.delete(cid)

    async def state(self, cid: str) -> dict[str, Any] | None:
        with failing_as(RuntimeFailed, f"{self.name} state"):
            return await self.inner.state(cid)


class GuardedMonitor:
    """MonitorPort: a failed launch or exit-file step is RuntimeFailed."""

    def __init__(self, inner: MonitorPort) -> None:
        self.inner = inner

    async def launch(self, request: ConmonRequest) -> Launched:
        with failing_as(RuntimeFailed, "launching conmon"):
            return await self.inner.launch(request)

    def is_alive(self, conmon_pid: int) -> bool:
        with failing_as(RuntimeFailed, "looking for conmon"):
            return self.inner.is_alive(conmon_pid)

    def watch_exit(self, conmon_pid: int, on_exit: Callable[[], None]) -> ExitWatchHandle:
        with failing_as(RuntimeFailed, "watching conmon"):
            return self.inner.watch_exit(conmon_pid, on_exit)

    def read_exit(self, exit_file: Path) -> tuple[int, int] | None:
        with failing_as(RuntimeFailed, "reading the exit file"):
            return self.inner.read_exit(exit_file)

    def oom_killed(self, bundle: Path) -> bool:
        with failing_as(RuntimeFailed, "reading conmon's OOM record"):
            return self.inner.oom_killed(bundle)

    def clear_exit(self, exit_file: Path, bundle: Path) -> None:
        with failing_as(RuntimeFailed, "clearing the exit file"):
            self.inner.clear_exit(exit_file, bundle)


class GuardedStorage:
    """RootfsPort: every failure is StorageFailed."""

    def __init__(self, inner: RootfsPort) -> None:
        self.inner = inner

    def mount_rootfs(self, paths: RootfsPaths) -> Path:
        with failing_as(StorageFailed, "mounting the root filesystem"):
            return self.inner.mount_rootfs(paths)

    def unmount_rootfs(self, paths: RootfsPaths) -> None:
        with failing_as(StorageFailed, "unmounting the root filesystem"):
            self.inner.unmount_rootfs(paths)

    def mount_shm(self, paths: RootfsPaths) -> None:
        with failing_as(StorageFailed, "mounting /dev/shm"):
            self.inner.mount_shm(paths)

    def unmount_shm(self, paths: RootfsPaths) -> None:
        with failing_as(StorageFailed, "unmounting /dev/shm"):
            self.inner.unmount_shm(paths)

    def destroy(self, paths: RootfsPaths) -> None:
        with failing_as(StorageFailed, "removing the container's storage"):
            self.inner.destroy(paths)

    def mounted_paths(self) -> set[str]:
        with failing_as(StorageFailed, "reading the mount table"):
            return self.inner.mounted_paths()
