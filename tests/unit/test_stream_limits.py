"""Streams by owner: a per-uid cap, and a connection's streams ended when it goes."""

import asyncio

import pytest

from pyctrd.core import stdio
from pyctrd.errors import LimitsExceeded
from pyctrd.ops.streams import StreamLimits, StreamOwner


class Stream:
    """A stand-in for a log or attach stream: runs until cancelled, then cleans up."""

    def __init__(self) -> None:
        self.cleaned = False

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.cleaned = True


async def open_stream(limits: StreamLimits, owner: StreamOwner) -> Stream:
    stream = Stream()
    async with limits.admit(owner, "OpenLog"):
        stdio._spawn(stream.run(), "test stream", owner)
    return stream


async def test_the_cap_counts_a_uid_over_all_its_connections():
    limits = StreamLimits(per_uid=3)
    a, b = StreamOwner(1000, "dbus::1.1"), StreamOwner(1000, "dbus::1.2")
    streams = [await open_stream(limits, a), await open_stream(limits, a),
               await open_stream(limits, b)]
    with pytest.raises(LimitsExceeded, match="3 log/attach streams"):
        await open_stream(limits, b)
    # another user and root are not affected
    streams.append(await open_stream(limits, StreamOwner(1001, "dbus::1.3")))
    for _ in range(5):
        streams.append(await open_stream(limits, StreamOwner(0, "dbus::1.4")))
    assert limits.running(1000) == 3
    for owner in {a, b, StreamOwner(1001, "dbus::1.3"), StreamOwner(0, "dbus::1.4")}:
        limits.close_connection(owner.connection)
    await asyncio.sleep(0.01)
    assert all(s.cleaned for s in streams)
    assert not stdio.stream_owners()


async def test_streams_being_set_up_count_too():
    limits = StreamLimits(per_uid=1)
    owner = StreamOwner(1000, "dbus::1.1")
    async with limits.admit(owner, "Attach"):  # an attach awaiting conmon's socket
        with pytest.raises(LimitsExceeded):
            async with limits.admit(owner, "Attach"):
                pass
    async with limits.admit(owner, "Attach"):
        pass


async def test_closing_a_connection_ends_only_its_streams_even_unstarted_ones():
    limits = StreamLimits()
    mine, other = StreamOwner(1000, "dbus::1.1"), StreamOwner(1000, "dbus::1.2")
    kept = await open_stream(limits, other)
    # Closed in the same step as it was made, before its task first ran: its
    # clean-up still runs (a task cancelled before its first step would skip it).
    fresh = await open_stream(limits, mine)
    assert limits.close_connection(mine.connection) == 1
    await asyncio.sleep(0.01)
    assert fresh.cleaned and not kept.cleaned
    assert stdio.open_streams(mine) == 0 and stdio.open_streams(other) == 1
    limits.close_connection(other.connection)
    await asyncio.sleep(0.01)
    assert kept.cleaned
