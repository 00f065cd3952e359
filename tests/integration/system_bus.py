"""A private bus configured like Debian's system bus, and what runs on it.

- ``SystemBus``: dbus-daemon with a copy of /usr/share/dbus-1/system.conf
  whose listen address, service dirs and policy includes point at a
  directory of ours; its policy directory holds the project's
  dbus/org.pyctrd1.conf and polkit's own bus policy, so the name rules are
  the real ones. It runs as root without the setuid launch helper (which
  reads only the system-wide config), so it activates services itself.
- ``SystemDaemon``: conftest's Daemon, but ``--bus system`` on that bus (the
  polkit checks are on) with an empty config file of its own.
- ``Polkitd``: the real /usr/lib/polkit-1/polkitd, or python-dbusmock's
  polkitd template; both run as the polkitd user as on a real system.
- ``call_as``: method calls from another user, by tests/support/bus_call.py
  under setpriv.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    BUS_NAME,
    PYCTRD,
    REPO,
    SUPPORT,
    Daemon,
    bus_driver,
    run_coro,
    wait_for_name,
    wait_pid_gone,
)
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

SYSTEM_CONF = Path("/usr/share/dbus-1/system.conf")
POLKIT_BUS_POLICY = Path("/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf")
POLKITD = Path("/usr/lib/polkit-1/polkitd")
POLKIT_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
DOCTYPE = ('<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"\n'
           ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n')
# What the copy of system.conf loses: the real socket, pid file, user, helper,
# the host's service and policy dirs, and includes of host files.
REPLACED = ("listen", "pidfile", "user", "fork", "syslog", "servicehelper",
            "standard_system_servicedirs", "servicedir", "include", "includedir")
START_TIMEOUT = 30.0


def world_traversable_dir(prefix: str) -> Path:
    """A fresh directory under /tmp that other users may pass through to a socket.

    pytest's tmp_path lies under a 0700 directory, so a non-root client
    could not reach a bus socket there.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


