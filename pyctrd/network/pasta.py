"""Adapter over pasta (Debian's ``passt``): user-mode networking for a user's own
daemon, the one place that knows pasta's command line.

pasta joins a container's network namespace (made beforehand, netns.py),
configures its interface as a copy of the host's (address, routes: the
host's default-route interface) and carries its traffic through ordinary
sockets of the daemon's user: no privileges. Published ports are sockets
pasta binds on the host; DNS queries to ``DNS_FORWARD`` go to the host's
resolver (a loopback one too); the gateway address reaches the host's
loopback. Started without --foreground, pasta returns once it is set up
(ports bound) and keeps running as a daemon of its own with a pid file: a
daemon restarted after a crash finds it again there.
"""

import asyncio
import contextlib
import errno
import fcntl
import itertools
import logging
import os
import signal
import socket
import struct
from collections.abc import Iterable
from pathlib import Path

from pyctrd.errors import RuntimeFailed
from pyctrd.network import netns
from pyctrd.oci.spawn import spawn

log = logging.getLogger(__name__)

PASTA = "/usr/bin/pasta"
TUN = "/dev/net/tun"
DNS_FORWARD = "169.254.1.1"  # podman's choice: a link-local address no host uses
TIMEOUT = 30.0
STOP_GRACE = 2.0
_SIOCGIFADDR = 0x8915
_UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


class Pasta:
    def __init__(self, binary: str = PASTA, timeout: float = TIMEOUT) -> None:
        self.binary = binary
        self.timeout = timeout

    @property
    def dns_forward(self) -> str:
        return DNS_FORWARD

    def available(self) -> bool:
        return os.access(self.binary, os.X_OK)

    async def create_netns(self, path: Path) -> None:
        await asyncio.to_thread(netns.create, path)

    async def remove_netns(self, path: Path) -> None:
        await asyncio.to_thread(netns.remove, path)

    def netns_exists(self, path: Path) -> bool:
        return netns.is_mounted(path)

    def unprivileged_port_start(self) -> int:
        """The lowest host port an unprivileged user may bind (the sysctl)."""
        try:
            return int(_UNPRIVILEGED_PORT_START.read_text())
        except (OSError, ValueError):
            return 1024

    def host_route(self) -> tuple[str, str]:
        """(address, gateway) of the host's default-route interface: what pasta
        --config-net gives the container (("", "") without a default route)."""
        return default_route()

    async def start(self, netns_path: Path, ports: Iterable[tuple[str, int, int, str]],
                    pid_file: Path) -> int:
        """Run pasta for the namespace; its pid once set up (RuntimeFailed if not,
        with nothing left running)."""
        if not self.available():
            raise RuntimeFailed(f"pasta is not installed at {self.binary} (Debian package "
                                "passt); use network \"none\" or \"host\", or install it")
        if not os.access(TUN, os.R_OK | os.W_OK):
            # udev's default rules make it 0666; a host without udev leaves it 0600.
            raise RuntimeFailed(f"pasta needs {TUN}, which this user may not open (it "
                                "is 0666 where udev runs: ask the admin to chmod 0666 it); "
                                "use network \"none\" or \"host\" meanwhile")
        pid_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        argv = [self.binary, *arguments(netns_path, ports, pid_file)]
        child = spawn(argv)
        try:
            done = await asyncio.wait_for(child.communicate(), self.timeout)
        except BaseException:
            child.kill()
            await self.stop(pid_file, netns_path)  # a daemonized half, if any
            raise
        finally:
            child.close()
        if done.returncode != 0:
            await self.stop(pid_file, netns_path)
            raise RuntimeFailed(f"pasta failed: {_message(done.stderr or done.stdout)}")
        pid = _read_pid(pid_file)
        if pid is None:
            raise RuntimeFailed(f"pasta started but wrote no pid file at {pid_file}")
        return pid

    def running(self, pid_file: Path, netns_path: Path) -> bool:
        """The pasta of ``pid_file`` still runs for ``netns_path``."""
        pid = _read_pid(pid_file)
        return pid is not None and _is_ours(pid, netns_path)

    async def stop(self, pid_file: Path, netns_path: Path) -> None:
        """Stop the pasta of ``pid_file`` (if it still runs for ``netns_path``) and
        wait for it to be gone; delete the pid file. Repeatable."""
        pid = _read_pid(pid_file)
        if pid is not None:
            await _terminate(pid, netns_path)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()


def arguments(netns_path: Path, ports: Iterable[tuple[str, int, int, str]],
              pid_file: Path) -> list[str]:
    """pasta's command line: only the ports asked for are forwarded (pasta's
    default "auto" would forward every port the container binds), none from the
    container to the host's loopback (-T/-U: the gateway address reaches it)."""
    tcp = [_port_spec(p) for p in ports if p[3] == "tcp"]
    udp = [_port_spec(p) for p in ports if p[3] == "udp"]
    return ["--config-net", "--quiet", "--netns", str(netns_path),
            "--dns-forward", DNS_FORWARD, "--pid", str(pid_file),
            "-t", ",".join(tcp) or "none", "-u", ",".join(udp) or "none",
            "-T", "none", "-U", "none"]


def _port_spec(port: tuple[str, int, int, str]) -> str:
    host_ip, host_port, container_port, _ = port
    spec = f"{host_port}:{container_port}"
    return f"{host_ip}/{spec}" if host_ip else spec


def _message(output: bytes) -> str:
    lines = [line for line in output.decode(errors="replace").splitlines()
             if line.strip() and not line.startswith("Failed to send")]  # no syslog here
    return (lines[-1] if lines else "no message")[:2000]


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")]


def _is_ours(pid: int, netns_path: Path) -> bool:
    """A pid file outlives its process: only a pasta for this namespace is ours."""
    argv = _cmdline(pid)
    if not argv or not os.path.basename(argv[0]).startswith(("pasta", "passt")):
        return False
    return any(a == "--netns" and b == str(netns_path) for a, b in itertools.pairwise(argv))


async def _terminate(pid: int, netns_path: Path) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not _is_ours(pid, netns_path):  # checked after pinning it with the pidfd
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                signal.pidfd_send_signal(pidfd, sig)
            except ProcessLookupError:
                return
            if await _exited(pidfd, STOP_GRACE):
                return
        log.warning("pasta %d did not exit after SIGKILL", pid)
    finally:
        os.close(pidfd)


async def _exited(pidfd: int, timeout: float) -> bool:
    """The pidfd's process is gone within ``timeout`` s (not our child: no reaping)."""
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[bool] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(True)

    loop.add_reader(pidfd, readable)
    try:
        return await asyncio.wait_for(gone, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)


def default_route() -> tuple[str, str]:
    """(the address of the interface with the IPv4 default route, its gateway)."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return "", ""
    for line in lines:
        parts = line.split()
        if len(parts) >= 8 and parts[1] == "00000000" and parts[7] == "00000000":
            gateway = socket.inet_ntoa(int(parts[2], 16).to_bytes(4, "little"))
            return _interface_address(parts[0]), gateway
    return "", ""


def _interface_address(name: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR,
                                 struct.pack("256s", name.encode()[:15]))
        except OSError as err:
            if err.errno not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                log.debug("address of %s: %s", name, err)
            return ""
    return socket.inet_ntoa(answer[20:24])
