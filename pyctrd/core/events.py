"""The event history: what happened to containers and images, kept in the store.

``EventLog.record`` is the one way an event is kept; ``EventRecorder`` is an
engine listener that turns lifecycle changes into events. Others (health
checks, exec sessions, networks, jobs) call ``engine.events.record(...)``
with their own type and action, e.g.
``record("job", "pull", job_id, {"reference": ref})``.

The store keeps the last HISTORY_MAX events (older ones are deleted as new
ones arrive), across restarts. Times are microseconds since the epoch and
never go backwards in the history, so ordering by time and by arrival agree.
"""

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyctrd.core.container import Container
from pyctrd.core.image import Image
from pyctrd.core.state import State
from pyctrd.database import Database

log = logging.getLogger(__name__)

HISTORY_MAX = 10_000


@dataclass(frozen=True)
class Event:
    time_usec: int
    type: str  # "container", "image", "network", "job", ...
    action: str  # "create", "start", "died", "pull", ...
    id: str
    attributes: dict[str, str]


class EventLog:
    def __init__(self, store: Database, keep: int = HISTORY_MAX) -> None:
        self._store = store
        self._keep = keep
        self._last_usec = store.last_event_time()

    def record(self, kind: str, action: str, object_id: str,
               attributes: dict[str, str] | None = None) -> Event:
        """Keep one event now. A store failure is logged, never raised: history
        is not worth failing the operation that made it."""
        now = max(time.time_ns() // 1000, self._last_usec)  # a clock step back: no reorder
        self._last_usec = now
        event = Event(now, kind, action, object_id, dict(attributes or {}))
        try:
            self._store.add_event(now, kind, action, object_id, event.attributes, self._keep)
        except Exception:
            log.exception("could not keep the event %s %s of %s", kind, action, object_id)
        return event

    def history(self, since_usec: int = 0, until_usec: int = 0) -> list[Event]:
        """Oldest first; a bound of 0 is no bound; both bounds are inclusive."""
        return [Event(*row) for row in self._store.events(since_usec, until_usec)]


def container_attributes(container: Container) -> dict[str, str]:
    return {"name": container.name, "image": container.config.image_ref}


def image_attributes(image: Image) -> dict[str, str]:
    return {"name": image.reference}


class EventRecorder:
    """An engine listener: container and image lifecycle events into an EventLog.

    It remembers each container's last state to name a transition (running
    after paused is "unpause", after anything else "start") and each image's
    references to tell a tag from an untag.
    """

    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._states: dict[str, State] = {}
        self._references: dict[str, set[str]] = {}

    def seed(self, containers: Iterable[Container], images: Iterable[Image]) -> None:
        """What the store holds at start-up, before recovery changes anything."""
        for container in containers:
            self._states[container.id] = container.state
        for image in images:
            self._references[image.id] = set(image.references)

    def container_added(self, container: Container) -> None:
        self._states[container.id] = container.state
        self._events.record("container", "create", container.id,
                            container_attributes(container))

    def container_removed(self, container: Container) -> None:
        self._states.pop(container.id, None)
        self._events.record("container", "remove", container.id,
                            container_attributes(container))

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        new = changes.get("state")
        if new is None:
            return
        old = self._states.get(container.id)
        self._states[container.id] = new
        action = _transition(old, new)
        if action is None:
            return
        attributes = container_attributes(container)
        if action == "died":
            attributes["exit_code"] = str(container.status.exit_code)
        self._events.record("container", action, container.id, attributes)

    def image_added(self, image: Image) -> None:
        # The engine records how it came ("import"; a pull job its "pull").
        self._references[image.id] = set(image.references)

    def image_removed(self, image: Image) -> None:
        self._references.pop(image.id, None)
        self._events.record("image", "remove", image.id, image_attributes(image))

    def image_changed(self, image: Image, fields: list[str]) -> None:
        old = self._references.get(image.id, set())
        new = set(image.references)
        self._references[image.id] = new
        for reference in sorted(new - old):
            self._events.record("image", "tag", image.id, {"name": reference})
        for reference in sorted(old - new):
            self._events.record("image", "untag", image.id, {"name": reference})


def _transition(old: State | None, new: State) -> str | None:
    if new == State.RUNNING:
        return "unpause" if old == State.PAUSED else "start"
    if new == State.PAUSED:
        return "pause"
    if new == State.EXITED:
        return "died" if old in (State.RUNNING, State.PAUSED, State.CREATED, None) else None
    if new == State.CREATED:
        return "init"
    return None
