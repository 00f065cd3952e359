"""org.pyctrd1.Network: one network's object; decode, call, encode."""

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dbus_fast import Message
from dbus_fast.service import ServiceInterface, method

from pyctrd.bus import connection
from pyctrd.bus.errors import translate_errors
from pyctrd.bus.managed import Interfaces
from pyctrd.bus.props import add_readonly_properties, variants
from pyctrd.core.networks import Network
from pyctrd.ops.names import (
    MANAGER_PATH,
    NETWORK_IFACE,
    OBJECT_MANAGER_IFACE,
    PROPERTIES_IFACE,
    network_path,
)
from pyctrd.ops.operations import Check, Operation, Operations, check
from pyctrd.ops.properties import NETWORK_PROPERTIES, changed

if TYPE_CHECKING:
    from pyctrd.bus.service import BusService

# Up to this many containers on a network, a change of its members is announced at once.
MEMBERS_AT_ONCE = 1000
MEMBERS_DELAY = 0.2  # s: at most one such announcement per network this often


class NetworkObject(ServiceInterface):
    interface = NETWORK_IFACE

    def __init__(self, network: Network, operations: Operations) -> None:
        super().__init__(self.interface)
        self.network = network
        self.operations = operations

    def call_check(self, operation: Operation, body: list[Any]) -> Check:
        return check(operation, self.network)

    @method()
    @translate_errors
    async def Remove(self, force: "b") -> None:
        await self.operations.remove_network(self.network, force)


add_readonly_properties(NetworkObject, NETWORK_PROPERTIES, lambda obj: obj.network)


class NetworkBus:
    """Network objects (exported while they exist: there are few) and their signals."""

    def __init__(self, service: "BusService") -> None:
        self._service = service
        self._objects: dict[str, NetworkObject] = {}
        self._members_due: set[str] = set()  # networks whose Containers change is due

    def start(self) -> None:
        networks = self._service.engine.networks
        if networks is None:
            return
        for network in networks.networks.values():
            self._export(network)
        networks.add_listener(self)

    def managed_objects(self) -> list[tuple[str, Callable[[], Interfaces]]]:
        return [(network_path(nid), functools.partial(_interfaces, obj.network))
                for nid, obj in self._objects.items()]

    def _export(self, network: Network) -> str:
        path = network_path(network.id)
        obj = NetworkObject(network, self._service.operations)
        self._objects[network.id] = obj
        self._service.bus.export(path, obj)
        return path

    # NetworkListener (core/networks.py)

    def network_added(self, network: Network) -> None:
        path = self._export(network)
        self._service._managed.invalidate(path)
        connection.send(self._service.bus, Message.new_signal(
            MANAGER_PATH, OBJECT_MANAGER_IFACE, "InterfacesAdded", "oa{sa{sv}}",
            [path, _interfaces(network)]))

    def network_changed(self, network: Network, fields: list[str]) -> None:
        if fields == ["members"] and len(network.members) > MEMBERS_AT_ONCE:
            # Its Containers: 100,000 IDs are 7 MB to sort and send. A burst of joins
            # and leaves (creates, removes) is announced once, a moment later.
            self._service._managed.invalidate(network_path(network.id))
            if network.id not in self._members_due:
                self._members_due.add(network.id)
                asyncio.get_running_loop().call_later(MEMBERS_DELAY, self._members_now,
                                                      network)
            return
        self._announce(network, fields)

    def _members_now(self, network: Network) -> None:
        self._members_due.discard(network.id)
        self._announce(network, ["members"])

    def _announce(self, network: Network, fields: list[str]) -> None:
        rows = changed(NETWORK_PROPERTIES, fields)
        if not rows or network.id not in self._objects:
            return
        path = network_path(network.id)
        self._service._managed.invalidate(path)
        connection.send(self._service.bus, Message.new_signal(
            path, PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as",
            [NETWORK_IFACE, variants(NETWORK_PROPERTIES, network, rows), []]))

    def network_removed(self, network: Network) -> None:
        path = network_path(network.id)
        obj = self._objects.pop(network.id, None)
        if obj is not None:
            self._service.bus.unexport(path, obj)
        self._service._managed.invalidate(path)
        connection.send(self._service.bus, Message.new_signal(
            MANAGER_PATH, OBJECT_MANAGER_IFACE, "InterfacesRemoved", "oas",
            [path, [NETWORK_IFACE, *_STANDARD]]))


_STANDARD = ("org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable",
             "org.freedesktop.DBus.Peer")


def _interfaces(network: Network) -> Interfaces:
    return {NETWORK_IFACE: variants(NETWORK_PROPERTIES, network),
            **{name: {} for name in _STANDARD}}
