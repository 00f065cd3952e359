"""A user's own pyctrd networks its containers through pasta, for real.

A real unprivileged user (integration/rootless_support.py) and their daemon:
the default network is a pasta per container, published ports answer on the
host, DNS goes through pasta, what pasta cannot do (user networks, aliases) is
NotSupported, and nothing is left behind: no pasta process, no namespace mount
(looked for in the daemon's own mount namespace, the pause process's).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from conftest import wait_pid_gone
from support.registry import free_port

from integration.rootless_support import TestUser, UserSession, running_session

pytestmark = [
    pytest.mark.skipif(not Path("/usr/bin/newuidmap").exists(),
                       reason="needs Debian's uidmap (make test installs it)"),
    pytest.mark.skipif(not Path("/usr/bin/pasta").exists(),
                       reason="needs Debian's passt (make test installs it)"),
]

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-from-rootless > /www/index.html && "
         "exec httpd -f -p 80 -h /www"]
TIMEOUT = 30.0


@pytest.fixture(scope="module", autouse=True)
def tun_for_users() -> Iterator[None]:
    """pasta opens /dev/net/tun as the user: 0666 as udev's rules make it on Debian
    (this VM runs no udev and leaves it 0600)."""
    tun = Path("/dev/net/tun")
    mode = tun.stat().st_mode & 0o777
    tun.chmod(0o666)
    yield
    tun.chmod(mode)


@pytest.fixture(scope="module")
def user() -> Iterator[TestUser]:
    u = TestUser("pyctrd-rl-net")
    yield u
    u.remove()


@pytest.fixture(scope="module")
def session(user: TestUser, busybox_tar: Path) -> Iterator[UserSession]:
    with running_session(user, busybox_tar) as s:
        yield s


def fetch(host: str, port: int) -> str:
    """GET / from host:port, retried until the container's httpd answers (pasta
    accepts at once and resets while nothing listens inside)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as answer:
                return str(answer.read().decode())
        except OSError:
            assert time.monotonic() < deadline, f"nothing answered on {host}:{port}"
            time.sleep(0.05)


def pastas(user: TestUser) -> list[int]:
    """The user's pasta processes."""
    done = subprocess.run(["pgrep", "-U", str(user.uid), "-f", "pasta --config-net"],
                          capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()]


