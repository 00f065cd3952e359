"""Resource figures of a process's cgroup (v1, v2 or both, as on a hybrid host)
and of its network namespace, read from the kernel's files.

The cgroup is found from /proc/PID/cgroup: on a v1 controller line the path
in that controller's hierarchy, on the "0::" line the path in the unified
one. A figure whose v1 controller is mounted is read there (runc puts a
container's processes in the v1 controllers on a hybrid host), otherwise
from cgroup v2. The mount table is read once per process: cgroup
hierarchies are mounted at boot and stay.

One reading is a dozen small reads of kernel files, about 0.1 ms: cheap
enough for a hundred containers every second, on the event loop.
"""

import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

UNLIMITED = 1 << 62  # v1 reports "no limit" as a page-rounded 2^63-1


@dataclass(frozen=True)
class Hierarchies:
    v1: dict[str, tuple[str, str]]  # controller → (mount root, mount point)
    v2: tuple[str, str] | None  # (mount root, mount point) of the unified hierarchy


@cache
def hierarchies() -> Hierarchies:
    v1: dict[str, tuple[str, str]] = {}
    v2: tuple[str, str] | None = None
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[sep + 3]
            root, point = fields[3], _unescape(fields[4])
            if fstype == "cgroup2" and v2 is None:
                v2 = (root, point)
            elif fstype == "cgroup":
                for option in options.split(","):
                    v1.setdefault(option, (root, point))
    return Hierarchies(v1, v2)


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


@dataclass(frozen=True)
class CgroupDirs:
    v1: dict[str, Path]  # controller → the process's directory in it
    v2: Path | None


def cgroup_dirs(pid: int) -> CgroupDirs:
    """Where ``pid``'s cgroups are; FileNotFoundError once it has gone."""
    known = hierarchies()
    v1: dict[str, Path] = {}
    v2: Path | None = None
    with open(f"/proc/{pid}/cgroup") as lines:
        for line in lines:
            number, controllers, path = line.rstrip("\n").split(":", 2)
            if number == "0" and not controllers:
                if known.v2 is not None:
                    v2 = _join(*known.v2, path)
                continue
            for controller in controllers.split(","):
                if controller in known.v1:
                    v1[controller] = _join(*known.v1[controller], path)
    return CgroupDirs(v1, v2)


def _join(root: str, point: str, path: str) -> Path:
    """The directory of cgroup ``path`` in a hierarchy whose ``root`` is mounted at
    ``point`` (a mount of a sub-tree, as in a container, has a root other than /)."""
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    return Path(point + "/" + path.lstrip("/"))


def _read(path: Path) -> str:
    """The file's text; "" if it does not exist (a root cgroup lacks some; a
    cgroup removed as the container exits has none)."""
    try:
        with open(path) as file:
            return file.read()
    except FileNotFoundError:
        return ""


def _int(path: Path) -> int:
    text = _read(path).strip()
    return UNLIMITED if text == "max" else int(text or 0)


def _keyed(text: str) -> dict[str, int]:
    """"key value" lines (cpu.stat, memory.stat)."""
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            found[key] = int(value)
    return found


def read_stats(pid: int) -> dict[str, int]:
    """The figures of the cgroup and network namespace of ``pid``: cpu_usec,
    memory_bytes (in use less inactive file cache, as podman shows it),
    memory_limit (0: none), pids, block_read_bytes, block_write_bytes, and
    net_rx_bytes/net_tx_bytes when it has a network namespace of its own;
    read_usec, when they were read. FileNotFoundError if the process is gone.
    """
    dirs = cgroup_dirs(pid)
    stats = {"read_usec": time.time_ns() // 1000}
    stats["cpu_usec"] = _cpu_usec(dirs)
    stats["memory_bytes"], stats["memory_limit"] = _memory(dirs)
    stats["pids"] = _pids(dirs)
    stats["block_read_bytes"], stats["block_write_bytes"] = _block(dirs)
    net = _net(pid)
    if net is not None:
        stats["net_rx_bytes"], stats["net_tx_bytes"] = net
    return stats


def _cpu_usec(dirs: CgroupDirs) -> int:
    if "cpuacct" in dirs.v1:
        return _int(dirs.v1["cpuacct"] / "cpuacct.usage") // 1000
    if dirs.v2 is not None:
        return _keyed(_read(dirs.v2 / "cpu.stat")).get("usage_usec", 0)
    return 0


def _memory(dirs: CgroupDirs) -> tuple[int, int]:
    if "memory" in dirs.v1:
        base = dirs.v1["memory"]
        usage = _int(base / "memory.usage_in_bytes")
        inactive = _keyed(_read(base / "memory.stat")).get("total_inactive_file", 0)
        limit = _int(base / "memory.limit_in_bytes")
    elif dirs.v2 is not None:
        usage = _int(dirs.v2 / "memory.current")
        inactive = _keyed(_read(dirs.v2 / "memory.stat")).get("inactive_file", 0)
        limit = _int(dirs.v2 / "memory.max")
    else:
        return 0, 0
    used = usage - inactive if inactive < usage else usage
    return used, 0 if limit >= UNLIMITED else limit


def _pids(dirs: CgroupDirs) -> int:
    if "pids" in dirs.v1:
        return _int(dirs.v1["pids"] / "pids.current")
    if dirs.v2 is not None:
        return _int(dirs.v2 / "pids.current")
    return 0


def _block(dirs: CgroupDirs) -> tuple[int, int]:
    read = write = 0
    if "blkio" in dirs.v1:
        base = dirs.v1["blkio"]
        # the recursive file counts the cgroups below too (runc makes none; cheap anyway)
        text = (_read(base / "blkio.throttle.io_service_bytes_recursive")
                or _read(base / "blkio.throttle.io_service_bytes"))
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[1] == "Read":
                read += int(fields[2])
            elif len(fields) == 3 and fields[1] == "Write":
                write += int(fields[2])
    elif dirs.v2 is not None:
        for line in _read(dirs.v2 / "io.stat").splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    write += int(value)
    return read, write


@cache
def _own_netns() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _net(pid: int) -> tuple[int, int] | None:
    """(received, sent) bytes on every interface but loopback; None when the
    process shares the daemon's network namespace (the host's figures are no
    container's)."""
    if os.stat(f"/proc/{pid}/ns/net").st_ino == _own_netns():
        return None
    rx = tx = 0
    with open(f"/proc/{pid}/net/dev") as dev:
        for line in dev.readlines()[2:]:
            name, _, counters = line.partition(":")
            if name.strip() == "lo":
                continue
            fields = counters.split()
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx
