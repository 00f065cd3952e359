"""Watch: core events fanned out to each subscribed client through a bounded queue.

The core calls a listener synchronously at every change, so putting an event
must never wait: each subscription has a queue of at most WATCH_QUEUE_MAX
events. A client that stops reading fills its socket buffer, then its queue;
at the limit it is dropped (Overflow, then hang-up) instead of slowing the
daemon or growing its memory. A client that reads keeps up and is never
dropped: nothing is coalesced or skipped, so no change goes unseen.
"""

import asyncio
import collections
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pyctrd.core.container import Container
from pyctrd.core.image import Image
from pyctrd.ops.properties import CONTAINER_PROPERTIES, IMAGE_PROPERTIES, changed
from pyctrd.varlink.types import ContainerEvent, EventKind, ImageEvent, container_info, image_info

WATCH_QUEUE_MAX = 1024

T = TypeVar("T")


class WatchQueue(Generic[T]):
    def __init__(self, limit: int, on_overflow: Callable[[], None]) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._limit = limit
        self._on_overflow = on_overflow
        self._wake = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def put(self, item: T) -> None:
        if self.overflowed or self.closed:
            return
        if len(self._items) >= self._limit:
            self.overflowed = True
            self._items.clear()
            self._wake.set()
            self._on_overflow()
            return
        self._items.append(item)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def get(self) -> T | None:
        """The next event; None once closed or overflowed."""
        while not self._items:
            if self.overflowed or self.closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        return self._items.popleft()


class Watchers:
    """A RuntimeListener: builds each event once, puts it in every subscriber's queue."""

    def __init__(self) -> None:
        self.containers: set[WatchQueue[ContainerEvent]] = set()
        self.images: set[WatchQueue[ImageEvent]] = set()

    def _containers(self, kind: EventKind, container: Container,
                    changed: list[str] | None = None) -> None:
        if self.containers:
            event = ContainerEvent(kind, container.id, changed or [], container_info(container))
            for queue in list(self.containers):
                queue.put(event)

    def _images(self, kind: EventKind, image: Image, changed: list[str] | None = None) -> None:
        if self.images:
            event = ImageEvent(kind, image.id, changed or [], image_info(image))
            for queue in list(self.images):
                queue.put(event)

    def container_added(self, container: Container) -> None:
        self._containers(EventKind.added, container)

    def container_removed(self, container: Container) -> None:
        self._containers(EventKind.removed, container)

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        # Only changes of what ContainerInfo shows (not conmon's pid, cleanup flags).
        if self.containers and (fields := changed_fields(changes)):
            self._containers(EventKind.changed, container, fields)

    def image_added(self, image: Image) -> None:
        self._images(EventKind.added, image)

    def image_removed(self, image: Image) -> None:
        self._images(EventKind.removed, image)

    def image_changed(self, image: Image, fields: list[str]) -> None:
        if self.images and (changed_info := image_changed_fields(fields)):
            self._images(EventKind.changed, image, changed_info)


def changed_fields(changes: dict[str, Any]) -> list[str]:
    """The ContainerInfo fields a change of the core's status ``changes`` touched."""
    return [row.field for row in changed(CONTAINER_PROPERTIES, changes)]


def image_changed_fields(fields: list[str]) -> list[str]:
    """The ImageInfo fields a change of the image's ``fields`` touched."""
    return [row.field for row in changed(IMAGE_PROPERTIES, fields)]
