"""The 0666 Varlink socket of a system daemon under attack by an unprivileged user.

pyctrd runs with --bus system on a private system-like bus (dbusmock's polkitd
behind it, as in test_varlink_polkit.py), so its socket is open to all. The
attacker is nobody (65534): a plain python3 under setpriv, speaking raw
Varlink. Meanwhile root's calls, on Varlink and on D-Bus, are timed from this
process: each must be answered within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import BUS_NAME, MANAGER, MANAGER_PATH, dbus_call
from dbus_fast.aio import MessageBus

from integration.system_bus import (
    Polkitd,
    SystemBus,
    SystemDaemon,
    venv_usable_by_others,
    world_traversable_dir,
)
from pyctrd.varlink.limits import (
    IDLE_TIMEOUT_ENV,
    MAX_CONNECTIONS_PER_UID,
    MAX_MESSAGE_SIZE,
    MAX_PENDING_PER_UID,
)

NOBODY = 65534
DAEMON_UID = 1  # a second unprivileged user
IDLE = 4.0  # s: the daemon's idle timeout in these tests
ROOT_LATENCY = 1.0  # s: the most root may wait for an answer during an attack
CALL_TIMEOUT = 10.0
PYTHON3 = "/usr/bin/python3"  # the attacker needs no venv
LIST = {"method": "io.pyctrd.Container.List", "parameters": {}}


class LimitedDaemon(SystemDaemon):
    def env(self) -> dict[str, str]:
        return {**super().env(), IDLE_TIMEOUT_ENV: str(IDLE)}


@dataclass
class Env:
    bus: SystemBus
    daemon: LimitedDaemon

    @property
    def sock(self) -> Path:
        return self.daemon.run_root / "io.pyctrd"


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    if reason := venv_usable_by_others():
        pytest.skip(reason)
    directory = world_traversable_dir("pyctrd-varlink-limits-")
    bus = SystemBus(directory)
    polkit = Polkitd(bus, mock=True)
    daemon = None
    try:
        polkit.start()
        daemon = LimitedDaemon(directory / "d", bus.address)
        daemon.start()
        sock = daemon.run_root / "io.pyctrd"
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline, f"no {sock}\n{daemon.log_tail()}"
            time.sleep(0.05)
        yield Env(bus, daemon)
    finally:
        try:
            if daemon is not None:
                daemon.shutdown()
        finally:
            polkit.stop()
            bus.stop()
            shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------
# root's side: calls, timed


def varlink_call(path: Path, call: dict[str, Any], timeout: float = CALL_TIMEOUT
                 ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        while True:  # EAGAIN: the listen backlog is full for now; it counts as waiting
            try:
                s.connect(str(path))
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        s.sendall(json.dumps(call).encode() + b"\0")
        data = b""
        while not data.endswith(b"\0"):
            chunk = s.recv(65536)
            assert chunk, f"the daemon hung up on root after {data!r}"
            data += chunk
    return dict(json.loads(data[:-1]))


@dataclass
class Probes:
    """Root's calls, one after another, while an attack runs."""

    varlink: list[float] = field(default_factory=list)
    dbus: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def worst(self) -> float:
        return max(self.varlink + self.dbus, default=float("inf"))

    def summary(self) -> str:
        def ms(xs: list[float]) -> str:
            return f"{len(xs)} calls, max {max(xs) * 1000:.0f} ms" if xs else "no calls"
        return f"Varlink {ms(self.varlink)}; D-Bus {ms(self.dbus)}"


