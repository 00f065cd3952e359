"""Adapter over netavark (and through it aardvark-dns), as podman runs them.

netavark takes one JSON document per call (the container, its port mappings,
its networks and their definitions) and a namespace path; ``setup`` makes the
bridge, the veth pair, the addresses, NAT, port forwarding and the DNS
entries, ``teardown`` undoes them (and stops aardvark-dns with the last DNS
entry). Its config directory (aardvark-dns's state) is per boot.
"""

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pyctrd.errors import RuntimeFailed
from pyctrd.network import netns
from pyctrd.oci.spawn import spawn

log = logging.getLogger(__name__)

NETAVARK = "/usr/lib/podman/netavark"
AARDVARK = "/usr/lib/podman/aardvark-dns"
TIMEOUT = 30.0
# Every daemon on the host shares the default bridge and netavark's iptables chains:
# their netavark calls take turns (podman holds its own network lock likewise).
HOST_LOCK = Path("/run/lock/pyctrd-netavark.lock")


class Netavark:
    """``config_dir``: netavark's --config (aardvark-dns's files), per boot."""

    def __init__(self, config_dir: Path, binary: str = NETAVARK,
                 aardvark: str = AARDVARK, timeout: float = TIMEOUT,
                 host_lock: Path = HOST_LOCK) -> None:
        self.config_dir = config_dir
        self.binary = binary
        self.aardvark = aardvark
        self.timeout = timeout
        self.host_lock = host_lock

    def available(self) -> bool:
        return os.access(self.binary, os.X_OK)

    async def create_netns(self, path: Path) -> None:
        await asyncio.to_thread(netns.create, path)

    async def remove_netns(self, path: Path) -> None:
        await asyncio.to_thread(netns.remove, path)

    def netns_exists(self, path: Path) -> bool:
        return netns.is_mounted(path)

    async def setup(self, netns_path: Path, request: dict[str, Any]) -> dict[str, Any]:
        """Configure the namespace; netavark's answer ({network: {interfaces,
        dns_server_ips, dns_search_domains}})."""
        out = await self._run("setup", netns_path, request)
        try:
            answer = json.loads(out or b"{}")
        except ValueError as err:
            raise RuntimeFailed(f"netavark setup answered no JSON: {out[:200]!r}") from err
        if not isinstance(answer, dict):
            raise RuntimeFailed(f"netavark setup answered {out[:200]!r}")
        return answer

    async def teardown(self, netns_path: Path, request: dict[str, Any]) -> None:
        await self._run("teardown", netns_path, request)

    async def _run(self, verb: str, netns_path: Path, request: dict[str, Any]) -> bytes:
        if not self.available():
            raise RuntimeFailed(f"netavark is not installed at {self.binary} (Debian "
                                "package netavark); use network \"none\" or install it")
        self.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        taking = asyncio.ensure_future(asyncio.to_thread(self._lock_host))
        try:
            lock = await asyncio.shield(taking)
        except asyncio.CancelledError:
            # The thread may still get the lock: let go of it then, or every daemon
            # would wait for it forever.
            taking.add_done_callback(_release_when_taken)
            raise
        try:
            return await self._call(verb, netns_path, request)
        finally:
            if lock is not None:
                os.close(lock)  # releases the flock

    def _lock_host(self) -> int | None:
        """The host-wide lock (blocking, in a worker thread); None if it cannot be had
        (an unprivileged daemon: its own lock is then all there is)."""
        try:
            self.host_lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.host_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            log.debug("no host-wide netavark lock at %s: %s", self.host_lock, err)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            return None
        return fd

    async def _call(self, verb: str, netns_path: Path, request: dict[str, Any]) -> bytes:
        # Through a file (-f): no pipe to feed while it runs.
        with tempfile.NamedTemporaryFile("w", dir=self.config_dir, prefix=".req-",
                                         suffix=".json") as f:
            json.dump(request, f)
            f.flush()
            argv = [self.binary, "--config", str(self.config_dir), "--aardvark-binary",
                    self.aardvark, "--file", f.name, verb, str(netns_path)]
            try:
                child = spawn(argv)  # posix_spawn, exit seen by pidfd (oci/spawn.py)
            except OSError as err:
                raise RuntimeFailed(f"netavark {verb} could not be started: {err}") from err
            try:
                done = await asyncio.wait_for(child.communicate(), self.timeout)
            except (TimeoutError, asyncio.CancelledError) as exc:
                child.kill()
                with contextlib.suppress(Exception):
                    await asyncio.shield(child.wait())
                if isinstance(exc, TimeoutError):
                    raise RuntimeFailed(f"netavark {verb} did not finish within "
                                        f"{self.timeout:.0f} s") from None
                raise
            finally:
                child.close()
        if done.returncode != 0:
            message = _message(done.stdout, done.stderr)
            raise RuntimeFailed(f"netavark {verb} failed: {message}{_missing_firewall(message)}")
        return done.stdout


def _missing_firewall(message: str) -> str:
    # Debian's netavark (1.4) drives iptables, which it neither depends on nor
    # names when it is missing: its error is a bare ENOENT.
    if "No such file or directory" in message and shutil.which("iptables") is None:
        return " (netavark runs iptables, which is not installed: apt install iptables)"
    return ""


def _release_when_taken(taking: "asyncio.Future[int | None]") -> None:
    if not taking.cancelled() and taking.exception() is None:
        fd = taking.result()
        if fd is not None:
            os.close(fd)


def _message(out: bytes, err: bytes) -> str:
    """netavark reports {"error": "..."} on stdout; stderr has the rest."""
    try:
        parsed = json.loads(out)
        if isinstance(parsed, dict) and parsed.get("error"):
            return str(parsed["error"])
    except ValueError:
        pass
    text = (err or out).decode(errors="replace").strip()
    lines = [line for line in text.splitlines() if "failed to connect to syslog" not in line]
    return (lines[-1] if lines else "no message")[:2000]
