"""Fixtures of the integration suite: a private bus, pyctrd on it, bus clients.

Everything runs for real: a private dbus-daemon, the pyctrd daemon as a
subprocess, runc and conmon, overlay mounts. Nothing in os.environ changes;
the bus address is handed explicitly to every client and subprocess.

- ``dbus_bus``      session: a private dbus-daemon (``BusDaemon``)
- ``busybox_tar``   session: the busybox root-filesystem tarball
- ``daemon``        session: pyctrd on ``dbus_bus`` with the image ``busybox``
- ``fresh_daemon``  function: a factory of pyctrds, each on its own bus and root,
                    for tests that stop or restart the daemon
- ``client_factory``/``bus``: dbus-fast clients with helpers (``Client``)

Synchronization is by bus signals, pidfds and replies; there are no sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import json
import os
import select
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from pyctrd.ops.options import encode_dbus

REPO = Path(__file__).resolve().parent.parent
PYCTRD = REPO / ".venv" / "bin" / "pyctrd"
MAKE_ROOTFS = REPO / "scripts" / "make-busybox-rootfs"
SUPPORT = Path(__file__).resolve().parent / "support"

BUS_NAME = "org.pyctrd1"
MANAGER_PATH = "/org/pyctrd1"
MANAGER = "org.pyctrd1.Manager"
CONTAINER = "org.pyctrd1.Container"
PROPERTIES = "org.freedesktop.DBus.Properties"
DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
ERROR = "org.pyctrd1.Error."

START_TIMEOUT = 30.0
# Exits 0 on SIGTERM; /ready tells the trap is set (see Client.run_cooperative).
COOPERATIVE = ["sh", "-c", "trap 'exit 0' TERM; touch /ready; while :; do sleep 0.1; done"]
STOP_TIMEOUT = 30.0

# CreateContainer options and their D-Bus types (shared/API.md); stop_signal is
# "s" or "u" depending on the Python type given.

# --------------------------------------------------------------------------
# small utilities


def run_coro(coro: Coroutine[Any, Any, Any], timeout: float = 120.0) -> Any:
    """Run a coroutine to completion from synchronous fixture code.

    A worker thread gets its own event loop, so this works whether or not the
    calling thread has a loop running.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout)


