"""A container's resource figures (GetStats), from its cgroup and network namespace."""

from pyctrd.core.cgroupoptions import refuse_cgroup_call
from pyctrd.core.container import Container
from pyctrd.core.state import WITH_PID
from pyctrd.errors import InvalidState, NoSuchContainer
from pyctrd.oci.cgroupstats import read_stats

# Every figure but pids is a 64-bit count; net_* only with a network namespace.
STAT_FIELDS = ("cpu_usec", "memory_bytes", "memory_limit", "pids", "block_read_bytes",
               "block_write_bytes", "net_rx_bytes", "net_tx_bytes", "read_usec")


def container_stats(container: Container) -> dict[str, int]:
    """The figures of a running or paused container (InvalidState otherwise)."""
    if container.removed:
        raise NoSuchContainer(f"container {container.name} has been removed")
    if not container.has_own_cgroup:  # the session's cgroup would be read instead
        refuse_cgroup_call("GetStats", container.name)
    pid = container.status.init_pid
    if container.state not in WITH_PID or pid <= 0:
        raise InvalidState(f"cannot GetStats of container {container.name}: it is "
                           f"{container.state}; GetStats needs a container that is "
                           "paused, running")
    try:
        return read_stats(pid)
    except (FileNotFoundError, ProcessLookupError):
        # It exited between the check and the reading; its exit is on its way.
        raise InvalidState(f"cannot GetStats of container {container.name}: its process "
                           "has just exited") from None
