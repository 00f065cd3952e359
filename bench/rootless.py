#!/usr/bin/env python3
"""A user's own (rootless) pyctrd beside root's pyctrd and rootless podman.

One lifecycle of /bin/true with network "none", side by side in one run,
interleaved round-robin so that a busy machine slows every column alike:

- root's pyctrd: CreateContainer+Start+Wait+Remove over a private bus from one
  long-lived client (as bench/lifecycle.py);
- the user's pyctrd: the same calls, made as root on the user's own session
  bus (its config lets root connect) to the user's `pyctrd --bus session`,
  which runs as the user in a user namespace of the user's subordinate ids.
  The client's uid does not change the daemon's work: this measures the daemon;
- rootless podman: `podman run --rm --network none IMAGE /bin/true` run as the
  same user, with a private config (runc, cgroupfs, file events, overlay with
  the user's own graphroot and runroot) and the same busybox image (`podman
  import`). On this host (hybrid cgroups, no systemd) the flags that work are
  probed and recorded;
- root's podman with bench/podman.py's private config, for reference.

The user ("pyctrd-bench") is made with useradd (Debian grants subordinate ids)
and removed at the end with its processes. Its daemon runs Debian's
/usr/bin/python3 with the venv's site-packages and the repository on
PYTHONPATH (root's pyenv interpreter is out of other users' reach).

Targets (issue 18): the user's pyctrd within 1.5x of root's; rootless podman
at least 3x slower than the user's pyctrd.

    .venv/bin/python bench/rootless.py [-n 30] [--with-podman] [--no-podman] [--user pyctrd-bench]
        [--output bench/RESULTS.md] [--note TEXT]
"""

import argparse
import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from common import (
    BUS,
    MANAGER,
    MANAGER_PATH,
    REPO,
    Daemon,
    PrivateBus,
    append_section,
    call,
    machine,
    make_busybox,
    median_ms,
)
from dbus_fast.aio import MessageBus
from lifecycle import PyctrdClient
from podman import (
    CONTAINERS_CONF,
    STORAGE_CONF,
    PrivatePodman,
    missing_note,
    podman_available,
)

