"""Listing containers a page at a time: a reply that fits the bus at any count.

GetManagedObjects sends every object with every property in one message; at
tens of thousands of containers that passes the bus's 32 MiB message limit.
ListContainersPaged (D-Bus) and ListPaged (Varlink) return at most ``limit``
containers ordered by ID, each with the properties asked for, and the ID to
continue after. Paging needs no state in the daemon: ``after`` is the last
ID of the previous page. A container created or removed while a client pages
may or may not appear; each one listed is listed once.
"""

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyctrd.core.container import Container
from pyctrd.core.listening import EngineListener
from pyctrd.errors import InvalidArgument
from pyctrd.ops.properties import CONTAINER_PROPERTIES, Property

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000  # all properties of 5,000 containers: a few MB, far below 32 MiB
STATES = ("configured", "created", "running", "paused", "exited", "unknown")


@dataclass(frozen=True)
class PageRequest:
    after: str = ""
    limit: int = DEFAULT_LIMIT
    properties: tuple[Property, ...] = tuple(CONTAINER_PROPERTIES.values())
    states: frozenset[str] = frozenset()  # empty: every state


def page_request(after: str | None = None, limit: int | None = None,
                 properties: Iterable[str] | None = None,
                 states: Iterable[str] | None = None) -> PageRequest:
    """Checked paging arguments (InvalidArgument naming what is wrong)."""
    request = PageRequest()
    if limit is not None and limit != 0:
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit {limit} is out of range: 1 to {MAX_LIMIT} "
                                  f"(0 or absent: {DEFAULT_LIMIT})")
        request = PageRequest(limit=limit)
    rows = request.properties
    if properties:
        unknown = [name for name in properties if name not in CONTAINER_PROPERTIES]
        if unknown:
            raise InvalidArgument(f"no container property {', '.join(unknown)}; the "
                                  f"properties are {', '.join(CONTAINER_PROPERTIES)}")
        rows = tuple(CONTAINER_PROPERTIES[name] for name in dict.fromkeys(properties))
    wanted = frozenset(states or ())
    if wanted - set(STATES):
        raise InvalidArgument(f"no state {', '.join(sorted(wanted - set(STATES)))}; the "
                              f"states are {', '.join(STATES)}")
    return PageRequest(after=after or "", limit=request.limit, properties=rows,
                       states=wanted)


def fields_request(fields: Iterable[str], states: Iterable[str] | None = None
                   ) -> tuple[tuple[Property, ...], frozenset[str]]:
    """The properties named by their Varlink fields (image_id: ImageId) and the
    states to list (empty: every state), checked (InvalidArgument naming what is
    wrong)."""
    by_field = {row.field: row for row in CONTAINER_PROPERTIES.values()}
    names = list(dict.fromkeys(fields))
    unknown = [name for name in names if name not in by_field]
    if unknown or not names:
        raise InvalidArgument(f"no container field {', '.join(unknown) or '(none given)'}; "
                              f"the fields are {', '.join(by_field)}")
    return (tuple(by_field[name] for name in names),
            page_request(states=states).states)


class ContainerIds(EngineListener):
    """The containers' IDs in order, kept as containers come and go (an engine
    listener), so that a page begins with a bisection, not with a pass over every
    container (50 passes over 100,000 for a whole listing in pages of 2,000)."""

    def __init__(self, containers: Mapping[str, Any]) -> None:
        self._containers = containers
        self.ids = sorted(containers)

    def container_added(self, container: Container) -> None:
        i = bisect.bisect_left(self.ids, container.id)
        if i == len(self.ids) or self.ids[i] != container.id:
            self.ids.insert(i, container.id)

    def container_removed(self, container: Container) -> None:
        i = bisect.bisect_left(self.ids, container.id)
        if i < len(self.ids) and self.ids[i] == container.id:
            del self.ids[i]

    def page(self, request: PageRequest) -> tuple[list[Any], str]:
        """The page's containers (by ID) and the ID to pass as ``after`` next (""
        when this is the last page)."""
        ids, containers, states = self.ids, self._containers, request.states
        found: list[Any] = []
        for i in range(bisect.bisect_right(ids, request.after), len(ids)):
            container = containers.get(ids[i])
            if container is None or (states and str(container.state) not in states):
                continue
            if len(found) == request.limit:  # one more exists: there is a next page
                return found, found[-1].id
            found.append(container)
        return found, ""
