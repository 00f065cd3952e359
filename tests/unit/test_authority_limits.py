"""Bounds on authorization checks: per caller, in flight, round robin; quiet logs."""

import asyncio
import logging
from collections import Counter

import pytest

from pyctrd.errors import AccessDenied, LimitsExceeded
from pyctrd.ops.authority import Authority, Caller, Decision, Verdict, bus_name_subject
from pyctrd.ops.checklimits import CheckLimits
from pyctrd.ops.ratelimit import RateLimitedLog


class SlowPolkit:
    """Answers each check when the test releases it; counts the most at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.order: list[int] = []
        self.gate = asyncio.Event()

    async def check(self, subject, action, details, interactive) -> Decision:
        self.running += 1
        self.most = max(self.most, self.running)
        self.order.append(int(details["uid"]))
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        return Decision(Verdict.ALLOWED if details["uid"] != "666" else Verdict.DENIED,
                        "not authorized by polkit")


def caller(uid: int) -> Caller:
    return Caller(uid, bus_name_subject(f":1.{uid}"))


async def test_a_flooding_caller_is_refused_at_once_and_alone():
    polkit = SlowPolkit()
    authority = Authority(polkit, CheckLimits(per_caller=4, in_flight=6))  # type: ignore[arg-type]
    flood = [asyncio.ensure_future(authority.authorize(caller(666), "a", {"uid": "666"}))
             for _ in range(50)]
    await asyncio.sleep(0)
    refused = [t for t in flood if t.done()]
    assert len(refused) == 46  # without waiting for polkit
    assert all(isinstance(t.exception(), LimitsExceeded) for t in refused)
    assert "4 authorization checks" in str(refused[0].exception())
    granted = asyncio.ensure_future(authority.authorize(caller(1000), "a", {"uid": "1000"}))
    await asyncio.sleep(0)
    assert not granted.done() and polkit.running == 5  # 4 of the flood, then ours
    polkit.gate.set()
    await granted  # allowed
    results = await asyncio.gather(*flood, return_exceptions=True)
    assert Counter(type(r).__name__ for r in results) == {"LimitsExceeded": 46,
                                                         "AccessDenied": 4}
    assert authority.limits.running == 0 and authority.limits.pending(666) == 0


async def test_in_flight_bound_is_shared_round_robin():
    polkit = SlowPolkit()
    limits = CheckLimits(per_caller=8, in_flight=3)
    authority = Authority(polkit, limits)  # type: ignore[arg-type]
    calls = [asyncio.ensure_future(authority.authorize(caller(uid), "a", {"uid": str(uid)}))
             for uid in [1] * 8 + [2] * 2 + [3] * 2]
    await asyncio.sleep(0)
    assert polkit.running == 3 and polkit.order == [1, 1, 1]
    polkit.gate.set()
    await asyncio.gather(*calls)
    assert polkit.most == 3
    # once the first three ran, the waiting callers took turns: 2 and 3 did not
    # wait behind all of uid 1's queue
    assert polkit.order[3:7] == [1, 2, 3, 1], polkit.order
    assert limits.running == 0


async def test_a_cancelled_waiter_gives_its_turn_on():
    polkit = SlowPolkit()
    limits = CheckLimits(per_caller=4, in_flight=1)
    authority = Authority(polkit, limits)  # type: ignore[arg-type]
    first = asyncio.ensure_future(authority.authorize(caller(1), "a", {"uid": "1"}))
    second = asyncio.ensure_future(authority.authorize(caller(2), "a", {"uid": "2"}))
    third = asyncio.ensure_future(authority.authorize(caller(3), "a", {"uid": "3"}))
    await asyncio.sleep(0)
    second.cancel()
    polkit.gate.set()
    await asyncio.gather(first, third)
    assert polkit.order == [1, 3] and limits.running == 0 and limits.pending(2) == 0


async def test_root_is_never_counted():
    limits = CheckLimits(per_caller=1, in_flight=1)
    authority = Authority(SlowPolkit(), limits)  # type: ignore[arg-type]
    await asyncio.gather(*(authority.authorize(caller(0), "a", {"uid": "0"})
                           for _ in range(10)))


async def test_refusals_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture):
    authority = Authority(SlowPolkit(), CheckLimits(per_caller=1, in_flight=1))  # type: ignore[arg-type]
    held = asyncio.ensure_future(authority.authorize(caller(666), "a", {"uid": "666"}))
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="pyctrd.ops.authority"):
        for _ in range(1000):
            with pytest.raises(LimitsExceeded):
                await authority.authorize(caller(666), "a", {"uid": "666", "verb": "Start"})
    assert len(caplog.records) == 1, caplog.records
    assert "uid 666" in caplog.records[0].getMessage()
    held.cancel()


def test_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture):
    log = RateLimitedLog(logging.getLogger("t"), interval=0.0)
    quiet = RateLimitedLog(logging.getLogger("t"), interval=3600)
    with caplog.at_level(logging.INFO, logger="t"):
        assert [quiet(logging.INFO, "k", "x %d", i) for i in range(5)] == [True] + [False] * 4
        quiet._last["k"] = (-1e9, 4)  # as if the interval had passed
        assert quiet(logging.INFO, "k", "x %d", 9)
        assert log(logging.INFO, "k", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "x 0", "x 9 (4 similar lines suppressed)", "y"]


async def test_denial_still_says_why():
    polkit = SlowPolkit()
    polkit.gate.set()
    with pytest.raises(AccessDenied, match="not authorized by polkit"):
        await Authority(polkit).authorize(caller(666), "a", {"uid": "666"})  # type: ignore[arg-type]
