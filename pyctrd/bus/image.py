"""org.pyctrd1.Image: one imported image."""

from typing import TYPE_CHECKING

from dbus_fast.service import ServiceInterface, method

from pyctrd.bus.errors import translate_errors
from pyctrd.bus.names import IMAGE_IFACE
from pyctrd.bus.props import IMAGE_PROPERTIES, add_readonly_properties
from pyctrd.core.image import Image

if TYPE_CHECKING:
    from pyctrd.core.engine import Engine


class ImageInterface(ServiceInterface):
    def __init__(self, image: Image, runtime: "Engine") -> None:
        super().__init__(IMAGE_IFACE)
        self.image = image
        self._runtime = runtime

    @method()
    @translate_errors
    async def Remove(self, force: "b") -> None:
        await self._runtime.remove_image(self.image, force)


add_readonly_properties(ImageInterface, IMAGE_PROPERTIES, lambda iface: iface.image)