def unwrap(value: Any) -> Any:
    """Variants (nested in dicts and lists too) → plain Python values."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def wait_pid_gone(pid: int, timeout: float) -> bool:
    """Wait (without polling) until a process that need not be our child is gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def _unescape_mountinfo(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts_under(*dirs: Path) -> list[str]:
    """Mount points in /proc/self/mountinfo at or below any of ``dirs``."""
    prefixes = [str(d.resolve()) for d in dirs]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape_mountinfo(line.split()[4])
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                found.append(point)
    return found


def container_id(path: str) -> str:
    return path.rsplit("/", 1)[1]


def process_alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def runc_state(run_root: Path, cid: str) -> dict[str, Any] | None:
    """runc's own view of a container of the daemon with ``run_root``; None if unknown."""
    out = subprocess.run(["runc", f"--root={run_root / 'runtime'}", "state", cid],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        assert "does not exist" in out.stderr, out.stderr
        return None
    return dict(json.loads(out.stdout))


def leftovers(daemon: Daemon, ids: Iterable[str] = ()) -> list[str]:
    """What a daemon with no containers should not have left behind: mounts, conmon or
    runtime processes, runc state, storage and bundle dirs, exit files, and the
    cgroups (hence processes) of the containers ``ids``."""
    problems = []
    if found := mounts_under(daemon.root, daemon.run_root):
        problems.append(f"mounts: {found}")
    marker = str(daemon.run_root).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in (os.getpid(), daemon.pid):
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:  # conmon (-b bundle) and runc (--root) name the run root
            argv = cmdline.decode(errors="replace").replace("\0", " ")
            problems.append(f"process {proc.name}: {argv}")
    listed = subprocess.run(["runc", f"--root={daemon.run_root / 'runtime'}", "list", "-q"],
                            capture_output=True, text=True, timeout=30)
    if listed.stdout.strip():
        problems.append(f"runc still knows {listed.stdout.split()}")
    for directory in (daemon.root / "containers", daemon.run_root / "containers",
                      daemon.run_root / "exits", daemon.run_root / "sockets"):
        if directory.exists() and (entries := sorted(p.name for p in directory.iterdir())):
            problems.append(f"{directory}: {entries}")
    for cid in ids:
        cgroup = Path("/sys/fs/cgroup/pids/pyctrd") / cid
        if cgroup.exists():
            procs = (cgroup / "cgroup.procs").read_text().split()
            problems.append(f"cgroup {cgroup} with processes {procs}")
    return problems


# --------------------------------------------------------------------------
# plain async D-Bus helpers (used by fixtures and by Client)


async def dbus_call(bus: MessageBus, destination: str, path: str, interface: str,
                    member: str, signature: str = "", body: list | None = None,
                    fds: list[int] | None = None, timeout: float = 60.0) -> list:
    """One method call; the reply body, or DBusError for an error reply."""
    reply = await asyncio.wait_for(bus.call(Message(
        destination=destination, path=path, interface=interface, member=member,
        signature=signature, body=body or [], unix_fds=fds or [])), timeout)
    assert reply is not None
    if reply.message_type is MessageType.ERROR:
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        raise DBusError(reply.error_name, text, reply)
    return list(reply.body)


async def bus_driver(bus: MessageBus, member: str, signature: str = "",
                     body: list | None = None) -> list:
    return await dbus_call(bus, DBUS_NAME, DBUS_PATH, DBUS_NAME, member, signature, body)


async def wait_for_name(address: str, pid: int, timeout: float, name: str = BUS_NAME) -> str:
    """Wait until ``name`` (org.pyctrd1 by default) has an owner; its unique name.

    Subscribes to NameOwnerChanged first, then asks NameHasOwner, so the
    moment cannot slip between the two. A pidfd ends the wait early if the
    process ``pid`` that should take the name dies instead.
    """
    bus = await MessageBus(bus_address=address).connect()
    loop = asyncio.get_running_loop()
    owned = asyncio.Event()
    died = asyncio.Event()

    def on_message(msg: Message) -> None:
        if (msg.message_type is MessageType.SIGNAL and msg.member == "NameOwnerChanged"
                and msg.body[0] == name and msg.body[2]):
            owned.set()

    bus.add_message_handler(on_message)
    pidfd = os.pidfd_open(pid)
    loop.add_reader(pidfd, died.set)
    try:
        await bus_driver(bus, "AddMatch", "s", [
            f"type='signal',sender='{DBUS_NAME}',member='NameOwnerChanged',arg0='{name}'"])
        (has_owner,) = await bus_driver(bus, "NameHasOwner", "s", [name])
        if not has_owner:
            waits = [asyncio.ensure_future(owned.wait()), asyncio.ensure_future(died.wait())]
            try:
                await asyncio.wait(waits, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        (has_owner,) = await bus_driver(bus, "NameHasOwner", "s", [name])
        if not has_owner:
            raise RuntimeError(f"process {pid} exited before taking {name}" if died.is_set()
                               else f"{name} did not appear within {timeout:.0f} s")
        (owner,) = await bus_driver(bus, "GetNameOwner", "s", [name])
        return str(owner)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        bus.disconnect()


# --------------------------------------------------------------------------
# the private bus and the daemon


class BusDaemon:
    """A private dbus-daemon with the session configuration, on a socket of ours."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.socket = directory / "bus"
        out = subprocess.run(
            ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1",
             f"--address=unix:path={self.socket}"],
            capture_output=True, text=True, timeout=30, check=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        lines = out.stdout.split()
        self.address = lines[0]
        self.pid = int(lines[1])

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if not wait_pid_gone(self.pid, 10):
            os.kill(self.pid, signal.SIGKILL)
            wait_pid_gone(self.pid, 10)


class Daemon:
    """One pyctrd subprocess with its own root and run root."""

    def __init__(self, base: Path, bus_address: str) -> None:
        self.base = base
        self.root = base / "root"
        self.run_root = base / "run"
        self.bus_address = bus_address
        self.proc: subprocess.Popen[bytes] | None = None
        self.owner = ""
        self.image_id = ""
        self.image_path = ""
        self.starts = 0
        # Fault injection: a crash point (tests/support/crashing_pyctrd.py) for the
        # next start, and extra flags such as --runtime or --config.
        self.crash_at: str | None = None
        self.extra_args: list[str] = []
        for d in ("config", "data", "xdg-run"):
            (base / d).mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def log_path(self) -> Path:
        return self.base / f"daemon-{self.starts}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "DBUS_SESSION_BUS_ADDRESS": self.bus_address,
            "HOME": str(self.base),
            "XDG_CONFIG_HOME": str(self.base / "config"),
            "XDG_DATA_HOME": str(self.base / "data"),
            "XDG_RUNTIME_DIR": str(self.base / "xdg-run"),
            "LANG": "C.UTF-8",
        }

    def argv(self) -> list[str]:
        args = ["--bus", "session", "--root", str(self.root), "--run-root", str(self.run_root),
                "--log-level", "debug", *self.extra_args]
        if self.crash_at:
            return [str(PYCTRD.with_name("python")), str(SUPPORT / "crashing_pyctrd.py"),
                    self.crash_at, *args]
        return [str(PYCTRD), *args]

    def wait_crashed(self, timeout: float = STOP_TIMEOUT) -> None:
        """Wait for the daemon to die of its crash point's SIGKILL."""
        assert self.proc is not None
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"pyctrd did not crash at {self.crash_at}\n"
                                 f"--- daemon log ---\n{self.log_tail()}") from None
        assert status == -signal.SIGKILL, f"pyctrd exited with {status}\n{self.log_tail()}"

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with open(self.log_path, "wb") as log:
            # cwd: its own directory, so that anything it (or conmon) drops in
            # its working directory is seen by the tests and not left in the repo
            self.proc = subprocess.Popen(self.argv(), env=self.env(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, cwd=self.base)
        try:
            self.owner = run_coro(wait_for_name(self.bus_address, self.proc.pid,
                                                START_TIMEOUT))
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n--- daemon log ---\n{self.log_tail()}") from err

    def import_image(self, tarball: Path, reference: str) -> tuple[str, str]:
        async def go() -> tuple[str, str]:
            bus = await MessageBus(bus_address=self.bus_address,
                                   negotiate_unix_fd=True).connect()
            fd = os.open(tarball, os.O_RDONLY | os.O_CLOEXEC)
            try:
                image_id, path = await dbus_call(bus, BUS_NAME, MANAGER_PATH, MANAGER,
                                                 "ImportImage", "hs", [0, reference], [fd])
                return str(image_id), str(path)
            finally:
                os.close(fd)
                bus.disconnect()

        return run_coro(go())

    def sigterm(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the daemon; its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"pyctrd did not exit within {timeout:.0f} s of SIGTERM\n"
                                 f"--- daemon log ---\n{self.log_tail()}") from None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def remove_all_containers(self) -> list[str]:
        """RemoveContainer(force) every container; the names removed."""

        async def go() -> list[str]:
            bus = await MessageBus(bus_address=self.bus_address).connect()
            try:
                (containers,) = await dbus_call(bus, BUS_NAME, MANAGER_PATH, MANAGER,
                                                "ListContainers")
                names = []
                for cid, name, _image, _state, _path in containers:
                    await dbus_call(bus, BUS_NAME, MANAGER_PATH, MANAGER,
                                    "RemoveContainer", "sb", [cid, True])
                    names.append(name)
                return names
            finally:
                bus.disconnect()

        return run_coro(go())

    def shutdown(self) -> None:
        """Remove every container, SIGTERM, and fail loudly on anything left."""
        problems = []
        if self.running():
            try:
                self.remove_all_containers()
            except Exception as err:  # report, but still stop the daemon
                problems.append(f"removing the containers left failed: {err!r}")
            status = self.sigterm()
            if status != 0:
                problems.append(f"pyctrd exited with status {status} on SIGTERM")
        leaked = mounts_under(self.root, self.run_root)
        if leaked:
            problems.append("mounts left under the daemon's root: " + ", ".join(leaked))
            for point in sorted(leaked, key=len, reverse=True):
                subprocess.run(["umount", "-l", point], check=False)
        if problems:
            raise AssertionError("; ".join(problems) + f"\n--- daemon log ---\n"
                                 f"{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------
# clients


class SignalRecorder:
    """Every signal from pyctrd that reaches one client connection, in order."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.rule = f"type='signal',sender='{BUS_NAME}'"
        self.sender = ""
        self.signals: list[Message] = []
        self._wakeups: set[asyncio.Event] = set()

    async def start(self) -> SignalRecorder:
        (self.sender,) = await bus_driver(self.client.bus, "GetNameOwner", "s", [BUS_NAME])
        self.client.bus.add_message_handler(self._on_message)
        await bus_driver(self.client.bus, "AddMatch", "s", [self.rule])
        return self

    async def stop(self) -> None:
        self.client.bus.remove_message_handler(self._on_message)
        if self.client.bus.connected:
            with contextlib.suppress(DBusError):
                await bus_driver(self.client.bus, "RemoveMatch", "s", [self.rule])

    def _on_message(self, msg: Message) -> None:
        if msg.message_type is MessageType.SIGNAL and msg.sender == self.sender:
            self.signals.append(msg)
            for wakeup in self._wakeups:
                wakeup.set()

    async def wait_for(self, predicate: Callable[[Message], bool],
                       timeout: float = 10.0) -> Message:
        """The first recorded signal (earlier ones included) that satisfies ``predicate``."""
        wakeup = asyncio.Event()
        self._wakeups.add(wakeup)
        seen = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while seen < len(self.signals):
                        msg = self.signals[seen]
                        seen += 1
                        if predicate(msg):
                            return msg
                    wakeup.clear()
                    await wakeup.wait()
        except TimeoutError:
            raise AssertionError(
                f"no matching signal within {timeout} s; recorded "
                f"{[(m.path, m.member) for m in self.signals][-20:]}") from None
        finally:
            self._wakeups.discard(wakeup)

    def select(self, member: str | None = None, path: str | None = None,
               interface: str | None = None) -> list[Message]:
        return [m for m in self.signals
                if (member is None or m.member == member)
                and (path is None or m.path == path)
                and (interface is None or m.interface == interface)]

    def changes(self, path: str, iface: str = CONTAINER) -> list[dict[str, Any]]:
        """The changed values of every PropertiesChanged of ``iface`` on ``path``."""
        return [unwrap(m.body[1]) for m in self.select("PropertiesChanged", path)
                if m.body[0] == iface]

    async def wait_property(self, path: str, name: str, value: Any,
                            iface: str = CONTAINER, timeout: float = 10.0) -> Message:
        def match(m: Message) -> bool:
            return (m.member == "PropertiesChanged" and m.path == path
                    and m.body[0] == iface and name in m.body[1]
                    and unwrap(m.body[1][name]) == value)

        return await self.wait_for(match, timeout)


class Client:
    """One bus connection with helpers for pyctrd's API.

    Containers made with ``create`` are force-removed when the client closes,
    so tests that share the daemon leave nothing behind.
    """

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.created: list[str] = []
        self.imported: list[str] = []
        self.recorders: list[SignalRecorder] = []

    @classmethod
    async def connect(cls, address: str) -> Client:
        bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
        return cls(bus)

    async def close(self) -> None:
        problems = []
        if self.bus.connected:
            for path in reversed(self.created):
                try:
                    await self.manager("RemoveContainer", "sb", [container_id(path), True])
                except DBusError as err:
                    if err.type not in (ERROR + "NoSuchContainer",
                                        "org.freedesktop.DBus.Error.ServiceUnknown",
                                        "org.freedesktop.DBus.Error.NameHasNoOwner"):
                        problems.append(f"removing {path}: {err.type}: {err.text}")
            for image_id in reversed(self.imported):
                try:
                    await self.manager("RemoveImage", "sb", [image_id, True])
                except DBusError as err:
                    if err.type != ERROR + "NoSuchImage":
                        problems.append(f"removing image {image_id}: {err.type}: {err.text}")
            for recorder in self.recorders:
                await recorder.stop()
            self.bus.disconnect()
        assert not problems, "; ".join(problems)

    # calls

    async def call(self, path: str, iface: str, member: str, signature: str = "",
                   body: list | None = None, fds: list[int] | None = None,
                   timeout: float = 60.0) -> list:
        return await dbus_call(self.bus, BUS_NAME, path, iface, member, signature, body,
                               fds, timeout)

    async def manager(self, member: str, signature: str = "", body: list | None = None,
                      fds: list[int] | None = None) -> list:
        return await self.call(MANAGER_PATH, MANAGER, member, signature, body, fds)

    async def ctr(self, path: str, member: str, signature: str = "",
                  body: list | None = None, fds: list[int] | None = None,
                  timeout: float = 60.0) -> list:
        return await self.call(path, CONTAINER, member, signature, body, fds, timeout)

    async def driver(self, member: str, signature: str = "", body: list | None = None) -> list:
        return await bus_driver(self.bus, member, signature, body)

    async def get_property(self, path: str, iface: str, name: str) -> Any:
        (value,) = await self.call(path, PROPERTIES, "Get", "ss", [iface, name])
        return unwrap(value)

    async def get_all(self, path: str, iface: str) -> dict[str, Any]:
        (values,) = await self.call(path, PROPERTIES, "GetAll", "s", [iface])
        return unwrap(values)

    async def prop(self, path: str, name: str) -> Any:
        """A container property."""
        return await self.get_property(path, CONTAINER, name)

    async def state(self, path: str) -> str:
        return str(await self.prop(path, "State"))

    async def manager_prop(self, name: str) -> Any:
        return await self.get_property(MANAGER_PATH, MANAGER, name)

    async def fails(self, awaitable: Awaitable[Any]) -> DBusError:
        """The DBusError ``awaitable`` raises; AssertionError if it succeeds."""
        try:
            result = await awaitable
        except DBusError as err:
            return err
        raise AssertionError(f"expected a D-Bus error, got the reply {result!r}")

    # containers

    @staticmethod
    def options(**options: Any) -> dict[str, Variant]:
        wrapped: dict[str, Variant] = {}
        for key, value in options.items():
            # A test may pass a Variant to send a type the schema would not choose.
            wrapped[key] = value if isinstance(value, Variant) else Variant(
                *encode_dbus(key, value))
        return wrapped

    async def create(self, command: list[str], image: str = "busybox",
                     **options: Any) -> str:
        """CreateContainer; the object path. Removed (force) when the client closes.

        Network "none" unless asked: the default bridge costs every test a netavark
        setup and teardown (tests of networking pass network themselves)."""
        options.setdefault("network", "none")
        (path,) = await self.manager("CreateContainer", "sasa{sv}",
                                     [image, command, self.options(**options)])
        self.created.append(path)
        return str(path)

    async def run(self, command: list[str], **options: Any) -> str:
        """Create and Start; the path of the running container."""
        path = await self.create(command, **options)
        await self.ctr(path, "Start")
        return path

    async def run_cooperative(self, **options: Any) -> str:
        """Run a PID 1 that exits 0 on SIGTERM, once its trap is set.

        Until the shell has run `trap`, PID 1 has no handler and the kernel drops
        SIGTERM, so a Stop or Kill right after Start would meet SIGKILL's 137.
        """
        path = await self.run(COOPERATIVE, **options)
        ready = Path(await self.prop(path, "Mountpoint")) / "ready"
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.exists():  # written by the container: no event to wait on
            assert time.monotonic() < deadline, f"{ready} did not appear"
            await asyncio.sleep(0.01)
        return path

    async def import_image(self, archive: Path, reference: str) -> tuple[str, str]:
        """ImportImage from a file; (id, path). Removed (force) when the client closes."""
        fd = os.open(archive, os.O_RDONLY | os.O_CLOEXEC)
        try:
            image_id, path = await self.manager("ImportImage", "hs", [0, reference], [fd])
        finally:
            os.close(fd)
        self.imported.append(image_id)
        return str(image_id), str(path)

    async def recorder(self) -> SignalRecorder:
        recorder = await SignalRecorder(self).start()
        self.recorders.append(recorder)
        return recorder


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def dbus_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BusDaemon]:
    bus = BusDaemon(tmp_path_factory.mktemp("dbus"))
    yield bus
    bus.stop()


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("images") / "busybox.tar"
    subprocess.run([sys.executable, str(MAKE_ROOTFS), str(out)], check=True, timeout=60)
    assert out.stat().st_size > 100_000
    return out


@pytest.fixture(scope="session")
def make_variant_tar(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> Callable[[str], Path]:
    """The busybox tarball plus a marker file: the same rootfs, another image ID."""
    directory = tmp_path_factory.mktemp("variants")

    def make(tag: str) -> Path:
        out = directory / f"busybox-{tag}.tar"
        if not out.exists():
            with tarfile.open(busybox_tar) as src, \
                    tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
                for member in src.getmembers():
                    data = src.extractfile(member) if member.isfile() else None
                    dst.addfile(member, data)
                marker = f"{tag}\n".encode()
                info = tarfile.TarInfo(f"etc/variant-{tag}")
                info.size = len(marker)
                info.mode = 0o644
                dst.addfile(info, io.BytesIO(marker))
        return out

    return make


def _start_daemon(base: Path, bus_address: str, busybox_tar: Path) -> Daemon:
    daemon = Daemon(base, bus_address)
    daemon.start()
    try:
        daemon.image_id, daemon.image_path = daemon.import_image(busybox_tar, "busybox")
    except Exception:
        daemon.shutdown()
        raise
    return daemon


@pytest.fixture(scope="session")
def daemon(dbus_bus: BusDaemon, busybox_tar: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The shared pyctrd; tests must leave it as they found it."""
    d = _start_daemon(tmp_path_factory.mktemp("pyctrd"), dbus_bus.address, busybox_tar)
    yield d
    d.shutdown()


@pytest.fixture
def fresh_daemon(busybox_tar: Path, tmp_path: Path) -> Iterator[Callable[[], Daemon]]:
    """A factory of daemons of one's own (own bus, own root), shut down at the end."""
    made: list[tuple[BusDaemon, Daemon]] = []

    def make() -> Daemon:
        base = tmp_path / f"fresh{len(made)}"
        bus = BusDaemon(base / "dbus")
        try:
            d = _start_daemon(base, bus.address, busybox_tar)
        except Exception:
            bus.stop()
            raise
        made.append((bus, d))
        return d

    yield make
    errors = []
    for bus, d in reversed(made):
        try:
            d.shutdown()
        except AssertionError as err:
            errors.append(str(err))
        finally:
            bus.stop()
    assert not errors, "\n".join(errors)


@pytest.fixture
async def client_factory() -> Any:
    """``await client_factory(address)`` → a Client; all closed at the end."""
    clients: list[Client] = []

    async def make(address: str) -> Client:
        client = await Client.connect(address)
        clients.append(client)
        return client

    yield make
    errors = []
    for client in reversed(clients):
        try:
            await client.close()
        except AssertionError as err:
            errors.append(str(err))
    assert not errors, "\n".join(errors)


@pytest.fixture
async def bus(daemon: Daemon, client_factory: Any) -> Client:
    """A client of the shared daemon."""
    return await client_factory(daemon.bus_address)