WARMUP = 3
SYSTEM_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
TITLES = {"root": "root's pyctrd", "user": "user's pyctrd (rootless)",
          "podman-user": "rootless podman run --rm", "podman-root": "root's podman run --rm"}
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow user="{user}"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class BenchUser:
    """A real unprivileged user with subordinate ids, for the length of the run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.remove()  # a previous run that died half-way
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True,
                       capture_output=True)
        entry = pwd.getpwnam(name)
        self.uid, self.gid, self.home = entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)
        if not self._subid_lines():  # a useradd without SUB_UID_COUNT
            start = max([1_000_000, *self._range_ends()])
            span = f"{start}-{start + 65535}"
            subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, name],
                           check=True, capture_output=True)

    def _subid_lines(self) -> list[str]:
        return [line for path in (Path("/etc/subuid"), Path("/etc/subgid")) if path.exists()
                for line in path.read_text().splitlines() if line.split(":")[0] == self.name]

    @staticmethod
    def _range_ends() -> list[int]:
        ends = []
        for path in (Path("/etc/subuid"), Path("/etc/subgid")):
            for line in path.read_text().splitlines() if path.exists() else []:
                with contextlib.suppress(ValueError):
                    _, start, count = line.split(":")
                    ends.append(int(start) + int(count))
        return ends

    def argv(self, argv: list[str], env: dict[str, str]) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--reset-env", "--", "env", *(f"{k}={v}" for k, v in env.items()), *argv]

    def own(self, path: Path, mode: int = 0o700) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path

    def remove(self) -> None:
        """Kill every process of the user (daemon, pause process, conmons), then userdel."""
        try:
            uid = pwd.getpwnam(self.name).pw_uid
        except KeyError:
            return
        subprocess.run(["pkill", "-KILL", "-U", str(uid)], check=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and subprocess.run(
                ["pgrep", "-U", str(uid)], capture_output=True, check=False).returncode == 0:
            time.sleep(0.05)
        subprocess.run(["userdel", "-r", "-f", self.name], capture_output=True, check=False)
        for path in (Path("/etc/subuid"), Path("/etc/subgid")):
            if path.exists():  # userdel leaves them on some shadow versions
                kept = [line for line in path.read_text().splitlines()
                        if line.split(":")[0] not in (self.name, str(uid))]
                path.write_text("".join(f"{line}\n" for line in kept))


class UserDaemon:
    """The user's own session bus and their `pyctrd --bus session` on it."""

    def __init__(self, user: BenchUser, base: Path) -> None:
        self.user = user
        self.base = user.own(base)
        self.runtime_dir = user.own(base / "run")
        self.data_home = user.own(base / "data")
        self.address = f"unix:path={self.runtime_dir}/bus"
        self.bus_proc: subprocess.Popen[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / "pyctrd.log"

    def env(self) -> dict[str, str]:
        site = sysconfig.get_paths()["purelib"]
        return {"HOME": str(self.user.home), "USER": self.user.name,
                "LOGNAME": self.user.name, "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "XDG_RUNTIME_DIR": str(self.runtime_dir), "XDG_DATA_HOME": str(self.data_home),
                "DBUS_SESSION_BUS_ADDRESS": self.address, "PYTHONPATH": f"{site}:{REPO}",
                "PYTHONDONTWRITEBYTECODE": "1"}

    async def start(self) -> float:
        """Start bus and daemon; seconds from the daemon's exec until it owns its name."""
        config = self.base / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=self.runtime_dir / "bus",
                                            user=self.user.name))
        config.chmod(0o644)
        self.bus_proc = subprocess.Popen(
            self.user.argv(["dbus-daemon", f"--config-file={config}", "--nofork",
                            "--print-address=1"], {}),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.bus_proc.stdout is not None
        if not self.bus_proc.stdout.readline().startswith("unix:"):
            raise RuntimeError("the user's dbus-daemon did not start")
        t0 = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.user.argv([SYSTEM_PYTHON, "-m", "pyctrd.daemon", "--bus", "session",
                                "--log-level", "warning"], self.env()),
                stdout=log, stderr=subprocess.STDOUT)
        bus = await MessageBus(bus_address=self.address).connect()
        try:
            while self.proc.poll() is None:
                (has,) = await call(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                    "NameHasOwner", "s", [BUS],
                                    destination="org.freedesktop.DBus")
                if has:
                    return time.perf_counter() - t0
                await asyncio.sleep(0.005)
        finally:
            bus.disconnect()
        raise RuntimeError(f"the user's pyctrd exited {self.proc.returncode}: "
                           f"{self.log_path.read_text(errors='replace')[-1000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.bus_proc and self.bus_proc.poll() is None:
            self.bus_proc.terminate()
            self.bus_proc.wait()


class UserPodman:
    """podman run by the user with a private config under a short directory of its own
    (long paths made podman miss exits: bench/podman.py)."""

    def __init__(self, user: BenchUser) -> None:
        self.user = user
        self.dir = user.own(Path(tempfile.mkdtemp(prefix="pmu-", dir="/tmp")))
        for sub in ("tmp", "networks", "xdg"):
            user.own(self.dir / sub)
        (self.dir / "containers.conf").write_text(
            CONTAINERS_CONF.format(d=self.dir, runtime="runc"))
        # a rootless podman takes its graphroot from rootless_storage_path (else the
        # user's ~/.local/share/containers): a long path there made every run wait
        # 20 s for an exit it had missed, as for root's podman (bench/podman.py); so did
        # `--log-level debug` (its exit command is given --syslog; this host has none)
        (self.dir / "storage.conf").write_text(
            STORAGE_CONF.format(d=self.dir) + f'rootless_storage_path = "{self.dir}/graph"\n')
        (self.dir / "registries.conf").write_text("")
        for conf in ("containers.conf", "storage.conf", "registries.conf"):
            (self.dir / conf).chmod(0o644)
        self.env = {"HOME": str(user.home), "USER": user.name, "LOGNAME": user.name,
                    "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                    "XDG_RUNTIME_DIR": str(self.dir / "xdg"),
                    "CONTAINERS_CONF": str(self.dir / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(self.dir / "storage.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(self.dir / "registries.conf")}
        self.run_flags: list[str] = []

    def run(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run(self.user.argv(["podman", *args], self.env), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"podman {args[0]} failed: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def import_image(self, tarball: Path, name: str = "localhost/bench-busybox") -> str:
        # the blob-info cache of a rootless podman is under the user's home: no hiding needed
        mine = self.dir / "busybox.tar"
        shutil.copyfile(tarball, mine)
        mine.chmod(0o644)
        self.run("import", "--quiet", str(mine), name)
        return name

    def probe(self, image: str) -> str:
        """Find the `podman run` flags that work here; what was refused, for the report."""
        refused = []
        for flags in ([], ["--cgroups=disabled"]):
            try:
                self.run("run", "--rm", "--network", "none", *flags, image, "/bin/true")
            except RuntimeError as err:
                refused.append(f"{' '.join(flags) or 'no extra flags'}: "
                               f"{str(err).splitlines()[-1][:200]}")
                continue
            self.run_flags = flags
            return "; ".join(refused)
        raise RuntimeError("rootless podman failed every way tried: " + " | ".join(refused))

    def timed_run(self, image: str) -> float:
        t0 = time.perf_counter()
        self.run("run", "--rm", "--network", "none", *self.run_flags, image, "/bin/true")
        return time.perf_counter() - t0

    def cleanup(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.run("rm", "--all", "--force", timeout=300)

    def remove_dir(self) -> None:
        """After the user's processes are gone (its pause process holds podman's mounts)."""
        shutil.rmtree(self.dir, ignore_errors=True)


async def import_busybox(bus: MessageBus, tarball: Path) -> None:
    fd = os.open(tarball, os.O_RDONLY)
    try:
        await call(bus, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
    finally:
        os.close(fd)


async def measure(work: Path, tarball: Path, user: BenchUser, n: int,
                  use_podman: bool) -> dict:
    """All columns, interleaved: {"times", "phases", "failed", "notes"}."""
    root_bus = PrivateBus(work)
    root_daemon = Daemon(work, root_bus.address)
    user_daemon = UserDaemon(user, Path(tempfile.mkdtemp(prefix="pyctrd-rl-", dir="/tmp")))
    user_podman = UserPodman(user) if use_podman else None
    root_podman = PrivatePodman("runc") if use_podman else None
    times: dict[str, list[float]] = {}
    failed: dict[str, str] = {}
    notes: list[str] = []
    buses: list[MessageBus] = []
    try:
        await root_daemon.start_async()
        start_s = await user_daemon.start()
        notes.append(f"the user's daemon took {start_s * 1000:.0f} ms from exec to its bus "
                     "name (user namespace and pause process made then)")
        for address in (root_bus.address, user_daemon.address):
            bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
            await import_busybox(bus, tarball)
            buses.append(bus)
        clients = {"root": PyctrdClient(buses[0]), "user": PyctrdClient(buses[1])}
        columns: dict[str, Callable[[], Awaitable[float]]] = {
            "root": clients["root"].cycle, "user": clients["user"].cycle}

        async def sync(fn: Callable[[], float]) -> float:
            return fn()

        if user_podman:
            try:
                image = user_podman.import_image(tarball)
                refused = user_podman.probe(image)
                flags = " ".join(user_podman.run_flags) or "no extra flags"
                notes.append(f"rootless podman ran with {flags}"
                             + (f" (refused: {refused})" if refused else ""))
                columns["podman-user"] = lambda: sync(lambda: user_podman.timed_run(image))
            except (RuntimeError, subprocess.SubprocessError, OSError) as err:
                failed["podman-user"] = str(err).strip().splitlines()[-1][:300]
        if root_podman:
            root_image = root_podman.import_image(tarball)
            columns["podman-root"] = lambda: sync(lambda: root_podman.timed(
                "run", "--rm", "--network", "none", root_image, "/bin/true"))
        for i in range(n + WARMUP):
            if i == WARMUP:
                for c in clients.values():
                    c.phases.clear()
            for col, one in list(columns.items()):
                try:
                    elapsed = await one()
                except (RuntimeError, subprocess.SubprocessError, OSError) as err:
                    failed[col] = str(err).strip().splitlines()[-1][:300]
                    del columns[col]
                    print(f"{TITLES[col]} failed: {failed[col]}", flush=True)
                    continue
                if i >= WARMUP:
                    times.setdefault(col, []).append(elapsed)
        return {"times": times, "failed": failed, "notes": notes,
                "phases": {k: c.phases for k, c in clients.items()}}
    finally:
        for bus in buses:
            bus.disconnect()
        root_daemon.stop()
        root_bus.stop()
        user_daemon.stop()
        if user_podman:
            user_podman.cleanup()
        if root_podman:
            root_podman.cleanup()
        user.remove()  # kills the pause processes that hold the user's mounts
        shutil.rmtree(user_daemon.base, ignore_errors=True)
        if user_podman:
            user_podman.remove_dir()


def fmt_ms(values: list[float] | None) -> str:
    return f"{median_ms(values):.1f} ms" if values else "—"


def ratio(a: list[float] | None, b: list[float] | None) -> str:
    return f"{median_ms(a) / median_ms(b):.2f}x" if a and b else "—"


def verdict(value: list[float] | None, base: list[float] | None, limit: float,
            at_most: bool) -> str:
    if not value or not base:
        return "—"
    r = median_ms(value) / median_ms(base)
    return "met" if (r <= limit if at_most else r >= limit) else "missed"


def report(res: dict, n: int) -> list[str]:
    t = res["times"]
    lines = ["| N | root's pyctrd | user's pyctrd (rootless) | rootless podman run --rm "
             "| root's podman run --rm | user's ÷ root's pyctrd (target ≤ 1.5x) "
             "| rootless podman ÷ user's pyctrd (target ≥ 3x) |",
             "|---|---|---|---|---|---|---|",
             f"| {n} | {fmt_ms(t.get('root'))} | {fmt_ms(t.get('user'))} "
             f"| {fmt_ms(t.get('podman-user'))} | {fmt_ms(t.get('podman-root'))} "
             f"| {ratio(t.get('user'), t.get('root'))} "
             f"({verdict(t.get('user'), t.get('root'), 1.5, True)}) "
             f"| {ratio(t.get('podman-user'), t.get('user'))} "
             f"({verdict(t.get('podman-user'), t.get('user'), 3.0, False)}) |",
             "", "Phases (medians) of the pyctrd lifecycles, client-side:", "",
             "| daemon | Create | Start | Wait | Remove |", "|---|---|---|---|---|"]
    for key in ("root", "user"):
        p = res["phases"].get(key, {})
        lines.append(f"| {TITLES[key]} | "
                     + " | ".join(fmt_ms(p.get(k)) for k in ("Create", "Start", "Wait", "Remove"))
                     + " |")
    notes = [f"- {note}" for note in res["notes"]]
    notes += [f"- {TITLES[col]} failed: `{msg}`" for col, msg in res["failed"].items()]
    return lines + (["", *notes] if notes else [])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--user", default="pyctrd-bench", help="the user made (and removed) here")
    ap.add_argument("--with-podman", action="store_true",
                    help="apt-get install podman if it is missing")
    ap.add_argument("--no-podman", action="store_true", help="skip both podman columns")
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: it makes a user and starts root's daemon beside the user's")
    for tool in ("useradd", "newuidmap", "newgidmap", "setpriv", SYSTEM_PYTHON):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (newuidmap: Debian's uidmap)")
    machine_text = machine()
    use_podman = not args.no_podman and podman_available(args.with_podman) is not None
    if not use_podman and not args.no_podman:
        print(missing_note())
    # SIGTERM too runs the cleanup below (the user, its processes and files)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="pyctrd-rootless-"))
    user = BenchUser(args.user)
    try:
        tarball = make_busybox(work)
        res = asyncio.run(measure(work, tarball, user, args.n, use_podman))
    finally:
        user.remove()
        shutil.rmtree(work, ignore_errors=True)
    lines = report(res, args.n)
    print("\n".join(lines))
    note = args.note
    if not use_podman:
        note += " " + (missing_note() if not args.no_podman else "podman skipped (--no-podman)")
    append_section(args.output, "Rootless: a user's own pyctrd beside root's and rootless "
                   "podman", machine_text, lines, note.strip())


if __name__ == "__main__":
    main()
