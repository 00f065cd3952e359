"""What the benchmarks share: a private bus, a pyctrd on it, D-Bus calls."""

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

REPO = Path(__file__).resolve().parent.parent
BUS = "org.pyctrd1"
MANAGER_PATH = "/org/pyctrd1"
MANAGER = "org.pyctrd1.Manager"
CONTAINER = "org.pyctrd1.Container"
# The baselines (raw runc, conmon+runc, podman --network none) have no network:
# pyctrd's containers here neither, now that the bridge is the default.
NO_NETWORK = {"network": Variant("s", "none")}


async def call(bus: MessageBus, path: str, iface: str, member: str, sig: str = "",
               body: list | None = None, fds: list[int] | None = None,
               destination: str = BUS) -> list:
    reply = await bus.call(Message(destination=destination, path=path, interface=iface,
                                   member=member, signature=sig, body=body or [],
                                   unix_fds=fds or []))
    if reply.message_type is MessageType.ERROR:
        raise RuntimeError(f"{member}: {reply.error_name}: {reply.body}")
    return list(reply.body)


async def timed_lifecycle(bus: MessageBus, options: dict) -> tuple[float, float]:
    """Create, Start, Wait and Remove /bin/true with ``options``; (the whole, Start
    alone) in seconds."""
    t0 = time.perf_counter()
    (path,) = await call(bus, MANAGER_PATH, MANAGER, "CreateContainer", "sasa{sv}",
                         ["busybox", ["/bin/true"], options])
    t1 = time.perf_counter()
    await call(bus, path, CONTAINER, "Start")
    t2 = time.perf_counter()
    (code,) = await call(bus, path, CONTAINER, "Wait")
    await call(bus, path, CONTAINER, "Remove", "b", [False])
    if code != 0:
        raise RuntimeError(f"/bin/true exited {code}")
    return time.perf_counter() - t0, t2 - t1


def make_busybox(work: Path) -> Path:
    tarball = work / "busybox.tar"
    subprocess.run([sys.executable, str(REPO / "scripts/make-busybox-rootfs"), str(tarball)],
                   check=True)
    return tarball


class PrivateBus:
    def __init__(self, work: Path) -> None:
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1",
             f"--address=unix:path={work}/bus"], stdout=subprocess.PIPE, text=True,
            stderr=subprocess.DEVNULL)
        self.address = self.proc.stdout.readline().strip()  # type: ignore[union-attr]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


class Daemon:
    def __init__(self, work: Path, address: str, extra_args: list[str] | None = None,
                 log_level: str = "warning", stderr: int | None = None) -> None:
        self.work = work
        self.address = address
        self.extra_args = extra_args or []
        self.log_level = log_level
        self.stderr = stderr
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start pyctrd; seconds from exec until it owns its name."""
        t0 = time.perf_counter()
        self._spawn()
        asyncio.run(self._wait_for_name())
        return time.perf_counter() - t0

    async def start_async(self) -> float:
        """start() for callers already inside an event loop."""
        t0 = time.perf_counter()
        self._spawn()
        await self._wait_for_name()
        return time.perf_counter() - t0

    def _spawn(self) -> None:
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.address}
        self.proc = subprocess.Popen(
            [str(REPO / ".venv/bin/pyctrd"), "--bus", "session", "--root",
             str(self.work / "root"), "--run-root", str(self.work / "run"),
             "--log-level", self.log_level, *self.extra_args], env=env, stderr=self.stderr)

    async def _wait_for_name(self) -> None:
        bus = await MessageBus(bus_address=self.address).connect()
        try:
            for _ in range(20000):
                (has,) = await call(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                    "NameHasOwner", "s", [BUS],
                                    destination="org.freedesktop.DBus")
                if has:
                    return
                await asyncio.sleep(0.002)
        finally:
            bus.disconnect()
        raise RuntimeError("pyctrd did not come up")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()


class RawClient:
    """A bare D-Bus connection that times replies without decoding them.

    Shows what the daemon costs, apart from the client library's unmarshalling
    (dbus-fast needs ~0.4 s to decode a 10 MB GetManagedObjects reply).
    """

    def __init__(self, address: str) -> None:
        import socket

        path = address.split("unix:path=", 1)[1].split(",", 1)[0]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode()
                          + b"\r\n")
        if not self._line().startswith(b"OK"):
            raise RuntimeError("D-Bus authentication failed")
        self.sock.sendall(b"BEGIN\r\n")
        self.serial = 0
        self.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello",
                  destination="org.freedesktop.DBus")

    def _line(self) -> bytes:
        buf = b""
        while not buf.endswith(b"\r\n"):
            buf += self.sock.recv(1)
        return buf

    def _exactly(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise RuntimeError("connection closed")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def call(self, path: str, iface: str, member: str, destination: str = BUS) -> int:
        """One call; the size of the reply, read whole but not decoded."""
        import struct

        self.serial += 1
        msg = Message(destination=destination, path=path, interface=iface, member=member,
                      serial=self.serial)
        self.sock.sendall(msg._marshall(False))
        while True:
            fixed = self._exactly(16)
            body_len, _serial, fields_len = struct.unpack("<III", fixed[4:16])
            rest = self._exactly((fields_len + 7) // 8 * 8 + body_len)
            if fixed[1] in (2, 3):  # a method return or error (signals may come first)
                return 16 + len(rest)


def tool_version(tool: str) -> str:
    """First line of `tool --version`, or "absent"."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def machine() -> str:
    """Host, CPU, kernel, Debian release, runtimes; and the load when the run began."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    debian = Path("/etc/debian_version").read_text().strip() if Path(
        "/etc/debian_version").exists() else "?"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = "; ".join(f"{t}: {tool_version(t)}" for t in ("runc", "crun", "conmon", "podman"))
    return (f"{os.uname().nodename}, {os.cpu_count()} cores ({cpu}), kernel "
            f"{os.uname().release}, Debian {debian}, Python {sys.version.split()[0]}; "
            f"{versions}; load average at start {load}")


def append_section(output: str | None, title: str, machine_text: str, lines: list[str],
                   note: str = "") -> None:
    """Append one run's results to RESULTS.md: title, exact command, machine, table."""
    if not output:
        return
    command = shlex.join([".venv/bin/python", *[_rel(a) for a in sys.argv]])
    text = (f"\n## {title}: {time.strftime('%Y-%m-%d %H:%M')}\n\n"
            f"Command: `{command}`\n\nMachine: {machine_text}\n\n")
    if note:
        text += f"Note: {note}\n\n"
    text += "\n".join(lines) + "\n"
    with open(output, "a") as f:
        f.write(text)


def _rel(arg: str) -> str:
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(REPO):
        return str(path.relative_to(REPO))
    return arg


def median_ms(values: list[float]) -> float:
    import statistics

    return statistics.median(values) * 1000
