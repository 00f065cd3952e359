"""pyctr run over Varlink (Create, OpenLog's descriptor, Start, Wait, Remove): the
output, exit codes and errors of the D-Bus path, and D-Bus when the socket
cannot serve. A run given a bus address where no bus is can only have gone
over Varlink; one given no socket only over D-Bus."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Daemon

from integration.cli_support import PYCTR, env, ok, ps_all, pyctr

TIMEOUT = 30.0
# stdout and stderr interleaved, a byte that is no UTF-8, an empty line, a last
# line without its newline
SCRIPT = r"echo out1; echo err1 >&2; printf 'bin\377\376x\n'; echo; echo err2 >&2; " \
         r"printf tail; exit 7"


@pytest.fixture
def sock(daemon: Daemon) -> str:
    return str(daemon.run_root / "io.pyctrd")


def no_bus(tmp_path: Path) -> str:
    return f"unix:path={tmp_path}/nobus"


def run_raw(address: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    out = subprocess.run([str(PYCTR), "--address", address, *args], capture_output=True,
                         timeout=TIMEOUT, env=env(), stdin=subprocess.DEVNULL)
    assert b"Traceback" not in out.stderr, out.stderr
    return out


@pytest.fixture
def left_alone(daemon: Daemon) -> Iterator[str]:
    """The shared daemon's bus address; containers a test made are removed after it."""
    address = daemon.bus_address
    before = {c["Id"] for c in ps_all(address)}
    yield address
    made = [c["Id"] for c in ps_all(address) if c["Id"] not in before]
    if made:
        ok(address, "rm", "-f", *made)


def test_output_and_exit_code_as_over_dbus(left_alone: str, sock: str, tmp_path: Path) -> None:
    over_varlink = run_raw(no_bus(tmp_path), "--varlink", sock, "run", "--rm", "busybox",
                           "sh", "-c", SCRIPT)
    over_dbus = run_raw(left_alone, "--varlink", "", "run", "--rm", "busybox",
                        "sh", "-c", SCRIPT)
    assert over_varlink.returncode == over_dbus.returncode == 7
    assert over_varlink.stdout == over_dbus.stdout == b"out1\nbin\xff\xfex\n\ntail\n"
    assert over_varlink.stderr == over_dbus.stderr == b"err1\nerr2\n"
    assert ps_all(left_alone) == []  # --rm left nothing, either way


