"""org.pyctrd1.Manager at /org/pyctrd1: create, find and list; import images."""

import contextlib
import os
from typing import Any

from dbus_fast import Variant
from dbus_fast.service import ServiceInterface, dbus_signal, method

from pyctrd.bus.errors import translate_errors
from pyctrd.bus.props import add_readonly_properties, annotate_fd_methods, name_out_args
from pyctrd.errors import PyctrdError
from pyctrd.ops.names import MANAGER_IFACE, container_path, image_path
from pyctrd.ops.operations import Check, Operation, Operations, Target, check
from pyctrd.ops.options import decode_dbus
from pyctrd.ops.properties import MANAGER_PROPERTIES


def create_options(options: dict[str, Variant]) -> dict[str, Any]:
    """CreateContainer's a{sv} as checked plain values (InvalidArgument if not)."""
    return decode_dbus({key: (variant.signature, variant.value)
                        for key, variant in options.items()})


class ManagerObject(ServiceInterface):
    interface = MANAGER_IFACE

    def __init__(self, operations: Operations) -> None:
        super().__init__(self.interface)
        self.operations = operations

    def call_check(self, operation: Operation, body: list[Any]) -> Check:
        """The polkit check of a Manager call: its first argument names the target."""
        if operation.target is Target.NONE:
            return check(operation, None)
        given = str(body[0])
        options: dict[str, Any] = {}
        if operation.target is Target.NEW_CONTAINER:
            # Options that do not decode are the handler's to refuse, once allowed.
            with contextlib.suppress(PyctrdError):
                options = create_options(body[2])
        return check(operation, self.operations.target(operation, given), given, options)

    @method()
    @translate_errors
    async def CreateContainer(self, image: "s", command: "as", options: "a{sv}") -> "o":
        container = self.operations.create_container(image, command, create_options(options))
        return container_path(container.id)

    @method()
    @translate_errors
    async def GetContainer(self, name_or_id: "s") -> "o":
        return container_path(self.operations.get_container(name_or_id).id)

    @method()
    @translate_errors
    async def ListContainers(self) -> "a(sssso)":
        return [[c.id, c.name, c.config.image_ref, str(c.state), container_path(c.id)]
                for c in self.operations.list_containers()]

    @method()
    @translate_errors
    async def RemoveContainer(self, name_or_id: "s", force: "b") -> None:
        container = self.operations.get_container(name_or_id)
        await self.operations.remove_container(container, force)

    @method()
    @translate_errors
    async def ImportImage(self, archive: "h", reference: "s") -> "so":
        try:
            image = await self.operations.import_image(archive, reference)
        finally:
            os.close(archive)
        return [image.id, image_path(image.id)]

    @method()
    @translate_errors
    async def GetImage(self, reference_or_id: "s") -> "o":
        return image_path(self.operations.get_image(reference_or_id).id)

    @method()
    @translate_errors
    async def ListImages(self) -> "a(ssto)":
        # one row per reference, as `podman images` lists each tag
        return [[i.id, reference, i.size, image_path(i.id)]
                for i in self.operations.list_images()
                for reference in (i.references or [""])]

    @method()
    @translate_errors
    async def RemoveImage(self, reference_or_id: "s", force: "b") -> None:
        await self.operations.remove_image_named(reference_or_id, force)

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


add_readonly_properties(ManagerObject, MANAGER_PROPERTIES, lambda obj: obj.operations.engine)
name_out_args(ManagerObject, {
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
annotate_fd_methods(ManagerObject)
