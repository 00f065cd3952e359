"""pyctr's side of issue 17: run -d --rm, --restart=on-failure:N, the health flags,
`pyctr healthcheck run`, and ps showing "(healthy)" as podman does."""

import json
import time
from collections.abc import Iterator

import pytest

from integration.cli_support import ok, ps_all, pyctr


@pytest.fixture
def address(daemon) -> Iterator[str]:
    before = {c["Id"] for c in ps_all(daemon.bus_address)}
    yield daemon.bus_address
    left = [c["Id"] for c in ps_all(daemon.bus_address) if c["Id"] not in before]
    if left:
        ok(daemon.bus_address, "rm", "-f", *left)


def until(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_run_detached_with_rm_goes_once_it_exits(address):
    cid = ok(address, "run", "-d", "--rm", "busybox", "sh", "-c", "sleep 0.3").strip()
    assert len(cid) == 64
    until(lambda: cid not in {c["Id"] for c in ps_all(address)})


def test_restart_on_failure_with_retries(address):
    cid = ok(address, "run", "-d", "--restart=on-failure:2", "busybox", "sh", "-c",
             "exit 4").strip()

    def settled():
        (info,) = json.loads(ok(address, "inspect", cid))
        return info["State"]["RestartCount"] == 2 and info["State"]["Status"] == "exited"

    until(settled)
    (info,) = json.loads(ok(address, "inspect", cid))
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                   "MaximumRetryCount": 2}


def test_healthcheck_run_and_ps(address):
    ok(address, "run", "-d", "--name", "cli-health", "--health-cmd", "test -e /ok",
       "--health-interval", "0", "--health-retries", "1", "busybox", "sleep", "1000")
    sick = pyctr(address, "healthcheck", "run", "cli-health")
    assert (sick.returncode, sick.stdout) == (1, "unhealthy\n")
    assert "(unhealthy)" in ok(address, "ps", "--filter", "name=cli-health")
    ok(address, "exec", "cli-health", "touch", "/ok")
    well = pyctr(address, "healthcheck", "run", "cli-health")
    assert (well.returncode, well.stdout) == (0, "")
    assert "(healthy)" in ok(address, "ps", "--filter", "name=cli-health")
    missing = pyctr(address, "healthcheck", "run", "no-such-container")
    assert missing.returncode == 125 and "no-such-container" in missing.stderr