def netns_mounts(session: UserSession) -> list[str]:
    """The namespace mounts in the daemon's mount namespace (the pause process holds it)."""
    pause = (session.run_root / "pause.pid").read_text().strip()
    netns_dir = str(session.run_root / "netns")
    with open(f"/proc/{pause}/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(netns_dir)]


def assert_nothing_left(session: UserSession) -> None:
    assert pastas(session.user) == []
    assert netns_mounts(session) == []


def test_default_network_is_pasta_with_a_port_on_the_hosts_loopback(
        session: UserSession) -> None:
    port = free_port()
    cid = session.ok("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox",
                     *HTTPD).strip()
    try:
        assert "hello-from-rootless" in fetch("127.0.0.1", port)
        (shown,) = json.loads(session.ok("inspect", cid))
        assert shown["HostConfig"]["NetworkMode"] == "pasta"
        settings = shown["NetworkSettings"]
        assert list(settings["Networks"]) == ["pasta"]
        # pasta gives the container the host's own address
        inside = session.ok("exec", "web", "ip", "-4", "-o", "addr", "show", "scope",
                            "global").split()
        assert settings["IPAddress"] in [w.split("/")[0] for w in inside], inside
        assert session.ok("port", "web").strip() == f"80/tcp -> 0.0.0.0:{port}"
        assert len(pastas(session.user)) == 1
        assert len(netns_mounts(session)) == 1
    finally:
        session.ok("rm", "-f", "-t", "0", "web")
    assert_nothing_left(session)


def test_a_port_on_an_explicit_address(session: UserSession) -> None:
    port = free_port()
    session.ok("run", "-d", "--name", "web2", "-p", f"127.0.0.1:{port}:80", "busybox",
               *HTTPD)
    try:
        assert "hello-from-rootless" in fetch("127.0.0.1", port)
        with socket.socket() as sock:  # bound on that address alone
            sock.bind(("0.0.0.0", 0))
            sock.settimeout(5)
            host_address = session.ok("inspect", "--format",
                                      "{{.NetworkSettings.IPAddress}}", "web2").strip()
            assert sock.connect_ex((host_address, port)) != 0
        assert session.ok("port", "web2").strip() == f"80/tcp -> 127.0.0.1:{port}"
    finally:
        session.ok("rm", "-f", "-t", "0", "web2")
    assert_nothing_left(session)


def test_the_container_reaches_the_host_and_has_dns(session: UserSession) -> None:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello-from-the-host")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = session.ok("run", "--rm", "busybox", "sh", "-c",
                         "cat /etc/resolv.conf /etc/hostname; grep host.containers /etc/hosts;"
                         " wget -q -O - http://host.containers.internal:"
                         f"{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    # pasta forwards 169.254.1.1's queries to the host's resolver; its gateway
    # address is the host's loopback
    assert "nameserver 169.254.1.1" in out.splitlines()
    assert "host.containers.internal" in out
    assert out.rstrip().endswith("hello-from-the-host")
    assert_nothing_left(session)


def test_user_networks_and_aliases_are_not_supported(session: UserSession) -> None:
    done = session.pyctr("network", "create", "mine")
    assert done.returncode != 0 and "user networks" in done.stderr, done.stderr
    done = session.user.run(
        ["gdbus", "call", "--session", "-d", "org.pyctrd1", "-o", "/org/pyctrd1", "-m",
         "org.pyctrd1.Manager.CreateNetwork", "mine", "{}"], env=session.env())
    assert done.returncode != 0 and "org.pyctrd1.Error.NotSupported" in done.stderr
    assert "pasta" in done.stderr  # says what works instead
    done = session.user.run(
        ["gdbus", "call", "--session", "-d", "org.pyctrd1", "-o", "/org/pyctrd1", "-m",
         "org.pyctrd1.Manager.CreateContainer", "busybox", "['true']",
         "{'network': <'somenet'>}"], env=session.env())
    assert done.returncode != 0 and "org.pyctrd1.Error.NotSupported" in done.stderr
    done = session.pyctr("create", "--network-alias", "www", "busybox", "true")
    assert done.returncode != 0 and "network_aliases" in done.stderr, done.stderr
    # "pasta" by name is the default's mode
    session.ok("create", "--name", "named-pasta", "--network", "pasta", "busybox", "true")
    assert session.ok("inspect", "--format", "{{.HostConfig.NetworkMode}}",
                      "named-pasta").strip() == "pasta"
    session.ok("rm", "named-pasta")
    assert session.ok("ps", "-aq").strip() == ""


def test_a_taken_port_fails_start_and_leaves_nothing(session: UserSession) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = session.pyctr("run", "-d", "--name", "clash", "-p", f"127.0.0.1:{port}:80",
                             "busybox", *HTTPD)
        assert done.returncode != 0 and f"{port}" in done.stderr \
            and "in use" in done.stderr, done.stderr
        assert session.ok("inspect", "--format", "{{.State.Status}}",
                          "clash").strip() in ("created", "configured", "exited")
        assert_nothing_left(session)
        # one of the user's own containers holds it: the second fails likewise
    port = free_port()
    session.ok("run", "-d", "--name", "holder", "-p", f"{port}:80", "busybox", *HTTPD)
    try:
        session.ok("rm", "clash")
        done = session.pyctr("run", "-d", "--name", "clash", "-p", f"{port}:80",
                             "busybox", *HTTPD)
        assert done.returncode != 0 and "in use" in done.stderr, done.stderr
        assert len(pastas(session.user)) == 1
    finally:
        session.ok("rm", "-f", "-t", "0", "holder", "clash")
    assert_nothing_left(session)


def test_a_privileged_port_is_a_clear_error(session: UserSession) -> None:
    lowest = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if lowest <= 80:
        pytest.skip("this host lets every user bind port 80")
    done = session.pyctr("run", "--rm", "-p", "80:80", "busybox", "true", timeout=60)
    assert done.returncode != 0 and "ip_unprivileged_port_start" in done.stderr, done.stderr
    assert_nothing_left(session)


def test_a_tun_device_the_user_cannot_open_is_a_clear_error(session: UserSession) -> None:
    tun = Path("/dev/net/tun")
    tun.chmod(0o600)  # as on a host without udev
    try:
        done = session.pyctr("run", "--rm", "busybox", "true", timeout=60)
    finally:
        tun.chmod(0o666)
    assert done.returncode != 0 and "/dev/net/tun" in done.stderr \
        and "chmod 0666" in done.stderr, done.stderr
    assert_nothing_left(session)


def test_kill9_of_the_daemon_keeps_the_port_then_stop_cleans_up(
        session: UserSession) -> None:
    port = free_port()
    session.ok("run", "-d", "--name", "keeper", "-p", f"{port}:80", "busybox", *HTTPD)
    assert "hello-from-rootless" in fetch("127.0.0.1", port)
    (pasta,) = pastas(session.user)
    session.kill9()
    assert "hello-from-rootless" in fetch("127.0.0.1", port)  # without a daemon
    session.start()
    assert session.ok("inspect", "--format", "{{.State.Status}}", "keeper").strip() \
        == "running"
    assert "hello-from-rootless" in fetch("127.0.0.1", port)
    assert pastas(session.user) == [pasta]  # found again, not started twice
    session.ok("stop", "-t", "0", "keeper")
    assert_nothing_left(session)
    with socket.socket() as sock:  # the port is free again (past its TIME_WAITs)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen()
    session.ok("rm", "keeper")


def test_a_pasta_killed_while_the_daemon_is_down_is_replaced_at_restart(
        session: UserSession) -> None:
    port = free_port()
    session.ok("run", "-d", "--name", "orphan", "-p", f"{port}:80", "busybox", *HTTPD)
    assert "hello-from-rootless" in fetch("127.0.0.1", port)
    (pasta,) = pastas(session.user)
    session.kill9()
    os.kill(pasta, signal.SIGKILL)
    assert wait_pid_gone(pasta, TIMEOUT)
    session.start()
    assert "hello-from-rootless" in fetch("127.0.0.1", port)
    (revived,) = pastas(session.user)
    assert revived != pasta
    session.ok("rm", "-f", "-t", "0", "orphan")
    assert_nothing_left(session)


def test_a_container_exiting_while_the_daemon_is_down_is_cleaned_up_at_restart(
        session: UserSession) -> None:
    port = free_port()
    session.ok("run", "-d", "--name", "leaver", "-p", f"{port}:80", "busybox", "sleep", "2")
    pid = json.loads(session.ok("inspect", "leaver"))[0]["State"]["Pid"]
    assert len(pastas(session.user)) == 1
    session.kill9()
    assert wait_pid_gone(pid, TIMEOUT)
    session.start()
    assert session.ok("wait", "leaver").strip() == "0"
    deadline = time.monotonic() + TIMEOUT
    while pastas(session.user) or netns_mounts(session):  # cleanup runs after recovery
        assert time.monotonic() < deadline, "pasta or its namespace outlived the container"
        time.sleep(0.05)
    session.ok("rm", "leaver")