@contextlib.contextmanager
def root_probing(env: Env) -> Iterator[Probes]:
    """Root calls Container.List on Varlink and ListContainers on D-Bus in a loop
    (a thread of its own) for as long as the block runs."""
    probes = Probes()
    stop = threading.Event()

    async def loop() -> None:
        bus = await MessageBus(bus_address=env.bus.address).connect()
        try:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    reply = await asyncio.to_thread(varlink_call, env.sock, LIST)
                    assert "containers" in reply["parameters"], reply
                    probes.varlink.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    await dbus_call(bus, BUS_NAME, MANAGER_PATH, MANAGER, "ListContainers",
                                    timeout=CALL_TIMEOUT)
                    probes.dbus.append(time.perf_counter() - start)
                except Exception as err:  # recorded; the test asserts there is none
                    probes.failures.append(f"{type(err).__name__}: {err}")
                    return
                await asyncio.sleep(0.02)
        finally:
            bus.disconnect()

    thread = threading.Thread(target=asyncio.run, args=(loop(),), daemon=True)
    thread.start()
    try:
        yield probes
    finally:
        stop.set()
        thread.join(CALL_TIMEOUT * 2 + 5)


def assert_root_served(probes: Probes) -> None:
    assert not probes.failures, probes.failures
    assert probes.varlink and probes.dbus, probes.summary()
    assert probes.worst() < ROOT_LATENCY, probes.summary()


# --------------------------------------------------------------------------
# the attacker's side: python3 as another user


def as_user(uid: int, script: str, *args: str) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            PYTHON3, "-c", script, *args]


BIG_MESSAGE = r"""
import json, socket, sys, time
path, size, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
head = b'{"method":"io.pyctrd.Container.List","parameters":{"pad":"'
chunk = b"a" * (1 << 20)

def attack():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    sent, stopped, start = 0, "", time.monotonic()
    try:
        s.sendall(head)
        sent = len(head)
        while sent < size:
            if time.monotonic() - start > 10:
                stopped = "gave up: the daemon reads too slowly"
                break
            sent += s.send(chunk[:size - sent])
    except (BrokenPipeError, ConnectionResetError) as err:
        stopped = type(err).__name__
    refused = time.monotonic() - start
    data = b""
    try:
        while not data.endswith(b"\0"):
            more = s.recv(65536)
            if not more:
                break
            data += more
    except (ConnectionResetError, TimeoutError) as err:
        stopped += "; reading: " + type(err).__name__
    s.close()
    return {"sent": sent, "stopped": stopped, "refused": refused,
            "answered": time.monotonic() - start,
            "reply": json.loads(data[:-1]) if data.endswith(b"\0") else data.decode()}

results = []
for _ in range(rounds):
    results.append(attack())
    if results[-1]["stopped"].startswith("gave up"):
        break
print(json.dumps(results))
"""


def test_a_40mb_message_is_refused_at_once_while_root_is_served(env: Env) -> None:
    size, rounds = 40 * 1000 * 1000, 8
    with root_probing(env) as probes:
        time.sleep(0.1)  # a few calls before, for comparison
        out = subprocess.run(as_user(NOBODY, BIG_MESSAGE, str(env.sock), str(size), str(rounds)),
                             capture_output=True, text=True, timeout=60, cwd="/")
        time.sleep(0.1)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    slowest = max(r["answered"] for r in results)
    print(f"\n{rounds} messages of 40 MB: each refused after at most "
          f"{max(r['refused'] for r in results) * 1000:.0f} ms and answered after at most "
          f"{slowest * 1000:.0f} ms ({max(r['sent'] for r in results)} bytes sent at most); "
          f"root meanwhile: {probes.summary()}")
    assert_root_served(probes)
    for result in results:
        assert isinstance(result["reply"], dict), result
        assert result["reply"]["error"] == "io.pyctrd.Container.LimitsExceeded", result
        assert str(MAX_MESSAGE_SIZE) in result["reply"]["parameters"]["message"]
        assert result["stopped"].startswith(("BrokenPipeError", "ConnectionResetError")), result
        # Refused near the limit (the socket buffers hold a little more), not after all.
        assert MAX_MESSAGE_SIZE <= result["sent"] < MAX_MESSAGE_SIZE + (4 << 20), result
    assert slowest < 2.0
    assert env.daemon.running()
    assert "containers" in varlink_call(env.sock, LIST)["parameters"]


