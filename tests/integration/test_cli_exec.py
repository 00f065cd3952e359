"""pyctr exec, the real binary, against the real daemon (issue 14)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import Daemon

from integration.cli_support import Terminal, ok, ps_all, pyctr

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture
def web(daemon: Daemon) -> Iterator[tuple[str, str]]:
    """(bus address, name) of a running container, removed after the test."""
    address = daemon.bus_address
    name = "exec-web"
    ok(address, "run", "-d", "--name", name, "busybox", "sleep", "1000")
    yield address, name
    ok(address, "rm", "-f", name)


def test_output_and_exit_status(web: tuple[str, str]) -> None:
    address, name = web
    result = pyctr(address, "exec", name, "sh", "-c", "echo hi; exit 3")
    assert (result.returncode, result.stdout) == (3, "hi\n"), result.stderr
    assert ok(address, "exec", "-e", "A=b", "-w", "/tmp", "-u", "65534", name,
              "sh", "-c", "echo $A $(pwd) $(id -u)") == "b /tmp 65534\n"


def test_podman_exit_statuses(web: tuple[str, str]) -> None:
    address, name = web
    assert pyctr(address, "exec", name, "no-such-command").returncode == 127
    assert pyctr(address, "exec", name, "/etc/passwd").returncode == 126
    missing = pyctr(address, "exec", "no-such-container", "true")
    assert missing.returncode == 125 and "no-such-container" in missing.stderr
    ok(address, "pause", name)
    try:
        paused = pyctr(address, "exec", name, "true")
        assert paused.returncode == 125 and "paused" in paused.stderr, paused.stderr
    finally:
        ok(address, "unpause", name)


def test_piped_stdin(web: tuple[str, str]) -> None:
    address, name = web
    result = pyctr(address, "exec", "-i", name, "cat", input="hi\nthere\n")
    assert (result.returncode, result.stdout) == (0, "hi\nthere\n"), result.stderr


def test_detached_prints_the_session_id(web: tuple[str, str]) -> None:
    address, name = web
    out = ok(address, "exec", "-d", name, "sleep", "1000").strip()
    assert HEX64.match(out), out
    (container,) = [c for c in ps_all(address) if c["Names"] == [name]]
    inspected = ok(address, "inspect", name)
    assert out in inspected and container["State"] == "running"


def test_it_is_an_interactive_terminal_following_resizes(web: tuple[str, str]) -> None:
    address, name = web
    term = Terminal(address, "exec", "-it", name, "sh", rows=30, cols=100)
    term.wait_raw()
    term.type(b"stty size; echo hel''lo\r")
    term.expect(b"30 100\r\nhello\r\n")
    term.resize(40, 120)  # SIGWINCH to pyctr: it resizes the session's terminal
    term.type(b"stty size\r")
    term.expect(b"40 120\r\n")
    term.type(b"exit 5\r")
    assert term.wait() == 5


def test_it_detach_keys_leave_the_command_running(web: tuple[str, str]) -> None:
    address, name = web
    term = Terminal(address, "exec", "-it", name, "sh")
    term.wait_raw()
    term.type(b"echo rea''dy\r")
    term.expect(b"ready\r\n")
    term.type(b"\x10\x11")  # ctrl-p ctrl-q
    assert term.wait() == 0
    out = ok(address, "exec", name, "ps")
    assert any(line.split()[-1:] == ["sh"] for line in out.splitlines()), out  # still runs
