"""org.pyctrd1.Image: one stored image's object."""

import os
from typing import Any

from dbus_fast.service import ServiceInterface, method

from pyctrd.bus.callers import caller_uid
from pyctrd.bus.errors import translate_errors
from pyctrd.bus.props import add_readonly_properties, annotate_fd_methods, name_out_args
from pyctrd.core.image import Image
from pyctrd.ops.names import IMAGE_IFACE, job_path
from pyctrd.ops.operations import Check, Operation, Operations, check
from pyctrd.ops.properties import IMAGE_PROPERTIES
from pyctrd.ops.transferoptions import decode as decode_transfer_options


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

    @method()
    @translate_errors
    async def Push(self, destination: "s", options: "a{sv}") -> "o":
        job = self.operations.push_image(self.image, destination, decode_transfer_options(
            {key: (variant.signature, variant.value) for key, variant in options.items()}),
            await caller_uid("Push"))
        return job_path(job.id)

    @method()
    @translate_errors
    async def Save(self, fd: "h", format: "s") -> None:
        try:
            await self.operations.save_image(self.image, fd, format)
        finally:
            os.close(fd)

    @method()
    @translate_errors
    async def Tag(self, reference: "s") -> None:
        self.operations.tag_image(self.image, reference)

    @method()
    @translate_errors
    async def Untag(self, reference: "s") -> None:
        self.operations.untag_image(self.image, reference)


add_readonly_properties(ImageObject, IMAGE_PROPERTIES, lambda obj: obj.image)
name_out_args(ImageObject, {"Push": ["job"]})
annotate_fd_methods(ImageObject)
