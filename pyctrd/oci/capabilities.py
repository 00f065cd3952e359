"""Linux capabilities by name, the daemon's own bounding set, and podman's merge of
cap_add/cap_drop into a container's set."""

import functools
from collections.abc import Iterable
from pathlib import Path

from pyctrd.errors import InvalidArgument

# Index = capability number (linux/capability.h).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
ALL = "ALL"

# The set podman grants by default (containers.conf default_capabilities).
DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
    "CAP_SETUID", "CAP_SYS_CHROOT",
)


def normalize(name: str) -> str:
    """"net_admin", "NET_ADMIN", "CAP_NET_ADMIN" → "CAP_NET_ADMIN"; "all" → "ALL"."""
    upper = name.strip().upper()
    if upper == ALL:
        return ALL
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in CAPABILITIES:
        raise InvalidArgument(f"unknown capability {name!r}; give a name such as "
                              "NET_ADMIN or CAP_NET_ADMIN, or ALL")
    return full


@functools.cache
def bounding_set(status: Path = Path("/proc/self/status")) -> tuple[str, ...]:
    """The capabilities this daemon can give a container: its own bounding set (runc
    cannot grant more), limited to the names this module knows."""
    for line in status.read_text().splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return tuple(c for i, c in enumerate(CAPABILITIES) if mask >> i & 1)
    return DEFAULT_CAPS


def merge(base: Iterable[str], add: Iterable[str], drop: Iterable[str],
          available: Iterable[str]) -> list[str]:
    """podman's MergeCapabilities: ``base`` plus ``add`` minus ``drop`` (normalized
    names); ALL in drop keeps only what is added, ALL in add means ``available``."""
    adds, drops = [normalize(c) for c in add], [normalize(c) for c in drop]
    have = tuple(available)
    if ALL in drops:
        if ALL in adds:
            raise InvalidArgument("cap_add ALL and cap_drop ALL together")
        caps = set(adds)
    else:
        both = set(adds) & set(drops)
        if both:
            raise InvalidArgument(f"capability {sorted(both)[0]} both added and dropped")
        caps = set(have) if ALL in adds else set(base) | set(adds)
        caps -= set(drops)
    missing = sorted(caps - set(have))
    if missing:
        raise InvalidArgument(f"capability {missing[0]} is not in pyctrd's own bounding "
                              "set on this host, so no container can have it")
    return [c for c in CAPABILITIES if c in caps]
