"""Debian's podman with a private configuration, for side-by-side figures.

Everything podman writes goes under one temporary directory: containers.conf
and storage.conf (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), graphroot,
runroot, tmp_dir, file locks, the events log. The host's /etc/containers and
/var/lib/containers are not used, so a benchmark leaves the host as it was.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

# Hard open-files limit on this host is 20000 (no CAP_SYS_RESOURCE): podman's
# default ulimits (1048576) make every container fail to start.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"
log_driver = "k8s-file"

[network]
network_config_dir = "{d}/networks"

[engine]
runtime = "{runtime}"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
static_dir = "{d}/graph/libpod"
volume_path = "{d}/volumes"
lock_type = "file"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{d}/graph"
runroot = "{d}/run"
"""


def podman_available(install: bool) -> str | None:
    """podman's path; with `install`, apt-get installs Debian's podman first."""
    found = shutil.which("podman")
    if found or not install:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "podman"],
                   check=True, env=env)
    return shutil.which("podman")


def missing_note(tool: str = "podman") -> str:
    return f"{tool} is not installed: its column is skipped (--with-podman installs it)"


class PrivatePodman:
    def __init__(self, runtime: str = "runc") -> None:
        # A short path of its own: under a longer one (e.g. /tmp/pyctrd-lifecycle-*/runc/),
        # every `podman run` waited 20 s for an exit it had missed ("Exceeded conmon
        # timeout waiting for container to exit").
        self.dir = Path(tempfile.mkdtemp(prefix=f"pm-{runtime}-", dir="/tmp"))
        (self.dir / "tmp").mkdir()
        (self.dir / "networks").mkdir()
        (self.dir / "containers.conf").write_text(
            CONTAINERS_CONF.format(d=self.dir, runtime=runtime))
        (self.dir / "storage.conf").write_text(STORAGE_CONF.format(d=self.dir))
        self.env = {**os.environ,
                    "CONTAINERS_CONF": str(self.dir / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(self.dir / "storage.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(self.dir / "registries.conf")}
        (self.dir / "registries.conf").write_text("")

    def run(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run(["podman", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"podman {args[0]} failed: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def timed(self, *args: str) -> float:
        t0 = time.perf_counter()
        self.run(*args)
        elapsed = time.perf_counter() - t0
        self.settle()
        return elapsed

    def settle(self, limit: float = 3.0) -> None:
        """Untimed: wait for what the command left running to end. `run --rm`
        returns before conmon's exit command (`podman container cleanup`) is done;
        that tail would otherwise be timed in whichever column comes next."""
        mark = str(self.dir).encode()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and _processes_mentioning(mark):
            time.sleep(0.002)

    def import_image(self, tarball: Path, name: str = "localhost/bench-busybox") -> str:
        """`podman import`, in a mount namespace that hides the host's blob-info cache.

        containers/image records every blob it copies in
        /var/lib/containers/cache whatever the storage config says; a private
        directory bound over it (or over the nearest existing parent) keeps
        the host's copy untouched.
        """
        target = next(p for p in (Path("/var/lib/containers/cache"),
                                  Path("/var/lib/containers"), Path("/var/lib")) if p.is_dir())
        private = self.dir / "hidden" / target.name
        private.mkdir(parents=True)
        self.run_hidden(target, private, "import", "--quiet", str(tarball), name)
        return name

    def run_hidden(self, target: Path, private: Path, *args: str) -> None:
        script = 'mount --bind "$1" "$2" && shift 2 && exec podman "$@"'
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                               "sh", str(private), str(target), *args],
                              env=self.env, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"podman {args[0]} failed: {proc.stderr.strip()[-500:]}")

    def cleanup(self) -> None:
        """Remove everything, unmounting what podman left mounted under our dir."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.run("rm", "--all", "--force", timeout=600)
        for mountpoint in reversed(_mounts_under(self.dir)):
            subprocess.run(["umount", "-l", mountpoint], check=False,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _processes_mentioning(mark: bytes) -> bool:
    """Any process but ours with ``mark`` in its command line."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if mark in Path(entry.path, "cmdline").read_bytes():
                return True
    return False


def _mounts_under(top: Path) -> list[str]:
    prefix = str(top) + "/"
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4].replace("\\040", " ")
        if mountpoint.startswith(prefix) or mountpoint == str(top):
            out.append(mountpoint)
    return out
