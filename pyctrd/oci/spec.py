"""The OCI runtime spec (config.json) for a container."""

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctrd.oci import capabilities, rlimits, seccomp

# The default capability set podman grants.
DEFAULT_CAPS = list(capabilities.DEFAULT_CAPS)
SECCOMP_DEFAULT, SECCOMP_UNCONFINED = "default", "unconfined"
# /dev entries a privileged container does not get from the host (podman's list:
# runc makes its own pts, shm, mqueue and console).
_HOST_DEV_SKIP = {"pts", "shm", "fd", "mqueue", "console", "ptmx", ".lxc", ".lxd-mounts",
                  ".udev"}

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
    # None: podman's default set; the caller resolves cap_add/cap_drop/privileged.
    capabilities: list[str] | None = None
    privileged: bool = False
    seccomp: str = SECCOMP_DEFAULT
    # (name, soft, hard), already resolved; None: the defaults.
    ulimits: list[tuple[str, int, int]] | None = None
    # A network namespace made beforehand (a bridge network: core/networks.py), and
    # the files bind-mounted over /etc/resolv.conf, /etc/hosts, /etc/hostname.
    netns_path: str = ""
    etc_files: dict[str, str] = field(default_factory=dict)
    # A user's own daemon (rootless): no cgroup of our own to put it in.
    rootless: bool = False


def build_spec(inp: SpecInput) -> dict[str, Any]:
    caps = list(DEFAULT_CAPS if inp.capabilities is None else inp.capabilities)
    ulimits = rlimits.resolve([]) if inp.ulimits is None else inp.ulimits
    env = list(inp.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if inp.terminal and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if inp.netns_path:
        namespaces.append({"type": "network", "path": inp.netns_path})
    elif not inp.network_host:
        namespaces.append({"type": "network"})
    linux: dict[str, Any] = {
        "resources": _resources(inp),
        "namespaces": namespaces,
    }
    if not inp.rootless:
        # Rootless, runc ignores a cgroup it may not make only when none is named.
        linux["cgroupsPath"] = f"/pyctrd/{inp.cid}"
    if inp.privileged:
        # podman --privileged: the host's devices, nothing masked or read-only.
        linux["devices"] = host_devices()
    else:
        linux["maskedPaths"] = MASKED_PATHS
        linux["readonlyPaths"] = READONLY_PATHS
    if inp.seccomp == SECCOMP_DEFAULT:
        # Resolved against the bounding set, as containers-common does.
        linux["seccomp"] = seccomp.default_profile(caps)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": inp.terminal,
            "user": {"uid": inp.uid, "gid": inp.gid},
            "args": inp.args,
            "env": env,
            "cwd": inp.cwd or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": rlimits.spec_rlimits(ulimits),
            "noNewPrivileges": inp.no_new_privileges,
        },
        "root": {"path": str(inp.rootfs), "readonly": inp.read_only},
        "hostname": inp.hostname,
        "mounts": _mounts(inp),
        "annotations": inp.annotations,
        "linux": linux,
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
        _sys_mount(inp),
    ]
    # As podman: generated files, bind-mounted (a caller's mount of one wins).
    mine = {destination for _source, destination, _options in inp.mounts}
    for destination, source in inp.etc_files.items():
        if destination not in mine:
            mounts.append({"destination": destination, "type": "bind", "source": source,
                           "options": ["bind", "rprivate"]})
    for source, destination, options in inp.mounts:
        opts = [o for o in options.split(",") if o]
        if "bind" not in opts and "rbind" not in opts:
            opts.append("rbind")
        mounts.append({"destination": destination, "type": "bind", "source": source,
                       "options": opts})
    return mounts


def _sys_mount(inp: SpecInput) -> dict[str, Any]:
    ro_or_rw = "rw" if inp.privileged else "ro"
    if inp.rootless and inp.network_host:
        # sysfs may be mounted only by the owner of the network namespace: the
        # host's is not ours, so the host's /sys is bound, as podman does.
        return {"destination": "/sys", "type": "bind", "source": "/sys",
                "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev", ro_or_rw]}
    return {"destination": "/sys", "type": "sysfs", "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", ro_or_rw]}


def _resources(inp: SpecInput) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "devices": [{"allow": inp.privileged, "access": "rwm"}]}
    if inp.memory_limit:
        resources["memory"] = {"limit": inp.memory_limit}
    if inp.cpu_quota:
        resources["cpu"] = {"quota": int(inp.cpu_quota * CPU_PERIOD), "period": CPU_PERIOD}
    if inp.pids_limit:
        resources["pids"] = {"limit": inp.pids_limit}
    return resources


def host_devices(root: Path = Path("/dev"), max_entries: int = 10_000) -> list[dict[str, Any]]:
    """The host's character and block devices under ``root`` as linux.devices
    entries (a bounded, iterative walk; symlinks are not followed)."""
    found: list[dict[str, Any]] = []
    pending = [root]
    seen = 0
    while pending and seen < max_entries:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > max_entries:
                break
            if entry.name in _HOST_DEV_SKIP and directory == root:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                pending.append(Path(entry.path))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append({
                    "path": entry.path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                    "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                    "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                })
    found.sort(key=lambda d: str(d["path"]))
    return found
