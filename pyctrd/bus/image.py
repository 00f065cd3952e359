"""org.pyctrd1.Image: one stored image's object."""

from typing import Any

from dbus_fast.service import ServiceInterface, method

from pyctrd.bus.errors import translate_errors
from pyctrd.bus.props import add_readonly_properties, annotate_fd_methods
from pyctrd.core.image import Image
from pyctrd.ops.names import IMAGE_IFACE
from pyctrd.ops.operations import Check, Operation, Operations, check
from pyctrd.ops.properties import IMAGE_PROPERTIES


class ImageObject(ServiceInterface):
    interface = IMAGE_IFACE

    def __init__(self, image: Image, operations: Operations) -> None:
        super().__init__(self.interface)
        self.image = image
        self.operations = operations

    def call_check(self, operation: Operation, body: list[Any]) -> Check:
        return check(operation, self.image)

    @method()
    @translate_errors
    async def Remove(self, force: "b") -> None:
        await self.operations.remove_image(self.image, force)


add_readonly_properties(ImageObject, IMAGE_PROPERTIES, lambda obj: obj.image)
annotate_fd_methods(ImageObject)
