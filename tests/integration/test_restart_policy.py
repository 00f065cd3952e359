"""Restart policies and auto-remove with real runc and conmon (issue 17).

What podman and docker do: on-failure restarts after a non-zero exit up to its
retries, always after any exit (a kill from outside included), never after a
caller's Stop; a reboot brings back always and unless-stopped-not-stopped
containers; auto_remove answers a pending Wait, then the object goes.
"""

import asyncio
import os
import signal
import time

from conftest import CONTAINER, container_id, wait_pid_gone

from integration.test_recovery import restart, simulate_reboot


async def until(check, timeout: float = 15.0, step: float = 0.02):
    """Poll the async ``check`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(step)


async def test_on_failure_restarts_three_times_then_stays_exited(bus):
    rec = await bus.recorder()
    path = await bus.run(["sh", "-c", "exit 1"], restart_policy="on-failure",
                         restart_retries=3)
    assert await bus.prop(path, "RestartPolicy") == "on-failure"
    await rec.wait_property(path, "RestartCount", 3, timeout=15)
    await rec.wait_property(path, "ExitCode", 1, timeout=15)
    await until(lambda: _state_is(bus, path, "exited"))
    await asyncio.sleep(1.0)  # a fourth restart would have come after 0.8 s
    props = await bus.get_all(path, CONTAINER)
    assert (props["State"], props["RestartCount"], props["ExitCode"]) == ("exited", 3, 1)
    counts = [c["RestartCount"] for c in rec.changes(path) if "RestartCount" in c]
    assert counts == [1, 2, 3]


async def _state_is(bus, path, state) -> bool:
    return await bus.state(path) == state


async def test_always_restarts_after_exit_0_and_an_outside_kill_but_not_after_stop(bus):
    rec = await bus.recorder()
    path = await bus.run(["sh", "-c", "test -e /ran || { touch /ran; exit 0; }; "
                          "exec sleep 1000"], restart_policy="always")
    # the first run exits 0 at once; the second stays
    await rec.wait_property(path, "RestartCount", 1)
    await until(lambda: _state_is(bus, path, "running"))
    pid = await bus.prop(path, "PID")
    os.kill(pid, signal.SIGKILL)  # from outside the daemon
    assert wait_pid_gone(pid, 10)
    await rec.wait_property(path, "RestartCount", 2)
    await until(lambda: _state_is(bus, path, "running"))
    assert await bus.prop(path, "PID") not in (0, pid)

    await bus.ctr(path, "Stop", "u", [0])
    assert await bus.state(path) == "exited"
    await asyncio.sleep(0.5)  # the first back-off is 0.1 s
    props = await bus.get_all(path, CONTAINER)
    assert (props["State"], props["RestartCount"], props["ExitCode"]) == ("exited", 2, 137)


async def test_a_crash_loop_does_not_starve_the_daemon(bus):
    paths = [await bus.run(["sh", "-c", "exit 3"], restart_policy="always")
             for _ in range(4)]
    worst = 0.0
    calls = 0
    deadline = time.monotonic() + 3.0  # ~5 restarts each meanwhile
    while time.monotonic() < deadline:
        began = time.monotonic()
        await bus.manager("ListContainers")
        await bus.get_all(paths[calls % 4], CONTAINER)
        worst = max(worst, (time.monotonic() - began) / 2)
        calls += 1
        await asyncio.sleep(0.01)
    restarts = [await bus.prop(p, "RestartCount") for p in paths]
    print(f"crash loop: {sum(restarts)} restarts of 4 containers in 3 s; {calls * 2} calls, "
          f"the slowest answered in {worst * 1000:.1f} ms")
    assert min(restarts) >= 3
    assert worst < 0.1
    for path in paths:
        await bus.ctr(path, "Stop", "u", [0])  # cancels a pending restart too
    await asyncio.sleep(0.3)
    assert [await bus.state(p) for p in paths] == ["exited"] * 4


async def test_auto_remove_answers_wait_then_the_object_goes(bus):
    rec = await bus.recorder()
    path = await bus.create(["sh", "-c", "sleep 0.3; exit 7"], auto_remove=True)
    assert await bus.prop(path, "AutoRemove") is True
    await bus.ctr(path, "Start")
    (code,) = await bus.ctr(path, "Wait")
    assert code == 7
    removed = await rec.wait_for(lambda m: m.member == "InterfacesRemoved"
                                 and m.body[0] == path)
    exited = await rec.wait_property(path, "ExitCode", 7)
    assert rec.signals.index(exited) < rec.signals.index(removed)
    ids = [c[0] for c in (await bus.manager("ListContainers"))[0]]
    assert container_id(path) not in ids


async def test_a_reboot_brings_back_always_and_unless_stopped_not_stopped(
        fresh_daemon, client_factory):
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    made = {}
    for name, policy in (("always", "always"), ("always-stopped", "always"),
                         ("unless", "unless-stopped"), ("unless-stopped", "unless-stopped"),
                         ("failure", "on-failure"), ("no", "no")):
        made[name] = await bus.run(["sleep", "1000"], name=name, restart_policy=policy)
    for name in ("always-stopped", "unless-stopped"):
        await bus.ctr(made[name], "Stop", "u", [0])
        # its pidfile names a process gone (whose PID may be reused): not for killing
        (d.run_root / "containers" / container_id(made[name]) / "pidfile").unlink()
    simulate_reboot(d)

    began = time.monotonic()
    bus = await restart(d, client_factory)
    answered = time.monotonic() - began
    expected = {"always": "running", "always-stopped": "running", "unless": "running",
                "unless-stopped": "exited", "failure": "exited", "no": "exited"}

    async def all_there():
        return {n: await bus.state(p) for n, p in made.items()} == expected

    await until(all_there)
    print(f"after the reboot: serving {answered:.2f} s after the start, "
          f"the three running {time.monotonic() - began:.2f} s after it")
    for name in ("always", "unless"):
        assert await bus.prop(made[name], "RestartCount") == 0
    await asyncio.sleep(0.3)
    assert {n: await bus.state(p) for n, p in made.items()} == expected
    for path in made.values():
        if await bus.state(path) == "running":
            await bus.ctr(path, "Stop", "u", [0])


async def test_a_daemon_killed_during_the_backoff_carries_on(fresh_daemon, client_factory):
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    rec = await bus.recorder()
    path = await bus.run(["sh", "-c", "exit 1"], restart_policy="on-failure")
    # after the 4th restart's exit the back-off is 1.6 s: the daemon dies in it
    await rec.wait_property(path, "RestartCount", 4, timeout=15)
    await until(lambda: _state_is(bus, path, "exited"))
    d.kill9()
    bus = await restart(d, client_factory)
    rec = await bus.recorder()
    assert await bus.prop(path, "RestartCount") in (4, 5)
    await until(lambda: _count_at_least(bus, path, 5))
    await bus.manager("RemoveContainer", "sb", [container_id(path), True])


async def _count_at_least(bus, path, n) -> bool:
    return await bus.prop(path, "RestartCount") >= n
