"""The OCI runtime spec (config.json) for a container."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The default capability set podman grants.
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
    "CAP_SETUID", "CAP_SYS_CHROOT",
]

MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/fs/selinux", "/sys/dev/block",
]
READONLY_PATHS = [
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD = 100_000


@dataclass
class SpecInput:
    cid: str
    rootfs: Path
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    hostname: str
    shm_dir: Path
    terminal: bool = False
    read_only: bool = False
    network_host: bool = False
    mounts: list[tuple[str, str, str]] = field(default_factory=list)
    memory_limit: int = 0
    cpu_quota: float = 0.0
    pids_limit: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
    no_new_privileges: bool = False


def build_spec(inp: SpecInput) -> dict[str, Any]:
    caps = list(DEFAULT_CAPS)
    env = list(inp.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if inp.terminal and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if not inp.network_host:
        namespaces.append({"type": "network"})
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": inp.terminal,
            "user": {"uid": inp.uid, "gid": inp.gid},
            "args": inp.args,
            "env": env,
            "cwd": inp.cwd or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": inp.no_new_privileges,
        },
        "root": {"path": str(inp.rootfs), "readonly": inp.read_only},
        "hostname": inp.hostname,
        "mounts": _mounts(inp),
        "annotations": inp.annotations,
        "linux": {
            "cgroupsPath": f"/pyctrd/{inp.cid}",
            "resources": _resources(inp),
            "namespaces": namespaces,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }


def _mounts(inp: SpecInput) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "bind", "source": str(inp.shm_dir),
         "options": ["rbind", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]
    for source, destination, options in inp.mounts:
        opts = [o for o in options.split(",") if o]
        if "bind" not in opts and "rbind" not in opts:
            opts.append("rbind")
        mounts.append({"destination": destination, "type": "bind", "source": source,
                       "options": opts})
    return mounts


def _resources(inp: SpecInput) -> dict[str, Any]:
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if inp.memory_limit:
        resources["memory"] = {"limit": inp.memory_limit}
    if inp.cpu_quota:
        resources["cpu"] = {"quota": int(inp.cpu_quota * CPU_PERIOD), "period": CPU_PERIOD}
    if inp.pids_limit:
        resources["pids"] = {"limit": inp.pids_limit}
    return resources