class SystemBus:
    """dbus-daemon with Debian's system bus configuration, on a socket of ours."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "system_bus_socket"
        self.policy_dir = directory / "system.d"
        self.service_dir = directory / "system-services"
        self.log_path = directory / "dbus-daemon.log"
        self.address = f"unix:path={self.socket}"
        for d in (self.policy_dir, self.service_dir):
            d.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "dbus" / "org.pyctrd1.conf", self.policy_dir)
        shutil.copy(POLKIT_BUS_POLICY, self.policy_dir)
        self.config = directory / "system.conf"
        self.config.write_text(self._config_text())
        # dbus-daemon prints its address on a pipe once it listens. Services it
        # activates inherit its environment (so DBUS_SYSTEM_BUS_ADDRESS leads
        # them back here), its working directory and its stdout/stderr (the log).
        read_end, write_end = os.pipe()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["dbus-daemon", f"--config-file={self.config}", "--nofork",
                 f"--print-address={write_end}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=[write_end], start_new_session=True, cwd=directory,
                env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                     "LANG": "C.UTF-8", "DBUS_SYSTEM_BUS_ADDRESS": self.address})
        os.close(write_end)
        with os.fdopen(read_end) as r:
            printed = r.readline().strip()
        if not printed:
            self.proc.wait(10)
            raise RuntimeError(f"dbus-daemon did not start: {self.log_path.read_text()}")

    def _config_text(self) -> str:
        root = ET.parse(SYSTEM_CONF).getroot()
        assert root.findtext("type") == "system", "system.conf is not a system bus config"
        for tag in REPLACED:
            for element in root.findall(tag):
                root.remove(element)
        for tag, text in (("listen", self.address), ("servicedir", str(self.service_dir)),
                          ("includedir", str(self.policy_dir))):
            ET.SubElement(root, tag).text = text
        return DOCTYPE + ET.tostring(root, encoding="unicode")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SystemDaemon(Daemon):
    """pyctrd on a SystemBus: ``--bus system``, so every call is authorized."""

    def __init__(self, base: Path, bus_address: str) -> None:
        super().__init__(base, bus_address)
        self.config_file = base / "pyctrd.toml"  # not the host's /etc/pyctrd/pyctrd.toml
        self.config_file.write_text("")

    def env(self) -> dict[str, str]:
        return {**super().env(), "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address}

    def argv(self) -> list[str]:
        argv = super().argv()
        assert argv[0] == str(PYCTRD) and argv[1:3] == ["--bus", "session"], argv
        return [argv[0], "--bus", "system", "--config", str(self.config_file), *argv[3:]]


class Polkitd:
    """org.freedesktop.PolicyKit1 on a SystemBus: the real polkitd or dbusmock's."""

    def __init__(self, bus: SystemBus, mock: bool) -> None:
        self.bus = bus
        self.mock = mock
        self.log_path = bus.directory / ("polkitd-mock.log" if mock else "polkitd.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        if self.mock:
            # As polkitd: the bus policy lets only that user own the name.
            return ["setpriv", "--reuid=polkitd", "--regid=polkitd", "--clear-groups",
                    str(PYCTRD.with_name("python")), "-m", "dbusmock", "--system",
                    "--template", "polkitd"]
        return [str(POLKITD), "--no-debug"]  # starts as root, drops to polkitd itself

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                     "DBUS_SYSTEM_BUS_ADDRESS": self.bus.address, "LANG": "C.UTF-8"})
        try:
            run_coro(wait_for_name(self.bus.address, self.proc.pid, START_TIMEOUT,
                                   name=POLKIT_NAME))
        except RuntimeError as err:
            self.stop()
            raise RuntimeError(f"{err}\n{self.log_path.read_text(errors='replace')}") from err

    def stop(self) -> None:
        """Stop it and wait until its name is gone from the bus."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # The bus drops a dead connection's names before it answers anyone
        # else, so this reply is already after the name is gone.
        owned = run_coro(self._has_owner())
        assert not owned, f"{POLKIT_NAME} still has an owner after polkitd exited"

    async def _has_owner(self) -> bool:
        bus = await MessageBus(bus_address=self.bus.address).connect()
        try:
            (owned,) = await bus_driver(bus, "NameHasOwner", "s", [POLKIT_NAME])
            return bool(owned)
        finally:
            bus.disconnect()

    # dbusmock's control interface, called as root

    def mock_call(self, member: str, signature: str = "", body: list | None = None) -> Any:
        assert self.mock

        async def go() -> Any:
            bus = await MessageBus(bus_address=self.bus.address).connect()
            try:
                reply = await bus.call(Message(
                    destination=POLKIT_NAME, path=POLKIT_PATH, interface=MOCK_IFACE,
                    member=member, signature=signature, body=body or []))
                assert reply is not None
                if reply.message_type is MessageType.ERROR:
                    raise RuntimeError(f"dbusmock {member}: {reply.error_name} {reply.body}")
                return reply.body
            finally:
                bus.disconnect()

        return run_coro(go())

    def set_allowed(self, actions: list[str]) -> None:
        self.mock_call("SetAllowed", "as", [actions])

    def clear_calls(self) -> None:
        self.mock_call("ClearCalls")

    def check_calls(self) -> list[tuple[tuple[str, dict[str, Any]], str, dict[str, str], int]]:
        """(subject, action, details, flags) of each CheckAuthorization since clear_calls."""
        (calls,) = self.mock_call("GetMethodCalls", "s", ["CheckAuthorization"])
        found = []
        for _time, args in calls:
            subject, action, details, flags, _cancellation = (unwrap_mock(a) for a in args)
            found.append((tuple(subject), action, details, flags))
        return found


def unwrap_mock(value: Any) -> Any:
    """GetMethodCalls returns its arguments as variants, nested ones too."""
    if isinstance(value, Variant):
        return unwrap_mock(value.value)
    if isinstance(value, dict):
        return {k: unwrap_mock(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [unwrap_mock(v) for v in value]
    return value


def call_as(user: str | int, address: str, calls: list[dict[str, Any]],
            group: str | int | None = None) -> dict[str, Any]:
    """Run ``calls`` (see tests/support/bus_call.py) as ``user`` (with its groups)."""
    ids = ["--reuid", str(user)]
    if isinstance(user, int):
        ids += ["--regid", str(user if group is None else group), "--clear-groups"]
    else:
        ids += ["--regid", str(group or user), "--init-groups"]
    for spec in calls:
        spec.setdefault("destination", BUS_NAME)
    out = subprocess.run(
        ["setpriv", *ids, str(PYCTRD.with_name("python")), str(SUPPORT / "bus_call.py"),
         address],
        input=json.dumps(calls), capture_output=True, text=True, timeout=120, cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    if out.returncode != 0:
        raise AssertionError(f"bus_call.py as {user} failed ({out.returncode}):\n{out.stderr}")
    return dict(json.loads(out.stdout))


@contextlib.contextmanager
def polkit_system(name: str, daemon_base: Path | None, busybox_tar: Path, *, mock: bool
                  ) -> Iterator[tuple[SystemBus, Polkitd, SystemDaemon]]:
    """A system-like bus in a new world-traversable directory /tmp/pyctrd-NAME-*
    with polkitd (the dbusmock template or the real one) and a `--bus system`
    pyctrd (its state in ``daemon_base``, or in that directory) holding the
    busybox image; all stopped, and the directory removed, at the end. Skips the
    test where other users cannot run this checkout's venv (they call the bus,
    and the mock polkitd runs as the polkitd user)."""
    if reason := venv_usable_by_others():
        pytest.skip(reason)
    directory = world_traversable_dir(f"pyctrd-{name}-")
    daemon_base = daemon_base or directory / "daemon"
    bus = SystemBus(directory)
    polkit = Polkitd(bus, mock=mock)
    daemon = None
    try:
        polkit.start()
        daemon = SystemDaemon(daemon_base, bus.address)
        daemon.start()
        daemon.image_id, daemon.image_path = daemon.import_image(busybox_tar, "busybox")
        yield bus, polkit, daemon
    finally:
        try:
            if daemon is not None:
                daemon.shutdown()
        finally:
            polkit.stop()
            bus.stop()
            shutil.rmtree(directory, ignore_errors=True)


@functools.cache
def venv_usable_by_others() -> str:
    """Why another user cannot run this checkout's venv python; "" if it can.

    The non-root callers and the mock polkitd (as the polkitd user) run it.
    """
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         str(PYCTRD.with_name("python")), "-c", "import dbus_fast, dbusmock"],
        capture_output=True, text=True, timeout=60, cwd="/", env={"PATH": "/usr/bin:/bin"})
    if out.returncode == 0:
        return ""
    return (f"user 65534 cannot run {PYCTRD.with_name('python')} (the checkout and its "
            f".venv must be readable by other users): {out.stderr.strip()[-300:]}")


def stop_pid(pid: int, timeout: float = 30.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_pid_gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        wait_pid_gone(pid, timeout)

