"""Health checks with real runc and conmon (issue 17): through exec sessions, on
the daemon's timer or RunHealthCheck, starting → healthy/unhealthy with
PropertiesChanged, the last results in Inspect, a hung check killed."""

import asyncio
import json
import time
from pathlib import Path

import pytest
from conftest import CONTAINER

from integration.test_varlink import CONTAINER as VARLINK_CONTAINER
from integration.test_varlink import cli, create, socket_of


async def inspect(bus, path) -> dict:
    (text,) = await bus.ctr(path, "Inspect")
    return json.loads(text)


async def test_the_timer_makes_it_healthy_and_a_subscriber_sees_it(bus):
    rec = await bus.recorder()
    path = await bus.run(["sleep", "1000"], health_cmd=["true"], health_interval=1)
    assert await bus.prop(path, "Health") in ("starting", "healthy")
    await rec.wait_property(path, "Health", "starting")
    await rec.wait_property(path, "Health", "healthy", timeout=10)
    health = (await inspect(bus, path))["State"]["Health"]
    assert health["Status"] == "healthy" and health["Log"][-1]["ExitCode"] == 0
    assert (await inspect(bus, path))["ExecIDs"] == []  # each check's session is gone
    await bus.ctr(path, "Stop", "u", [0])


async def test_unhealthy_after_its_retries_then_healthy_again_and_never_restarted(bus):
    rec = await bus.recorder()
    path = await bus.run(["sleep", "1000"], health_cmd=["sh", "-c", "echo checked; test -e /ok"],
                         health_interval=0, health_retries=2)
    pid = await bus.prop(path, "PID")
    assert (await bus.ctr(path, "RunHealthCheck"))[0] == "starting"  # 1 failure of 2
    assert (await bus.ctr(path, "RunHealthCheck"))[0] == "unhealthy"
    (Path(await bus.prop(path, "Mountpoint")) / "ok").write_text("")
    assert (await bus.ctr(path, "RunHealthCheck"))[0] == "healthy"
    states = [c["Health"] for c in rec.changes(path) if "Health" in c]
    assert states == ["unhealthy", "healthy"] or states == ["starting", "unhealthy", "healthy"]
    health = (await inspect(bus, path))["State"]["Health"]
    assert [r["ExitCode"] for r in health["Log"]] == [1, 1, 0]
    assert health["Log"][0]["Output"] == "checked" and health["FailingStreak"] == 0
    props = await bus.get_all(path, CONTAINER)
    assert (props["State"], props["PID"]) == ("running", pid)  # unhealthy: not restarted
    await bus.ctr(path, "Stop", "u", [0])


async def test_a_hung_check_is_killed_at_its_timeout_without_holding_anything_up(bus):
    path = await bus.run(["sleep", "1000"], health_cmd=["sleep", "100"], health_interval=0,
                         health_timeout=1, health_retries=1)
    began = time.monotonic()
    check = asyncio.ensure_future(bus.ctr(path, "RunHealthCheck"))
    worst = 0.0
    while not check.done():
        t = time.monotonic()
        await bus.get_all(path, CONTAINER)
        worst = max(worst, time.monotonic() - t)
        await asyncio.sleep(0.05)
    took = time.monotonic() - began
    assert (await check)[0] == "unhealthy"
    print(f"hung check: answered after {took:.2f} s (timeout 1 s); calls meanwhile took "
          f"at most {worst * 1000:.1f} ms")
    assert 1.0 <= took < 4.0 and worst < 0.1
    result = (await inspect(bus, path))["State"]["Health"]["Log"][-1]
    assert result["ExitCode"] == -1 and "killed" in result["Output"]
    assert (await inspect(bus, path))["ExecIDs"] == []
    await bus.ctr(path, "Stop", "u", [0])


async def test_run_health_check_refusals(bus):
    plain = await bus.run(["sleep", "1000"])
    err = await bus.fails(bus.ctr(plain, "RunHealthCheck"))
    assert err.type.endswith("InvalidArgument")
    assert await bus.prop(plain, "Health") == ""
    checked = await bus.create(["sleep", "1000"], health_cmd=["true"])
    err = await bus.fails(bus.ctr(checked, "RunHealthCheck"))
    assert err.type.endswith("InvalidState")
    await bus.ctr(plain, "Stop", "u", [0])


@pytest.fixture
def sock(daemon):
    path = socket_of(daemon)
    yield path
    cli(path, f"{VARLINK_CONTAINER}.Remove", {"name": "vl-health", "force": True})


def test_the_varlink_twins(sock):
    """RunHealthCheck, the four properties in ContainerInfo, Health in Inspect, and
    the options on Varlink."""
    name = "vl-health"
    create(sock, name, ["sleep", "1000"], health_cmd=["sh", "-c", "echo ok"],
           health_interval=0, restart_policy="unless-stopped")
    assert cli(sock, f"{VARLINK_CONTAINER}.Start", {"name": name}).ok()
    reply = cli(sock, f"{VARLINK_CONTAINER}.RunHealthCheck", {"name": name}).reply
    assert reply == {"status": "healthy"}
    info = cli(sock, f"{VARLINK_CONTAINER}.Get", {"name": name}).reply["container"]
    assert (info["health"], info["restart_policy"], info["restart_count"],
            info["auto_remove"]) == ("healthy", "unless-stopped", 0, False)
    state = cli(sock, f"{VARLINK_CONTAINER}.Inspect", {"name": name}).reply["info"]["state"]
    assert state["health"]["status"] == "healthy"
    assert state["health"]["log"][0]["output"] == "ok"
    refused = cli(sock, f"{VARLINK_CONTAINER}.Create", {
        "image": "busybox", "command": ["true"],
        "options": {"name": "vl-bad", "restart_policy": "sometimes"}})
    assert refused.error_name() == "InvalidArgument"
    assert cli(sock, f"{VARLINK_CONTAINER}.Stop", {"name": name, "timeout": 0}).ok()
