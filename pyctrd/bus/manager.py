"""org.pyctrd1.Manager at /org/pyctrd1: create, find and list; import images."""

import os
from typing import TYPE_CHECKING

from dbus_fast import Variant
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_property, dbus_signal, method

from pyctrd import __version__
from pyctrd.bus.errors import translate_errors
from pyctrd.bus.names import MANAGER_IFACE, container_path, image_path
from pyctrd.bus.options import unwrap_options
from pyctrd.bus.props import name_out_args

if TYPE_CHECKING:
    from pyctrd.core.engine import Engine


class ManagerInterface(ServiceInterface):
    def __init__(self, runtime: "Engine") -> None:
        super().__init__(MANAGER_IFACE)
        self._runtime = runtime

    @method()
    @translate_errors
    async def CreateContainer(self, image: "s", command: "as",
                              options: "a{sv}") -> "o":
        options_plain = unwrap_options(options)
        container = self._runtime.create_container(image, command, options_plain)
        return container_path(container.id)

    @method()
    @translate_errors
    async def GetContainer(self, name_or_id: "s") -> "o":
        return container_path(self._runtime.lookup_container(name_or_id).id)

    @method()
    @translate_errors
    async def ListContainers(self) -> "a(sssso)":
        return [
            [c.id, c.name, c.config.image_ref, str(c.state), container_path(c.id)]
            for c in self._runtime.containers.values()
        ]

    @method()
    @translate_errors
    async def RemoveContainer(self, name_or_id: "s", force: "b") -> None:
        container = self._runtime.lookup_container(name_or_id)
        await self._runtime.remove_container(container, force)

    @method()
    @translate_errors
    async def ImportImage(self, archive: "h", reference: "s") -> "so":
        try:
            image = await self._runtime.import_image(archive, reference)
        finally:
            os.close(archive)
        return [image.id, image_path(image.id)]

    @method()
    @translate_errors
    async def GetImage(self, reference_or_id: "s") -> "o":
        return image_path(self._runtime.lookup_image(reference_or_id).id)

    @method()
    @translate_errors
    async def ListImages(self) -> "a(ssto)":
        # one row per reference, as `podman images` lists each tag
        return [
            [i.id, reference, i.size, image_path(i.id)]
            for i in self._runtime.images.values()
            for reference in (i.references or [""])
        ]

    @method()
    @translate_errors
    async def RemoveImage(self, reference_or_id: "s", force: "b") -> None:
        await self._runtime.remove_image_named(reference_or_id, force)

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> "s":
        return __version__

    @dbus_property(access=PropertyAccess.READ)
    def Runtime(self) -> "s":
        return self._runtime.oci.path

    @dbus_property(access=PropertyAccess.READ)
    def ContainerCount(self) -> "u":
        return len(self._runtime.containers)

    @dbus_property(access=PropertyAccess.READ)
    def ImageCount(self) -> "u":
        return len(self._runtime.images)

    # Declared for introspection; BusService sends them as prebuilt messages.
    @dbus_signal()
    def ContainerAdded(self) -> "so":
        """(id, path) of a new container."""

    @dbus_signal()
    def ContainerRemoved(self) -> "so":
        """(id, path) of a removed container."""

    @dbus_signal()
    def ImageAdded(self) -> "so":
        """(id, path) of a new image."""

    @dbus_signal()
    def ImageRemoved(self) -> "so":
        """(id, path) of a removed image."""

    def counts(self) -> dict[str, Variant]:
        return {"ContainerCount": Variant("u", len(self._runtime.containers)),
                "ImageCount": Variant("u", len(self._runtime.images))}


name_out_args(ManagerInterface, {
    "CreateContainer": ["container"],
    "GetContainer": ["container"],
    "ListContainers": ["containers"],
    "ImportImage": ["image_id", "image"],
    "GetImage": ["image"],
    "ListImages": ["images"],
    "ContainerAdded": ["id", "path"],
    "ContainerRemoved": ["id", "path"],
    "ImageAdded": ["id", "path"],
    "ImageRemoved": ["id", "path"],
})