UNFINISHED = r"""
import json, select, socket, sys, time
path, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
head = b'{"method":"io.pyctrd.Container.List","parameters":{"pad":"'
socks, outcomes = [], []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    socks.append(s)
    try:
        s.sendall(head + b"a" * (size - len(head)))
        outcomes.append("sent")
    except (BrokenPipeError, ConnectionResetError) as err:
        outcomes.append(type(err).__name__)
    time.sleep(0.2)  # let the daemon read it all before the next one
replies = []
for s in socks:
    if not select.select([s], [], [], 0.2)[0]:
        replies.append(None)  # still open, nothing said
        continue
    data = b""
    try:
        while not data.endswith(b"\0") and (more := s.recv(65536)):
            data += more
    except ConnectionResetError:
        pass
    replies.append(json.loads(data[:-1]) if data.endswith(b"\0") else data.decode())
print(json.dumps({"outcomes": outcomes, "replies": replies}))
"""


def test_a_uids_unfinished_messages_are_bounded_together(env: Env) -> None:
    """Each under the message size limit, together past the uid's share."""
    size = 15 * 1024 * 1024
    count = MAX_PENDING_PER_UID // size + 1
    with root_probing(env) as probes:
        out = subprocess.run(as_user(NOBODY, UNFINISHED, str(env.sock), str(count), str(size)),
                             capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    print(f"\n{count} unfinished messages of 15 MiB: {result['outcomes']}; "
          f"root meanwhile: {probes.summary()}")
    assert_root_served(probes)
    *held, refused = result["replies"]
    assert held == [None] * (count - 1), result  # still open: within the share
    assert refused["error"] == "io.pyctrd.Container.LimitsExceeded", result
    assert "unfinished messages" in refused["parameters"]["message"]


FLOOD = r"""
import json, socket, sys, threading, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
replies = 0
def read():
    global replies
    try:
        while data := s.recv(1 << 20):
            replies += data.count(b"\0")
    except OSError:
        pass
reader = threading.Thread(target=read, daemon=True)
reader.start()
calls = b'{"method":"io.pyctrd.Container.List","parameters":{}}\0' * 10000
sent, start = 0, time.monotonic()
while time.monotonic() - start < float(sys.argv[2]):
    s.sendall(calls)
    sent += 10000
s.shutdown(socket.SHUT_WR)
reader.join(30)
print(json.dumps({"sent": sent, "replies": replies, "elapsed": time.monotonic() - start}))
"""


def test_a_client_pipelining_calls_flat_out_does_not_hold_up_root(env: Env) -> None:
    """asyncvarlink reads a socket until it is empty: a client writing as fast as
    the daemon reads would have the event loop to itself (root waited 1.8 s)."""
    with root_probing(env) as probes:
        out = subprocess.run(as_user(NOBODY, FLOOD, str(env.sock), "3"),
                             capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    flood = json.loads(out.stdout)
    print(f"\n{flood['sent']} pipelined calls in {flood['elapsed']:.1f} s, "
          f"{flood['replies']} answered; root meanwhile: {probes.summary()}")
    assert flood["replies"] == flood["sent"]  # served, in its turn
    assert_root_served(probes)


HOLD_CONNECTIONS = r"""
import json, select, socket, sys, time
path, count = sys.argv[1], int(sys.argv[2])
socks = []
start = time.monotonic()
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)  # blocking: waits while the listen backlog is full
    socks.append(s)

def hung_up(s):
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True

# Hung up on at once or not at all: wait until the count stops changing.
closed, changed = -1, time.monotonic()
while time.monotonic() - start < 5:
    now = sum(hung_up(s) for s in socks)
    if now != closed:
        closed, changed = now, time.monotonic()
    elif time.monotonic() - changed > 0.5:
        break
    time.sleep(0.05)
print(json.dumps({"opened": len(socks), "closed": closed,
                  "elapsed": time.monotonic() - start}), flush=True)
sys.stdin.read()  # hold them until the test is done
"""

CALL = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\0")
data = b""
while not data.endswith(b"\0"):
    more = s.recv(65536)
    if not more:
        break
    data += more
print(data[:-1].decode())
"""


def test_a_uid_holds_its_share_of_connections_and_root_still_gets_in(env: Env) -> None:
    count = 200
    log_before = env.daemon.log_path.read_text(errors="replace").count("refusing a client")
    holder = subprocess.Popen(as_user(NOBODY, HOLD_CONNECTIONS, str(env.sock), str(count)),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        with root_probing(env) as probes:
            assert holder.stdout is not None
            ready, _, _ = select.select([holder.stdout], [], [], 30)
            assert ready, "the holder did not report"
            line = holder.stdout.readline()
            assert line, f"the holder failed: {holder.communicate(timeout=30)[1]}"
            held = json.loads(line)
            # While nobody holds its share: another user and root get in.
            other = subprocess.run(as_user(DAEMON_UID, CALL, str(env.sock), json.dumps(LIST)),
                                   capture_output=True, text=True, timeout=30, cwd="/")
            time.sleep(0.3)
        assert held["elapsed"] < IDLE, f"too slow to tell before the idle timeout: {held}"
    finally:
        holder.communicate(timeout=30)  # closing stdin lets it exit
    print(f"\n{count} connections by uid {NOBODY}: {held['closed']} hung up on at once; "
          f"root during the hold: {probes.summary()}")
    assert held == {**held, "opened": count, "closed": count - MAX_CONNECTIONS_PER_UID}
    assert "containers" in json.loads(other.stdout)["parameters"], other
    assert_root_served(probes)
    # One line for the whole flood of refusals, not one per refusal.
    refused_lines = env.daemon.log_path.read_text(errors="replace").count("refusing a client")
    assert 1 <= refused_lines - log_before <= 2


def hung_up_at(s: socket.socket, deadline: float) -> float | None:
    """When (monotonic) the daemon closed ``s``, reading and dropping what comes;
    None if it is still open at ``deadline``."""
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([s], [], [], left)
        if ready:
            try:
                if not s.recv(65536):
                    return time.monotonic()
            except ConnectionResetError:
                return time.monotonic()
    return None


def test_idle_connections_are_closed_and_a_watch_is_not_idle(env: Env) -> None:
    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(env.sock))
        return s

    silent, dribbling, answered, watching = (connect() for _ in range(4))
    try:
        opened = time.monotonic()
        answered.sendall(json.dumps(LIST).encode() + b"\0")
        watching.sendall(json.dumps({"method": "io.pyctrd.Container.Watch",
                                     "parameters": {}, "more": True}).encode() + b"\0")
        watching.settimeout(CALL_TIMEOUT)
        assert b'"ready"' in watching.recv(65536)
        # Bytes of a call that is never finished do not count as activity.
        for part in (b'{"method":', b'"io.pyctrd.Container.List"'):
            dribbling.sendall(part)
            time.sleep(IDLE / 3)
        closed = {name: hung_up_at(s, opened + 2 * IDLE) for name, s in (
            ("silent", silent), ("dribbling", dribbling), ("answered", answered))}
        assert None not in closed.values(), closed
        after = {name: at - opened for name, at in closed.items() if at is not None}
        # The Watch has run longer than the idle timeout and is still served.
        assert hung_up_at(watching, opened + IDLE * 1.5) is None
        print(f"\nidle timeout {IDLE} s: closed after " + ", ".join(
            f"{name} {t:.2f} s" for name, t in after.items()) + "; a Watch kept open")
        for name, t in after.items():
            assert IDLE * 0.9 < t < IDLE + 2, (name, after)
    finally:
        for s in (silent, dribbling, answered, watching):
            s.close()
