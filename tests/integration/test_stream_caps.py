"""Log/attach streams: capped per uid, closed when their caller leaves the bus (issue 13).

A granted user (real polkitd, the shipped rules) opens OpenLog streams up to
the cap and one more: the last is LimitsExceeded, from another connection
too, while root's calls are answered at once. When the user's connection
leaves the bus, still holding every descriptor, the daemon ends its streams:
the user sees EOF on each and the daemon's descriptor count is back where
it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CONTAINER, PYCTRD, SUPPORT, Client

from integration.fdcall import call_for_fd
from integration.system_bus import call_as, polkit_system
from integration.test_polkit_real import Env
from integration.test_polkit_real import accounts as accounts
from integration.test_polkit_real import polkit_files as polkit_files
from pyctrd.ops.streams import STREAMS_PER_UID

LIMITS = "org.freedesktop.DBus.Error.LimitsExceeded"
SLEEPER = ["sleep", "1000"]


# accounts and polkit_files (the users, the rules file) are test_polkit_real's.
@pytest.fixture(scope="module")
def env(accounts: tuple[str, str, str], polkit_files: str, busybox_tar: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    _group, member, outsider = accounts
    with polkit_system("stream-caps", tmp_path_factory.mktemp("caps"),
                       busybox_tar, mock=False) as (bus, polkit, daemon):
        yield Env(bus, polkit, daemon, member, outsider, polkit_files)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_list(pid: int) -> list[str]:
    """"number:target" of each descriptor of the process ``pid``."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            found.append(f"{fd}:{os.readlink(f'/proc/{pid}/fd/{fd}')}")
    return sorted(found)


def new_fds(baseline: list[str], pid: int) -> list[str]:
    """Descriptors of ``pid`` not in ``baseline``, but for the daemon's one inotify
    instance, made by the first follow stream and kept (pyctrd/oci/dirwatch.py)."""
    return [fd for fd in fd_list(pid) if fd not in baseline and not fd.endswith(":inotify")
            and not fd.endswith("anon_inode:inotify")]


def open_log(path: str) -> dict[str, Any]:
    return {"path": path, "interface": CONTAINER, "member": "OpenLog", "signature": "b",
            "body": [True]}


class Holder:
    """tests/support/stream_holder.py as ``user``: holds streams until told."""

    def __init__(self, user: str, address: str, path: str, count: int) -> None:
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid", user, "--regid", user, "--init-groups",
             str(PYCTRD.with_name("python")), str(SUPPORT / "stream_holder.py"), address,
             path, str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the holder bounds each of its steps
        assert line, f"stream_holder.py ended: {self.proc.wait(10)}"
        return dict(json.loads(line))

    def tell(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


async def test_streams_are_capped_per_user_and_closed_when_the_user_leaves(
        env: Env, client_factory: Any) -> None:
    root: Client = await client_factory(env.bus.address)
    pid = env.daemon.pid
    path = await root.run(SLEEPER)
    spare = await root.create(SLEEPER)
    baseline = fd_list(pid)
    holder = Holder(env.member, env.bus.address, path, STREAMS_PER_UID + 1)
    try:
        started = time.monotonic()
        held = holder.read()
        opened_in = time.monotonic() - started
        assert held["fds"] == STREAMS_PER_UID, held
        ((name, (count, message)),) = held["errors"].items()
        assert (name, count) == (LIMITS, 1), held
        assert f"{STREAMS_PER_UID} log/attach streams" in message
        during = fd_count(pid)
        assert during >= len(baseline) + STREAMS_PER_UID, (baseline, during)
        print(f"\n{STREAMS_PER_UID} streams opened in {opened_in:.1f} s, the next refused; "
              f"daemon fds {len(baseline)} -> {during}")

        # The cap is the user's, whichever connection it calls from ...
        (other,) = call_as(env.member, env.bus.address, [open_log(path)])["results"]
        assert other.get("error") == LIMITS, other
        # ... and root's calls go on at once.
        started = time.monotonic()
        await root.ctr(spare, "Start")
        os.close(await call_for_fd(root, path, "OpenLog", "b", [False]))
        root_in = time.monotonic() - started
        assert root_in < 1.0, root_in
        assert await root.state(spare) == "running"
        print(f"root's Start and OpenLog answered in {root_in * 1000:.0f} ms")

        # The user leaves the bus but keeps its descriptors: the daemon ends them.
        holder.tell("disconnect")
        ended = holder.read()
        assert ended == {"eof": STREAMS_PER_UID, "open": 0}, ended
        await root.ctr(spare, "Stop", "u", [0])  # its descriptors were not there before
        deadline = time.monotonic() + 10
        while (left := new_fds(baseline, pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left, left
        print(f"after the user left: every stream at EOF, daemon fds {fd_count(pid)}")
        # The cap counted what was open: the user may open streams again.
        (again,) = call_as(env.member, env.bus.address, [open_log(path)])["results"]
        assert again == {"reply": ["fd"]}, again
        holder.tell("exit")
    finally:
        holder.close()
        await root.ctr(path, "Stop", "u", [0])