def test_without_rm_the_container_stays_exited(left_alone: str, sock: str,
                                               tmp_path: Path) -> None:
    out = run_raw(no_bus(tmp_path), "--varlink", sock, "run", "--name", "vlrun-kept",
                  "-e", "GREETING=hello", "--network", "none", "busybox",
                  "sh", "-c", "echo $GREETING; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, b"hello\n", b"")
    (kept,) = [c for c in ps_all(left_alone) if c["Names"] == ["vlrun-kept"]]
    assert kept["State"] == "exited" and kept["ExitCode"] == 3


def test_volume_and_entrypoint_options_reach_the_container(left_alone: str, sock: str,
                                                           tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note").write_text("from the host\n")
    out = run_raw(no_bus(tmp_path), "--varlink", sock, "run", "--rm", "-v",
                  f"{shared}:/mnt:ro", "--entrypoint", "cat", "busybox", "/mnt/note")
    assert (out.returncode, out.stdout) == (0, b"from the host\n"), out.stderr


def test_replace_and_cidfile(left_alone: str, sock: str, tmp_path: Path) -> None:
    old = ok(left_alone, "run", "-d", "--name", "vlrun-replaced", "busybox", "sleep",
             "1000").strip()
    cidfile = tmp_path / "cid"
    out = run_raw(no_bus(tmp_path), "--varlink", sock, "run", "--replace", "--name",
                  "vlrun-replaced", "--cidfile", str(cidfile), "busybox", "echo", "new")
    assert (out.returncode, out.stdout, out.stderr) == (0, b"new\n", b"")
    (now,) = [c for c in ps_all(left_alone) if c["Names"] == ["vlrun-replaced"]]
    assert now["Id"] != old and cidfile.read_text() == now["Id"]
    # the file exists now: refused before anything is made, as over D-Bus
    again = pyctr(no_bus(tmp_path), "--varlink", sock, "run", "--cidfile", str(cidfile),
                  "busybox", "true")
    assert again.returncode == 125 and "container id file exists" in again.stderr
    assert len(ps_all(left_alone)) == 1


def test_name_conflict_is_the_dbus_error(left_alone: str, sock: str, tmp_path: Path) -> None:
    ok(left_alone, "create", "--name", "vlrun-taken", "busybox", "true")
    over_varlink = pyctr(no_bus(tmp_path), "--varlink", sock, "run", "--name", "vlrun-taken",
                         "busybox", "true")
    over_dbus = pyctr(left_alone, "--varlink", "", "run", "--name", "vlrun-taken",
                      "busybox", "true")
    assert over_varlink.returncode == over_dbus.returncode == 125
    assert over_varlink.stderr == over_dbus.stderr
    assert 'the container name "vlrun-taken" is already in use by ' in over_varlink.stderr
    assert [c["Names"] for c in ps_all(left_alone)] == [["vlrun-taken"]]


def test_errors_and_statuses_as_over_dbus(left_alone: str, sock: str, tmp_path: Path) -> None:
    for argv in (["--pull", "never", "no-such-image", "true"],  # 125, image not known
                 ["busybox", "/no/such/program"],  # 127
                 ["--rm", "busybox", "/etc"]):  # 126
        over_varlink = pyctr(no_bus(tmp_path), "--varlink", sock, "run", *argv)
        over_dbus = pyctr(left_alone, "--varlink", "", "run", *argv)
        assert over_varlink.returncode == over_dbus.returncode != 0, argv
        assert _masked(over_varlink.stderr) == _masked(over_dbus.stderr), argv
    assert [c for c in ps_all(left_alone) if c["Image"] == "no-such-image"] == []


def _masked(text: str) -> str:
    """A message without what differs between two runs: container IDs, the
    runtime's timestamps."""
    return re.sub(r'\b[0-9a-f]{12,64}\b', "ID", re.sub(r'time="[^"]*"', "time", text))


def test_detached_run_prints_the_id(left_alone: str, sock: str, tmp_path: Path) -> None:
    out = run_raw(no_bus(tmp_path), "--varlink", sock, "run", "-d", "busybox",
                  "sleep", "1000")
    assert out.returncode == 0, out.stderr
    cid = out.stdout.decode().strip()
    (found,) = [c for c in ps_all(left_alone) if c["Id"] == cid]
    assert found["State"] == "running"


def test_signals_reach_the_container(left_alone: str, sock: str, tmp_path: Path) -> None:
    script = "trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.1; done"
    proc = subprocess.Popen([str(PYCTR), "--address", no_bus(tmp_path), "--varlink", sock,
                             "run", "--rm", "busybox", "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 9
        assert proc.stdout.read() == b"got TERM\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert ps_all(left_alone) == []


def test_third_ctrl_c_stops_following_and_keeps_it(left_alone: str, sock: str,
                                                   tmp_path: Path) -> None:
    # PID 1 without a handler ignores SIGINT: the user wants the shell back
    proc = subprocess.Popen([str(PYCTR), "--address", no_bus(tmp_path), "--varlink", sock,
                             "run", "--rm", "--name", "vlrun-stubborn", "busybox", "sh", "-c",
                             "echo ready; exec sleep 1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        for _ in range(3):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.2)  # one at a time: pending signals of a kind merge
        assert proc.wait(TIMEOUT) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == (
            b"\npyctr: no longer following vlrun-stubborn; it keeps running\n"
            b"vlrun-stubborn keeps running; remove it with `pyctr rm -f vlrun-stubborn`\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (kept,) = [c for c in ps_all(left_alone) if c["Names"] == ["vlrun-stubborn"]]
    assert kept["State"] == "running"


def test_dbus_when_the_socket_is_absent(left_alone: str, tmp_path: Path) -> None:
    out = run_raw(left_alone, "--varlink", str(tmp_path / "absent"), "run", "--rm",
                  "busybox", "sh", "-c", "echo via dbus; exit 4")
    assert (out.returncode, out.stdout, out.stderr) == (4, b"via dbus\n", b"")
    # and without either, it says the bus is gone, having made nothing
    gone = pyctr(no_bus(tmp_path), "--varlink", str(tmp_path / "absent"), "run", "busybox",
                 "true")
    assert gone.returncode == 125 and "cannot connect" in gone.stderr
    assert ps_all(left_alone) == []


def test_interactive_runs_go_over_dbus(left_alone: str, sock: str, tmp_path: Path) -> None:
    # -i attaches over D-Bus: without a bus it cannot run, and creates nothing
    out = pyctr(no_bus(tmp_path), "--varlink", sock, "run", "-i", "--rm", "busybox", "cat",
                input="typed\n")
    assert out.returncode == 125 and "cannot connect" in out.stderr
    out = pyctr(left_alone, "--varlink", sock, "run", "-i", "--rm", "busybox", "cat",
                input="typed\n")
    assert (out.returncode, out.stdout) == (0, "typed\n")
    assert ps_all(left_alone) == []


def test_older_daemon_without_openlog_falls_back_before_anything_stays(
        left_alone: str, sock: str, tmp_path: Path) -> None:
    """A daemon whose Create works but OpenLog is unknown (an older one): the
    container is removed again and D-Bus runs the command once."""
    proxy = tmp_path / "proxy"
    ready = tmp_path / "ready"
    code = PROXY.format(upstream=sock, path=str(proxy), ready=str(ready))
    helper = subprocess.Popen([str(PYCTR.with_name("python")), "-c", code])
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ready.exists():
            assert time.monotonic() < deadline and helper.poll() is None
            time.sleep(0.02)
        out = run_raw(left_alone, "--varlink", str(proxy), "run", "--rm", "--name",
                      "vlrun-older", "busybox", "sh", "-c", "echo once")
        assert (out.returncode, out.stdout, out.stderr) == (0, b"once\n", b"")
    finally:
        helper.kill()
        helper.wait()
    assert ps_all(left_alone) == []


# A relay to the daemon's socket that answers OpenLog as a daemon without it would.
PROXY = r"""
import json, os, socket, threading
up, path = {upstream!r}, {path!r}
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen()
open({ready!r}, "w").close()

def pump(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass

def serve(client):
    upstream = socket.socket(socket.AF_UNIX)
    upstream.connect(up)
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
    buffer = b""
    while data := client.recv(65536):
        buffer += data
        while b"\0" in buffer:
            message, buffer = buffer.split(b"\0", 1)
            if json.loads(message)["method"].endswith(".OpenLog"):
                client.sendall(json.dumps({{"error": "org.varlink.service.MethodNotFound",
                    "parameters": {{"method": "OpenLog"}}}}).encode() + b"\0")
            else:
                upstream.sendall(message + b"\0")

while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


IMPORTS_PROBE = """
import sys
from pyctrd.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    print(done.code, sorted(m for m in ("asyncio", "dbus_fast") if m in sys.modules),
          file=sys.stderr)
"""


def test_the_varlink_path_imports_neither_asyncio_nor_dbus_fast(
        left_alone: str, sock: str, tmp_path: Path) -> None:
    out = subprocess.run([str(PYCTR.with_name("python")), "-c", IMPORTS_PROBE,
                          "--address", no_bus(tmp_path), "--varlink", sock, "run", "--rm",
                          "--network", "none", "busybox", "sh", "-c", "echo hi; exit 2"],
                         capture_output=True, timeout=TIMEOUT, env=env(),
                         stdin=subprocess.DEVNULL)
    assert (out.stdout, out.stderr) == (b"hi\n", b"2 []\n")
    # the same probe sees them over D-Bus
    out = subprocess.run([str(PYCTR.with_name("python")), "-c", IMPORTS_PROBE,
                          "--address", left_alone, "--varlink", "", "run", "--rm",
                          "busybox", "true"],
                         capture_output=True, timeout=TIMEOUT, env=env(),
                         stdin=subprocess.DEVNULL)
    assert out.stderr == b"0 ['asyncio', 'dbus_fast']\n"
