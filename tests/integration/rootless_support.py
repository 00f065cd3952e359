"""Real unprivileged users with their own session bus and their own pyctrd.

A test user is made with useradd (Debian's useradd grants subordinate ids in
/etc/subuid and /etc/subgid) and removed with userdel at the end. Its bus is a
dbus-daemon with the session configuration that also lets root connect, so
tests can use the conftest Client beside the user's own `pyctr --user`.

root's home is 0700 and the venv's interpreter lives there (HOST-FACTS):
the user runs Debian's /usr/bin/python3 (the same minor version) with the
venv's site-packages and the repository on PYTHONPATH, copied to a directory
the user can read when the originals are out of its reach.
"""

from __future__ import annotations

import atexit
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import REPO, run_coro, wait_pid_gone

SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow user="root"/>
    <allow user="{user}"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
START_TIMEOUT = 30.0
_code_dir: Path | None = None


def user_can_read(user: TestUser, path: Path) -> bool:
    return user.run(["test", "-r", str(path), "-a", "-x", str(path)]).returncode == 0


def python_path(user: TestUser) -> str:
    """PYTHONPATH for the user: the venv's packages and the repository."""
    global _code_dir
    site = Path(sysconfig.get_paths()["purelib"])
    if user_can_read(user, site) and user_can_read(user, REPO / "pyctrd"):
        return f"{site}:{REPO}"
    if _code_dir is None:
        _code_dir = Path(tempfile.mkdtemp(prefix="pyctrd-rootless-code-"))
        atexit.register(shutil.rmtree, _code_dir, True)  # 160 MB: not left in /tmp
        _code_dir.chmod(0o755)
        shutil.copytree(site, _code_dir / "site", symlinks=True)
        shutil.copytree(REPO / "pyctrd", _code_dir / "repo" / "pyctrd",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for d in (_code_dir / "site", _code_dir / "repo"):
            subprocess.run(["chmod", "-R", "a+rX", str(d)], check=True)
    return f"{_code_dir / 'site'}:{_code_dir / 'repo'}"


class TestUser:
    """A real user for the length of a test (or a session)."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str, subids: bool = True) -> None:
        self.name = name
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        for path in (Path("/etc/subuid"), Path("/etc/subgid")):
            if not path.exists():  # useradd grants ranges only where the files exist
                path.touch(mode=0o644)
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True,
                       capture_output=True)
        entry = pwd.getpwnam(name)
        self.uid, self.gid, self.home = entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)
        has = self.subid_lines()
        if subids and not has:
            start = self._free_range()
            span = f"{start}-{start + 65535}"
            subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, name],
                           check=True, capture_output=True)
        elif not subids:
            self._drop_subids()

    def subid_lines(self) -> list[str]:
        lines = []
        for path in (Path("/etc/subuid"), Path("/etc/subgid")):
            if path.exists():
                lines += [line for line in path.read_text().splitlines()
                          if line.split(":")[0] in (self.name, str(self.uid))]
        return lines

    def _drop_subids(self) -> None:
        for path in (Path("/etc/subuid"), Path("/etc/subgid")):
            if path.exists():
                kept = [line for line in path.read_text().splitlines()
                        if line.split(":")[0] not in (self.name, str(self.uid))]
                path.write_text("".join(f"{line}\n" for line in kept))

    @staticmethod
    def _free_range() -> int:
        used = [0]
        for path in (Path("/etc/subuid"), Path("/etc/subgid")):
            if path.exists():
                for line in path.read_text().splitlines():
                    with contextlib.suppress(ValueError, IndexError):
                        _, start, count = line.split(":")
                        used.append(int(start) + int(count))
        return max(max(used), 1_000_000)

    def argv(self, argv: list[str]) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--reset-env", "--", *argv]

    def run(self, argv: list[str], env: dict[str, str] | None = None,
            timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        full = self.argv(["env", *(f"{k}={v}" for k, v in (env or {}).items()), *argv])
        return subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                              check=False, **kwargs)

    def kill_all(self) -> None:
        """Every process of the user: daemon, pause process, conmons, containers' own
        processes run as subordinate ids and die with their pid namespace's init."""
        subprocess.run(["pkill", "-KILL", "-U", str(self.uid)], check=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["pgrep", "-U", str(self.uid)], capture_output=True,
                              check=False).returncode != 0:
                return
            time.sleep(0.05)

    def remove(self) -> None:
        self.kill_all()
        subprocess.run(["userdel", "-r", "-f", self.name], capture_output=True, check=False)
        self._drop_subids()


class UserSession:
    """A user's session bus and their own pyctrd, as a desktop session would have."""

    def __init__(self, user: TestUser, base: Path) -> None:
        self.user = user
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        os.chown(base, user.uid, user.gid)
        base.chmod(0o700)
        self.runtime_dir = base / "xdg-run"
        self.data_home = base / "xdg-data"
        self.config_home = base / "xdg-config"
        for d in (self.runtime_dir, self.data_home, self.config_home):
            d.mkdir(mode=0o700, exist_ok=True)
            os.chown(d, user.uid, user.gid)
        self.socket = self.runtime_dir / "bus"
        self.address = f"unix:path={self.socket}"
        self.bus_proc: subprocess.Popen[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / "pyctrd.log"
        self.python_path = python_path(user)
        self.extra_args: list[str] = []

    @property
    def root(self) -> Path:
        return self.data_home / "pyctrd"

    @property
    def run_root(self) -> Path:
        return self.runtime_dir / "pyctrd"

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.user.home), "USER": self.user.name, "LOGNAME": self.user.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "XDG_RUNTIME_DIR": str(self.runtime_dir), "XDG_DATA_HOME": str(self.data_home),
            "XDG_CONFIG_HOME": str(self.config_home),
            "DBUS_SESSION_BUS_ADDRESS": self.address, "PYTHONPATH": self.python_path,
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def start_bus(self) -> None:
        services = self.base / "services"
        services.mkdir(exist_ok=True)
        config = self.base / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=self.socket, services=services,
                                            user=self.user.name))
        config.chmod(0o644)
        self.bus_proc = subprocess.Popen(
            self.user.argv(["dbus-daemon", f"--config-file={config}", "--nofork",
                            "--print-address=1"]),
            stdout=subprocess.PIPE, text=True)
        assert self.bus_proc.stdout is not None
        line = self.bus_proc.stdout.readline()
        assert line.startswith("unix:"), "the user's dbus-daemon did not start"

    def daemon_argv(self) -> list[str]:
        return ["env", *(f"{k}={v}" for k, v in self.env().items()),
                str(SYSTEM_PYTHON), "-m", "pyctrd.daemon", "--bus", "session",
                "--log-level", "debug", *self.extra_args]

    def start(self) -> None:
        """Start the daemon and wait until it owns its name."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.user.argv(self.daemon_argv()), stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the user's pyctrd exited {self.proc.returncode}:\n"
                                     f"{self.log()}")
            if self.name_owned():
                return
            time.sleep(0.05)
        raise AssertionError(f"the user's pyctrd did not take its name:\n{self.log()}")

    def name_owned(self) -> bool:
        out = subprocess.run(
            ["dbus-send", f"--bus={self.address}", "--print-reply",
             "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
             "org.freedesktop.DBus.NameHasOwner", "string:org.pyctrd1"],
            capture_output=True, text=True, check=False, timeout=10)
        return "boolean true" in out.stdout

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def daemon_pid(self) -> int:
        """The daemon's own pid (setpriv execs env, env execs python: the same pid)."""
        return self.pid

    def pyctr(self, *args: str, input: str | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
        code = "import sys; sys.argv[0] = 'pyctr'; from pyctrd.cli.main import main; main()"
        return self.user.run([str(SYSTEM_PYTHON), "-c", code, "--user", *args],
                             env=self.env(), input=input, timeout=timeout)

    def ok(self, *args: str, input: str | None = None) -> str:
        done = self.pyctr(*args, input=input)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        wait_pid_gone(self.proc.pid, 10)

    def close(self) -> None:
        """Stop everything of this session; the user's processes included."""
        with contextlib.suppress(Exception):
            if self.proc is not None and self.proc.poll() is None:
                self.pyctr("rm", "-af", "-t", "0", timeout=60)
        self.stop()
        if self.bus_proc is not None:
            self.bus_proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.bus_proc.wait(10)
        self.user.kill_all()
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def running_session(user: TestUser, busybox_tar: Path, tag: str = "") -> Iterator[UserSession]:
    """The user's bus and daemon, with the busybox image imported by the user's
    own pyctr; closed (the user's processes too) at the end."""
    session = UserSession(user, Path(f"/tmp/pyctrd-rootless-{os.getpid()}-{tag or user.name}"))
    try:
        session.start_bus()
        session.start()
        image = session.base / "busybox.tar"
        shutil.copy(busybox_tar, image)
        os.chown(image, user.uid, user.gid)
        session.ok("image", "import", str(image), "busybox")
        yield session
    finally:
        session.close()


def client(session: UserSession) -> Any:
    """A conftest Client (as root) on the user's bus."""
    from conftest import Client
    return run_coro(Client.connect(session.address))
