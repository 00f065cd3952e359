"""The health state machine (core/health.py) on the fake runtime: starting →
healthy/unhealthy, the start period, the retries, the last 5 results."""

from support.fake_runtime import FakeWorld, fake_engine

from pyctrd.core.config import now_us
from pyctrd.core.state import State

NO_NET = {"network": "none"}  # the fake world has no netavark


async def test_starting_healthy_unhealthy_with_a_start_period_and_retries(tmp_path):
    world = FakeWorld.create()
    engine = fake_engine(tmp_path, world)
    await engine.recover()
    c = engine.create_container("busybox", ["sleep", "9"], {**NO_NET,
        "health_cmd": ["true"], "health_interval": 0, "health_retries": 2,
        "health_start_period": 3600})
    assert c.status.health == ""
    await c.start()
    assert c.status.health == "starting"
    record = engine.health._record
    for _ in range(3):  # in the start period failures do not count
        record(c, now_us(), 1, "no", False)
    assert (c.status.health, c.status.health_failures) == ("starting", 0)
    record(c, now_us(), 0, "yes", False)
    assert (c.status.health, c.status.health_failures) == ("healthy", 0)
    record(c, now_us(), 1, "no", False)  # once healthy the start period is over
    assert (c.status.health, c.status.health_failures) == ("healthy", 1)
    record(c, now_us(), -1, "killed", True)
    assert (c.status.health, c.status.health_failures) == ("unhealthy", 2)
    log = c.inspect()["State"]["Health"]["Log"]
    assert [r["ExitCode"] for r in log] == [1, 1, 0, 1, -1]  # the last 5 of 6
    assert (log[-1]["Output"], log[-1]["Truncated"]) == ("killed", True)
    assert c.state == State.RUNNING  # unhealthy: reported, not acted on

    # a new run starts over
    world.monitor.exit(c.id, 0)
    await c.start()
    assert (c.status.health, c.status.health_failures) == ("starting", 0)
    engine.close()
