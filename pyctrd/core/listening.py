"""What the engine tells its listeners (front ends, the event log, supervisors).

A listener may subclass EngineListener and override only the events it
cares about: the others do nothing.
"""

from typing import Any, Protocol

from pyctrd.core.container import Container
from pyctrd.core.image import Image


class EngineListener(Protocol):
    def container_added(self, container: Container) -> None:
        return None

    def container_removed(self, container: Container) -> None:
        return None

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        return None

    def image_added(self, image: Image) -> None:
        return None

    def image_removed(self, image: Image) -> None:
        return None

    def image_changed(self, image: Image, fields: list[str]) -> None:
        """``fields``: the Image attributes that changed, e.g. ["reference"]."""
        return None
