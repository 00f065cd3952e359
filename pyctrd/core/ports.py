"""What the core needs from the world around it, as stateless protocols.

Like libpod's ``OCIRuntime`` interface, each is a thin wrapper with no state
logic: the Container decides, these only act. The daemon plugs in the real
adapters (pyctrd.oci.runtime.OCIRuntime, pyctrd.oci.conmon.Conmon,
pyctrd.storage.rootfs.RootfsStorage); unit tests plug in fakes whose timing
they control (tests/support/fake_runtime.py).
"""

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from pyctrd.oci.conmon import ConmonRequest, Launched
from pyctrd.storage.rootfs import RootfsPaths

__all__ = ["ConmonRequest", "ExitWatchHandle", "Launched", "MonitorPort", "NetworkPort",
           "OCIRuntimePort", "PastaPort", "RootfsPort"]


class OCIRuntimePort(Protocol):
    """An OCI runtime (runc, crun) acting on containers by id.

    Every call raises pyctrd.errors.RuntimeFailed with the runtime's message.
    """

    @property
    def name(self) -> str:
        """Its short name, shown by Inspect ("runc")."""
        ...

    @property
    def path(self) -> str:
        """Its executable, shown as the Manager's Runtime."""
        ...

    async def start(self, cid: str) -> None: ...

    async def kill(self, cid: str, signal: int, *, all_processes: bool = False) -> None: ...

    async def pause(self, cid: str) -> None: ...

    async def resume(self, cid: str) -> None: ...

    async def delete(self, cid: str) -> None:
        """Forget the container; one the runtime does not know is no error."""
        ...

    async def state(self, cid: str) -> dict[str, Any] | None:
        """The runtime's view ("status", "pid", ...), or None if it does not know it."""
        ...


class ExitWatchHandle(Protocol):
    def cancel(self) -> bool:
        """Stop watching; True if the watch was still armed."""
        ...


class MonitorPort(Protocol):
    """The container monitor (conmon): the container's parent, which outlives the
    daemon and records the exit in an exit file."""

    async def launch(self, request: ConmonRequest) -> Launched:
        """Start a monitor that has the runtime create the container; return once
        it exists (RuntimeFailed if it could not be created)."""
        ...

    def is_alive(self, conmon_pid: int) -> bool:
        """``conmon_pid`` is a live monitor (after a restart: can it be re-adopted?)."""
        ...

    def watch_exit(self, conmon_pid: int, on_exit: Callable[[], None]) -> ExitWatchHandle:
        """Call ``on_exit`` once, from the event loop, when the monitor has exited
        (after writing the exit file); at once if it is gone already."""
        ...

    def read_exit(self, exit_file: Path) -> tuple[int, int] | None:
        """(exit code, finished µs since the epoch) from the exit file, None if absent."""
        ...

    def oom_killed(self, bundle: Path) -> bool:
        """Did the kernel OOM-kill the container (as the monitor recorded)?"""
        ...

    def clear_exit(self, exit_file: Path, bundle: Path) -> None:
        """Forget an earlier run's exit records before a new run, or at removal."""
        ...


class RootfsPort(Protocol):
    """Each container's root filesystem and /dev/shm (pyctrd.storage.rootfs)."""

    def mount_rootfs(self, paths: RootfsPaths) -> Path: ...

    def unmount_rootfs(self, paths: RootfsPaths) -> None: ...

    def mount_shm(self, paths: RootfsPaths) -> None: ...

    def unmount_shm(self, paths: RootfsPaths) -> None: ...

    def destroy(self, paths: RootfsPaths) -> None:
        """Unmount and delete the container's storage (StorageFailed if still mounted)."""
        ...

    def mounted_paths(self) -> set[str]:
        """Every mount point of the host now (start-up recovery compares against it)."""
        ...


class NetworkPort(Protocol):
    """Network namespaces and netavark (pyctrd.network.netavark.Netavark).

    Failures raise pyctrd.errors.RuntimeFailed with netavark's message.
    """

    async def create_netns(self, path: Path) -> None:
        """A new network namespace bound at ``path``."""
        ...

    async def remove_netns(self, path: Path) -> None:
        """Unbind and delete ``path``; nothing there is no error."""
        ...

    def netns_exists(self, path: Path) -> bool: ...

    async def setup(self, netns_path: Path, request: dict[str, Any]) -> dict[str, Any]:
        """netavark setup of ``request`` (its JSON) in the namespace; its answer."""
        ...

    async def teardown(self, netns_path: Path, request: dict[str, Any]) -> None: ...


class PastaPort(Protocol):
    """User-mode networking for a user's own daemon (pyctrd.network.pasta.Pasta):
    a pasta process per container namespace. Failures raise RuntimeFailed."""

    @property
    def dns_forward(self) -> str:
        """The address in the namespace whose DNS queries reach the host's resolver."""
        ...

    async def create_netns(self, path: Path) -> None: ...

    async def remove_netns(self, path: Path) -> None: ...

    def netns_exists(self, path: Path) -> bool: ...

    def unprivileged_port_start(self) -> int:
        """The lowest host port the daemon's user may publish."""
        ...

    def host_route(self) -> tuple[str, str]:
        """(the container's address, its gateway) as pasta configures them."""
        ...

    async def start(self, netns_path: Path, ports: Iterable[tuple[str, int, int, str]],
                    pid_file: Path) -> int:
        """Connect the namespace, publishing ``ports`` (host_ip, host_port,
        container_port, protocol); pasta's pid once ready. Nothing left on failure."""
        ...

    def running(self, pid_file: Path, netns_path: Path) -> bool: ...

    async def stop(self, pid_file: Path, netns_path: Path) -> None:
        """Stop the pasta of ``pid_file`` and wait for it; repeatable."""
        ...
