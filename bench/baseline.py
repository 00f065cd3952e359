"""What pyctrd is measured against: the OCI runtime driven without a daemon.

- `runtime run` of a bundle: the floor, no monitor at all;
- a conmon+runtime cycle: what pyctrd itself does per container, minus the
  daemon — conmon launched with the flags pyctrd/oci/conmon.py uses and the
  _OCI_SYNCPIPE sync pipe, `runtime start`, conmon's exit seen through a
  pidfd, the exit file read, `runtime delete`.

Both run on a plain extracted rootfs (no overlay mount, no /dev/shm mount),
which pyctrd does per container: that work is part of what pyctrd costs.
The spec is `runc spec`'s, unless a spec is given (pyctrd's own, with its
seccomp profile, masked paths and mounts: what the runtime itself costs for
pyctrd's containers, apart from the daemon).
"""

import itertools
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT = 30


@dataclass
class Bench:
    """A rootfs, a spec template and the runtime's state dirs, under `work`."""

    work: Path
    runtime: str  # path of runc or crun
    tarball: Path
    conmon: str = field(default_factory=lambda: shutil.which("conmon") or "/usr/bin/conmon")
    # a spec maker (rootfs, shm dir → config.json's dict); None: `runc spec`'s
    make_spec: Callable[[Path, Path], dict] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        name = self.name or Path(self.runtime).name
        self.dir = self.work / f"baseline-{name}"
        self.rootfs = self.dir / "rootfs"
        self.rootfs.mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(self.tarball), "-C", str(self.rootfs)], check=True)
        spec_dir = self.dir / "spec"
        spec_dir.mkdir()
        subprocess.run(["runc", "spec"], cwd=spec_dir, check=True)
        spec = json.loads((spec_dir / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["/bin/true"]
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        if self.make_spec is not None:
            shm = self.dir / "shm"
            shm.mkdir()
            spec = self.make_spec(self.rootfs, shm)
        self.spec = json.dumps(spec)
        self.root = self.dir / "state"  # the runtime's --root
        self.exits = self.dir / "exits"
        self.sockets = self.dir / "sockets"  # conmon fails silently if it is missing
        self.bundles = self.dir / "bundles"
        for d in (self.exits, self.sockets, self.bundles):
            d.mkdir()
        self.serial = itertools.count(1)  # next() is atomic: threads may share a Bench

    def _bundle(self, cid: str) -> Path:
        bundle = self.bundles / cid
        bundle.mkdir()
        spec = self.spec
        if self.make_spec is not None:
            # pyctrd's spec names a cgroup: one per container, as pyctrd gives
            # (concurrent cycles in one cgroup fail when one removes it)
            spec = spec.replace('"cgroupsPath": "/pyctrd/bench"',
                                f'"cgroupsPath": "/pyctrd-bench/{cid}"')
        (bundle / "config.json").write_text(spec)
        return bundle

    def runtime_run(self) -> float:
        """One `runtime run` of /bin/true; seconds."""
        cid = f"raw-{os.getpid()}-{next(self.serial)}"
        t0 = time.perf_counter()
        bundle = self._bundle(cid)
        proc = subprocess.run([self.runtime, f"--root={self.root}", "run", "--bundle",
                               str(bundle), cid], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=TIMEOUT)
        shutil.rmtree(bundle)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{self.runtime} run: {proc.stderr.decode().strip()}")
        return elapsed

    def conmon_cycle(self, phases: dict[str, list[float]] | None = None) -> float:
        """conmon create, runtime start, wait for conmon's exit, runtime delete; seconds."""
        cid = f"cm-{os.getpid()}-{next(self.serial)}"
        marks = [time.perf_counter()]
        bundle = self._bundle(cid)
        self._launch(cid, bundle)
        conmon_pid = int((bundle / "conmon.pid").read_text().strip())
        pidfd = os.pidfd_open(conmon_pid)
        marks.append(time.perf_counter())
        try:
            self._runtime("start", cid)
            marks.append(time.perf_counter())
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(TIMEOUT * 1000):
                raise RuntimeError(f"conmon {conmon_pid} did not exit")
        finally:
            os.close(pidfd)
        code = int((self.exits / cid).read_text().strip())
        marks.append(time.perf_counter())
        self._runtime("delete", "--force", cid)
        shutil.rmtree(bundle)
        (self.exits / cid).unlink()
        shutil.rmtree(self.sockets / cid, ignore_errors=True)  # conmon's attach socket dir
        marks.append(time.perf_counter())
        if code != 0:
            raise RuntimeError(f"/bin/true exited {code}")
        if phases is not None:
            for name, a, b in zip(("create", "start", "wait", "delete"), marks, marks[1:],
                                  strict=False):
                phases.setdefault(name, []).append(b - a)
        return marks[-1] - marks[0]

    def _launch(self, cid: str, bundle: Path) -> None:
        argv = [self.conmon, "--api-version", "1", "-c", cid, "-u", cid, "-n", cid,
                "-r", self.runtime, "-b", str(bundle), "-p", str(bundle / "pidfile"),
                "-P", str(bundle / "conmon.pid"), "-l", f"k8s-file:{bundle / 'ctr.log'}",
                "--exit-dir", str(self.exits), "--socket-dir-path", str(self.sockets),
                "--persist-dir", str(bundle), "--log-level", "error",
                "--runtime-arg", f"--root={self.root}"]
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        os.set_inheritable(write_end, True)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "_OCI_SYNCPIPE": str(write_end)}
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, pass_fds=(write_end,), env=env,
                                    cwd=bundle, start_new_session=True)
        finally:
            os.close(write_end)
        with os.fdopen(read_end, "rb") as sync:
            report = sync.read1(65536)  # conmon writes its {"data": PID} in one go
        _, stderr = proc.communicate(timeout=TIMEOUT)
        try:
            pid = int(json.loads(report)["data"])
        except (ValueError, KeyError):
            pid = -1
        if pid <= 0:
            raise RuntimeError(f"conmon: {report!r} {stderr.decode().strip()}")

    def _runtime(self, *args: str) -> None:
        proc = subprocess.run([self.runtime, f"--root={self.root}", *args],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.runtime} {args[0]}: {proc.stderr.decode().strip()}")
