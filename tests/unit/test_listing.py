"""pyctrd.ops.listing: pages by ID, stateless, cheap at 100,000 containers."""

import random
import time
from dataclasses import dataclass

import pytest

from pyctrd.errors import InvalidArgument
from pyctrd.ops import listing


@dataclass(frozen=True)
class Fake:
    id: str
    state: str = "configured"


def page(containers: list[Fake], request: listing.PageRequest) -> tuple[list[Fake], str]:
    return listing.ContainerIds({c.id: c for c in containers}).page(request)


def reference_page(containers: list[Fake], request: listing.PageRequest
                   ) -> tuple[list[Fake], str]:
    """The definition, spelled out: by ID, after ``after``, in the states asked;
    the next ``after`` only when more are left."""
    matching = sorted((c for c in containers if c.id > request.after
                       and (not request.states or c.state in request.states)),
                      key=lambda c: c.id)
    if len(matching) > request.limit:
        return matching[:request.limit], matching[request.limit - 1].id
    return matching, ""


def collect(containers: list[Fake], **kwargs: object) -> list[str]:
    ids: list[str] = []
    after = ""
    for _ in range(len(containers) + 2):
        found, after = page(containers, listing.page_request(after=after, **kwargs))
        ids += [c.id for c in found]
        if not after:
            return ids
    raise AssertionError("paging did not end")


def test_every_container_once_in_id_order() -> None:
    containers = [Fake(f"{i * 7919 % 1000:064x}") for i in range(1000)]
    assert collect(containers, limit=33) == sorted(c.id for c in containers)
    assert collect(containers, limit=1000) == sorted(c.id for c in containers)
    assert collect([], limit=5) == []


def test_states_filter() -> None:
    containers = [Fake(f"{i:064x}", "running" if i % 3 == 0 else "exited") for i in range(30)]
    assert collect(containers, limit=4, states=["running"]) == [
        f"{i:064x}" for i in range(0, 30, 3)]


def test_removed_meanwhile_is_skipped_and_none_twice() -> None:
    containers = [Fake(f"{i:064x}") for i in range(10)]
    first, after = page(containers, listing.page_request(limit=4))
    del containers[2:6]  # the last of the first page among them
    rest, _ = page(containers, listing.page_request(after=after, limit=100))
    assert [c.id for c in first + rest] == [f"{i:064x}" for i in (0, 1, 2, 3, 6, 7, 8, 9)]


@pytest.mark.parametrize("kwargs", [{"limit": 5001}, {"limit": -1},
                                    {"properties": ["Name", "Bogus"]},
                                    {"states": ["asleep"]}])
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        listing.page_request(**kwargs)  # type: ignore[arg-type]


def test_a_page_of_100000_is_cheap() -> None:
    containers = [Fake(f"{i * 2654435761 % 2**32:064x}") for i in range(100_000)]
    index = listing.ContainerIds({c.id: c for c in containers})
    start = time.perf_counter()
    found, after = index.page(listing.page_request(after=f"{2**31:064x}", limit=2000))
    elapsed = time.perf_counter() - start
    assert len(found) == 2000 and after == found[-1].id
    assert elapsed < 0.5, f"one page of 100,000 took {elapsed:.3f} s"


def test_the_id_index_pages_by_definition_as_containers_come_and_go() -> None:
    rng = random.Random(7)
    states = ["configured", "running", "exited"]
    containers = {cid: Fake(cid, rng.choice(states))
                  for cid in (f"{rng.getrandbits(64):016x}" for _ in range(300))}
    index = listing.ContainerIds(containers)
    for step in range(60):
        if step % 3 == 0:  # a container comes
            new = Fake(f"{rng.getrandbits(64):016x}", rng.choice(states))
            containers[new.id] = new
            index.container_added(new)  # type: ignore[arg-type]
            index.container_added(new)  # type: ignore[arg-type]  # twice: listed once
        elif step % 3 == 1:  # one goes
            gone = containers.pop(rng.choice(sorted(containers)))
            index.container_removed(gone)  # type: ignore[arg-type]
        kwargs: dict = {"limit": rng.choice([1, 7, 50, 500])}
        if step % 2:
            kwargs["states"] = [rng.choice(states)]
        after = rng.choice(["", *sorted(containers)[::40]])
        request = listing.page_request(after=after, **kwargs)
        assert index.page(request) == reference_page(list(containers.values()), request)
    assert index.ids == sorted(containers)
