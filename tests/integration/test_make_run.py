"""`make run`'s script leaves the machine ready for non-root callers: polkit knows
pyctrd's actions, so a caller without a grant gets polkit's answer
(InteractiveAuthorizationRequired), not "action not registered".

scripts/run-daemon runs as `make run` runs it, on a private bus configured
like Debian's system bus (DBUS_SYSTEM_BUS_ADDRESS, which the script honours)
with the real polkitd, and private state directories (its arguments go to
pyctrd).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import MANAGER, MANAGER_PATH, REPO

from integration.system_bus import (
    Polkitd,
    SystemBus,
    call_as,
    venv_usable_by_others,
    world_traversable_dir,
)

ACTIONS = Path("/usr/share/polkit-1/actions/org.pyctrd1.policy")
NOBODY = 65534


def read_until(proc: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} within {timeout} s:\n{seen.decode()}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"run-daemon exited:\n{seen.decode()}"
            seen += chunk
    return seen


def test_a_caller_without_a_grant_gets_polkits_answer(tmp_path: Path) -> None:
    if why := venv_usable_by_others():
        pytest.skip(why)
    before = ACTIONS.read_bytes() if ACTIONS.exists() else None
    ACTIONS.unlink(missing_ok=True)  # as on a fresh machine; put back below
    base = world_traversable_dir("pyctrd-make-run-")
    bus = SystemBus(base / "bus")
    polkitd = Polkitd(bus, mock=False)
    config = tmp_path / "pyctrd.toml"
    config.write_text("")
    proc = None
    try:
        polkitd.start()
        proc = subprocess.Popen(
            ["scripts/run-daemon", "--root", str(tmp_path / "root"),
             "--run-root", str(tmp_path / "run"), "--config", str(config)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address})
        read_until(proc, b"pyctrd is running", 120)
        assert ACTIONS.exists(), "run-daemon did not install the polkit actions"

        out = call_as(NOBODY, bus.address, [{
            "path": MANAGER_PATH, "interface": MANAGER, "member": "CreateContainer",
            "signature": "sasa{sv}", "body": ["busybox", ["true"], {}]}])
        (result,) = out["results"]
        assert result.get("error") == \
            "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", result
        assert "not registered" not in polkitd.log_path.read_text()
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        polkitd.stop()
        bus.stop()
        if before is None:
            ACTIONS.unlink(missing_ok=True)
        else:
            ACTIONS.write_bytes(before)
        subprocess.run(["rm", "-rf", str(base)], check=False)
