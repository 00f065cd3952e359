"""What needs a cgroup of the container's own, refused where there is none.

A root daemon puts each container in a cgroup of its own. A user's own daemon
(rootless) gets one only where the host delegates a cgroup v2 subtree to the
user (systemd's user@.service does; a hybrid or v1 host cannot): without it
runc would silently run the container unlimited, so create refuses instead,
as podman does.
"""

from typing import Any

from pyctrd.errors import NotSupported

# CreateContainer options applied through the container's cgroup
CGROUP_OPTIONS = ("memory_limit", "cpu_quota", "pids_limit")


def refuse_without_cgroup(options: dict[str, Any]) -> None:
    asked = [name for name in CGROUP_OPTIONS if options.get(name)]
    if asked:
        raise NotSupported(
            f"{', '.join(asked)} {'needs' if len(asked) == 1 else 'need'} a cgroup, "
            "and this user's own daemon has none delegated to it (cgroup v2 "
            "delegation, as systemd's user service gives); "
            "create the container without them, or use the system daemon")


def refuse_cgroup_call(call: str, name: str) -> None:
    """Pause, Unpause and GetStats read or write the container's cgroup."""
    raise NotSupported(
        f"cannot {call} container {name}: {call} needs a cgroup of the container's own, "
        "and this user's own daemon has none delegated to it; the system daemon can")
