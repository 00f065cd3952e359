"""bus/managed.py: the pre-marshalled entries kept are bounded, the answer is not.

Whatever was evicted, GetManagedObjects' body is the same bytes; a body that
would pass the bus's limit is refused as soon as it does.
"""

import functools
from collections.abc import Callable

import pytest
from dbus_fast import Variant

from pyctrd.bus.managed import Interfaces, ManagedObjects
from pyctrd.errors import LimitsExceeded


def objects(count: int) -> list[tuple[str, Callable[[], Interfaces]]]:
    def interfaces(i: int) -> Interfaces:
        return {"org.example.Thing": {"N": Variant("u", i), "S": Variant("s", "x" * i)}}

    return [(f"/org/example/o{i}", functools.partial(interfaces, i)) for i in range(count)]


def test_entries_stay_within_the_budget_and_the_body_does_not_change() -> None:
    everything = objects(50)
    unbounded = ManagedObjects(budget=1 << 30).body(everything)
    small = ManagedObjects(budget=2000)
    assert small.body(everything) == unbounded
    assert small._size <= 2000 and 0 < len(small._entries) < 50
    assert small._size == sum(len(data) for data in small._entries.values())
    # the newest are kept, the oldest made room
    assert "/org/example/o49" in small._entries and "/org/example/o0" not in small._entries
    small.invalidate("/org/example/o49")
    assert small._size == sum(len(data) for data in small._entries.values())
    assert small.cached_body() is None
    assert small.body(everything) == unbounded


def test_a_body_over_the_limit_is_refused_without_being_built_whole() -> None:
    managed = ManagedObjects()
    with pytest.raises(LimitsExceeded, match="more than the bus's maximum"):
        managed.body(objects(200), limit=4096)
    assert managed.cached_body() is None
    assert len(managed._entries) < 200  # it stopped early
