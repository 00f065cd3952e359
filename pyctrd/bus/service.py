"""Puts the core on the bus: one object per container and image, and signals.

BusService listens to the core Runtime and turns each event into prebuilt
signal messages (PropertiesChanged with values, InterfacesAdded/Removed from
the manager's path, the Manager's own signals). It answers GetManagedObjects
itself from the property tables, in time linear in the number of objects.
"""

import logging
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.constants import RequestNameReply

from pyctrd.bus import connection
from pyctrd.bus.container import ContainerInterface
from pyctrd.bus.image import ImageInterface
from pyctrd.bus.manager import ManagerInterface
from pyctrd.bus.names import (
    BUS_NAME,
    CONTAINER_IFACE,
    IMAGE_IFACE,
    MANAGER_IFACE,
    MANAGER_PATH,
    OBJECT_MANAGER_IFACE,
    PROPERTIES_IFACE,
    container_path,
    image_path,
)
from pyctrd.bus.props import changed_properties, container_variants, image_variants
from pyctrd.core.container import Container
from pyctrd.core.image import Image
from pyctrd.core.runtime import Runtime

log = logging.getLogger(__name__)

STANDARD_IFACES = ("org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable",
                   "org.freedesktop.DBus.Peer")


class NameTaken(Exception):
    pass


class BusService:
    def __init__(self, runtime: Runtime, bus: connection.PyctrdBus) -> None:
        self.runtime = runtime
        self.bus = bus
        self.manager = ManagerInterface(runtime)
        self._containers: dict[str, ContainerInterface] = {}
        self._images: dict[str, ImageInterface] = {}

    async def start(self) -> None:
        self.bus.export(MANAGER_PATH, self.manager)
        for image in self.runtime.images.values():
            self._export_image(image)
        for container in self.runtime.containers.values():
            self._export_container(container)
        self.bus.add_message_handler(self._handle_get_managed_objects)
        self.runtime.listener = self
        reply = await self.bus.request_name(BUS_NAME)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise NameTaken(f"{BUS_NAME} is already owned on this bus; is pyctrd running?")

    # RuntimeListener

    def container_added(self, container: Container) -> None:
        path = self._export_container(container)
        self._interfaces_added(path, CONTAINER_IFACE, container_variants(container))
        self._manager_signal("ContainerAdded", container.id, path)
        self._manager_counts_changed()

    def container_removed(self, container: Container) -> None:
        path = container_path(container.id)
        iface = self._containers.pop(container.id, None)
        if iface is not None:
            self.bus.unexport(path, iface)
        self._interfaces_removed(path, CONTAINER_IFACE)
        self._manager_signal("ContainerRemoved", container.id, path)
        self._manager_counts_changed()

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        names = changed_properties(changes)
        if names and container.id in self._containers:
            self._properties_changed(container_path(container.id), CONTAINER_IFACE,
                                     container_variants(container, names))

    def image_added(self, image: Image) -> None:
        path = self._export_image(image)
        self._interfaces_added(path, IMAGE_IFACE, image_variants(image))
        self._manager_signal("ImageAdded", image.id, path)
        self._manager_counts_changed()

    def image_removed(self, image: Image) -> None:
        path = image_path(image.id)
        iface = self._images.pop(image.id, None)
        if iface is not None:
            self.bus.unexport(path, iface)
        self._interfaces_removed(path, IMAGE_IFACE)
        self._manager_signal("ImageRemoved", image.id, path)
        self._manager_counts_changed()

    def image_changed(self, image: Image, names: list[str]) -> None:
        if image.id in self._images:
            self._properties_changed(image_path(image.id), IMAGE_IFACE,
                                     image_variants(image, names))

    # exporting

    def _export_container(self, container: Container) -> str:
        path = container_path(container.id)
        iface = ContainerInterface(container, self.runtime)
        self._containers[container.id] = iface
        self.bus.export(path, iface)
        return path

    def _export_image(self, image: Image) -> str:
        path = image_path(image.id)
        iface = ImageInterface(image, self.runtime)
        self._images[image.id] = iface
        self.bus.export(path, iface)
        return path

    # ObjectManager

    def managed_objects(self) -> dict[str, dict[str, dict[str, Variant]]]:
        objects: dict[str, dict[str, dict[str, Variant]]] = {}
        for image in self.runtime.images.values():
            objects[image_path(image.id)] = _with_standard(IMAGE_IFACE, image_variants(image))
        for container in self.runtime.containers.values():
            objects[container_path(container.id)] = _with_standard(
                CONTAINER_IFACE, container_variants(container))
        return objects

    def _handle_get_managed_objects(self, msg: Message) -> Message | None:
        if (msg.member != "GetManagedObjects" or msg.path != MANAGER_PATH
                or msg.message_type is not MessageType.METHOD_CALL
                or msg.interface not in (None, OBJECT_MANAGER_IFACE)):
            return None
        return Message.new_method_return(msg, "a{oa{sa{sv}}}", [self.managed_objects()])

    # signals, built directly (dbus-fast's helpers scan every exported path)

    def _properties_changed(self, path: str, iface: str, values: dict[str, Variant]) -> None:
        connection.send(self.bus, Message.new_signal(
            path, PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as", [iface, values, []]))

    def _interfaces_added(self, path: str, iface: str, values: dict[str, Variant]) -> None:
        connection.send(self.bus, Message.new_signal(
            MANAGER_PATH, OBJECT_MANAGER_IFACE, "InterfacesAdded", "oa{sa{sv}}",
            [path, _with_standard(iface, values)]))

    def _interfaces_removed(self, path: str, iface: str) -> None:
        connection.send(self.bus, Message.new_signal(
            MANAGER_PATH, OBJECT_MANAGER_IFACE, "InterfacesRemoved", "oas",
            [path, [iface, *STANDARD_IFACES]]))

    def _manager_signal(self, member: str, object_id: str, path: str) -> None:
        connection.send(self.bus, Message.new_signal(
            MANAGER_PATH, MANAGER_IFACE, member, "so", [object_id, path]))

    def _manager_counts_changed(self) -> None:
        self._properties_changed(MANAGER_PATH, MANAGER_IFACE, self.manager.counts())


def _with_standard(iface: str, values: dict[str, Variant]) -> dict[str, dict[str, Variant]]:
    return {iface: values, **{name: {} for name in STANDARD_IFACES}}
