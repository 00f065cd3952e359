"""A user without a grant floods guarded calls; polkit keeps answering everyone else.

Issue 13: pipelined Start calls of a refused user once took pyctrd's own
connection past dbus-daemon's 128 pending replies (the private bus copies
Debian's system.conf, so it has that built-in limit): checks failed, fail
closed refused a granted user's calls, and the log took ~146,000 lines. Now
the flood, from one connection or several, meets the per-uid bound on
pending checks: its excess is refused at once with LimitsExceeded, the
granted user's Start and Kill all succeed meanwhile (real polkitd, the
shipped rules), root is answered within a second, and the log stays short.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CONTAINER, PYCTRD, SUPPORT, Client

from integration.system_bus import call_as, polkit_system
from integration.test_polkit_real import Env
from integration.test_polkit_real import accounts as accounts
from integration.test_polkit_real import polkit_files as polkit_files

LIMITS = "org.freedesktop.DBus.Error.LimitsExceeded"
REFUSED = {"org.freedesktop.DBus.Error.AccessDenied",
           "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"}
SLEEPER = ["sleep", "1000"]
BATCH = 100  # per connection in flight: under the bus's 128 for the flooder's own
MAX_CALLS = 20_000
MAX_SECONDS = 30.0
LOG_LINES_MAX = 20


# accounts and polkit_files (the users, the rules file) are test_polkit_real's.
@pytest.fixture(scope="module")
def env(accounts: tuple[str, str, str], polkit_files: str, busybox_tar: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    _group, member, outsider = accounts
    with polkit_system("polkit-flood", tmp_path_factory.mktemp("flood"),
                       busybox_tar, mock=False) as (bus, polkit, daemon):
        yield Env(bus, polkit, daemon, member, outsider, polkit_files)


def flood(env: Env, path: str, connections: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["setpriv", "--reuid", env.outsider, "--regid", env.outsider, "--init-groups",
         str(PYCTRD.with_name("python")), str(SUPPORT / "bus_flood.py"), env.bus.address,
         path, "Start", str(connections), str(BATCH), str(MAX_CALLS), str(MAX_SECONDS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})


def call(path: str, member: str, signature: str = "", body: list | None = None
         ) -> dict[str, Any]:
    return {"path": path, "interface": CONTAINER, "member": member, "signature": signature,
            "body": body or []}


@pytest.mark.parametrize("connections", [1, 4])
async def test_a_flood_of_refused_calls_harms_no_one_else(
        env: Env, client_factory: Any, connections: int) -> None:
    root: Client = await client_factory(env.bus.address)
    target = await root.create(SLEEPER)  # the flood's: the outsider may not start it
    mine = await root.create(SLEEPER)  # the granted user's
    log_before = env.daemon.log_path.stat().st_size
    attack = flood(env, target, connections)
    try:
        assert attack.stdout is not None
        assert attack.stdout.readline().strip() == "started"

        started = time.monotonic()
        results = call_as(env.member, env.bus.address, [
            call(mine, "Start"), *(call(mine, "Kill", "s", ["SIGCONT"]) for _ in range(4))])
        granted_in = time.monotonic() - started
        assert results["results"] == [{"reply": []}] * 5, results
        started = time.monotonic()
        await root.ctr(mine, "Kill", "s", ["SIGCONT"])
        await root.manager("ListContainers")
        root_in = time.monotonic() - started
        assert root_in < 1.0, root_in
        assert attack.poll() is None, "the flood ended before the others' calls did"

        attack.stdin.write("stop\n")  # type: ignore[union-attr]
        attack.stdin.flush()  # type: ignore[union-attr]
        report = json.loads(attack.stdout.readline())
    finally:
        if attack.poll() is None:
            attack.kill()
        attack.wait(30)
    counts = {name: n for name, (n, _text) in report["results"].items()}
    assert report["stopped_by"] == "stdin", report
    assert "reply" not in counts, report  # nothing of the flood got through
    assert counts.get(LIMITS, 0) > 0, report
    assert set(counts) <= REFUSED | {LIMITS}, report
    limits_text = report["results"][LIMITS][1]
    assert "authorization checks" in limits_text and "Start refused" in limits_text, report
    assert await root.state(target) == "configured"

    new_log = env.daemon.log_path.read_bytes()[log_before:].decode(errors="replace")
    lines = [line for line in new_log.splitlines()
             if line.startswith(("WARNING", "ERROR", "CRITICAL"))]
    print(f"\n{connections} connection(s): {report['calls']} Start calls in "
          f"{report['seconds']:.1f} s, answered {counts}; the granted user's 5 calls in "
          f"{granted_in:.2f} s, root's 2 in {root_in * 1000:.0f} ms; "
          f"{len(lines)} warning lines logged")
    assert len(lines) <= LOG_LINES_MAX, lines[:40]
    await root.ctr(mine, "Stop", "u", [0])
