"""org.pyctrd1.Volume: one named volume's object; decode, call, encode."""

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dbus_fast import Message, Variant
from dbus_fast.service import ServiceInterface, method

from pyctrd.bus import connection
from pyctrd.bus.errors import translate_errors
from pyctrd.bus.managed import Interfaces
from pyctrd.bus.props import add_readonly_properties, variants
from pyctrd.core.volumes import Volume
from pyctrd.errors import InvalidArgument
from pyctrd.ops.names import (
    MANAGER_PATH,
    OBJECT_MANAGER_IFACE,
    PROPERTIES_IFACE,
    VOLUME_IFACE,
    volume_path,
)
from pyctrd.ops.operations import Check, Operation, Operations, check
from pyctrd.ops.properties import VOLUME_PROPERTIES, changed

if TYPE_CHECKING:
    from pyctrd.bus.service import BusService


def decode_volume_options(options: dict[str, Variant]) -> dict[str, str]:
    """CreateVolume's a{sv}: only ``labels`` (a{ss}); the labels it gives."""
    unknown = sorted(set(options) - {"labels"})
    if unknown:
        raise InvalidArgument(f"unknown volume option {unknown[0]!r} (known: labels)")
    labels = options.get("labels")
    if labels is None:
        return {}
    if labels.signature != "a{ss}":
        raise InvalidArgument(f"volume option 'labels' must be a{{ss}}, not {labels.signature}")
    return dict(labels.value)


class VolumeObject(ServiceInterface):
    interface = VOLUME_IFACE

    def __init__(self, volume: Volume, operations: Operations) -> None:
        super().__init__(self.interface)
        self.volume = volume
        self.operations = operations

    def call_check(self, operation: Operation, body: list[Any]) -> Check:
        return check(operation, self.volume)

    @method()
    @translate_errors
    async def Remove(self, force: "b") -> None:
        await self.operations.remove_volume(self.volume, force)


add_readonly_properties(VolumeObject, VOLUME_PROPERTIES, lambda obj: obj.volume)


class VolumeBus:
    """Volume objects (exported while they exist) and their signals."""

    def __init__(self, service: "BusService") -> None:
        self._service = service
        self._objects: dict[str, VolumeObject] = {}

    def start(self) -> None:
        volumes = self._service.engine.volumes
        for volume in volumes.volumes.values():
            self._export(volume)
        volumes.add_listener(self)

    def managed_objects(self) -> list[tuple[str, Callable[[], Interfaces]]]:
        return [(volume_path(name), functools.partial(_interfaces, obj.volume))
                for name, obj in self._objects.items()]

    def _export(self, volume: Volume) -> str:
        path = volume_path(volume.name)
        obj = VolumeObject(volume, self._service.operations)
        self._objects[volume.name] = obj
        self._service.bus.export(path, obj)
        return path

    # VolumeListener (core/volumes.py)

    def volume_added(self, volume: Volume) -> None:
        path = self._export(volume)
        self._service._managed.invalidate(path)
        connection.send(self._service.bus, Message.new_signal(
            MANAGER_PATH, OBJECT_MANAGER_IFACE, "InterfacesAdded", "oa{sa{sv}}",
            [path, _interfaces(volume)]))

    def volume_changed(self, volume: Volume, fields: list[str]) -> None:
        rows = changed(VOLUME_PROPERTIES, fields)
        if not rows or volume.name not in self._objects:
            return
        path = volume_path(volume.name)
        self._service._managed.invalidate(path)
        connection.send(self._service.bus, Message.new_signal(
            path, PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as",
            [VOLUME_IFACE, variants(VOLUME_PROPERTIES, volume, rows), []]))

    def volume_removed(self, volume: Volume) -> None:
        path = volume_path(volume.name)
        obj = self._objects.pop(volume.name, None)
        if obj is not None:
            self._service.bus.unexport(path, obj)
        self._service._managed.invalidate(path)
        connection.send(self._service.bus, Message.new_signal(
            MANAGER_PATH, OBJECT_MANAGER_IFACE, "InterfacesRemoved", "oas",
            [path, [VOLUME_IFACE, *_STANDARD]]))


_STANDARD = ("org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable",
             "org.freedesktop.DBus.Peer")


def _interfaces(volume: Volume) -> Interfaces:
    return {VOLUME_IFACE: variants(VOLUME_PROPERTIES, volume),
            **{name: {} for name in _STANDARD}}
