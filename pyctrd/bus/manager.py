"""org.pyctrd1.Manager at /org/pyctrd1: create, find and list; import images."""

import contextlib
import os
from typing import Any

from dbus_fast import Variant
from dbus_fast.service import ServiceInterface, dbus_signal, method

from pyctrd.bus import paging
from pyctrd.bus.callers import caller_uid
from pyctrd.bus.errors import translate_errors
from pyctrd.bus.props import add_readonly_properties, annotate_fd_methods, name_out_args
from pyctrd.bus.volume import decode_volume_options
from pyctrd.errors import PyctrdError
from pyctrd.ops.names import (
    MANAGER_IFACE,
    container_path,
    image_path,
    job_path,
    network_path,
    volume_path,
)
from pyctrd.ops.networkoptions import decode_dbus as decode_network_options
from pyctrd.ops.operations import Check, Operation, Operations, Target, check
from pyctrd.ops.options import decode_dbus
from pyctrd.ops.properties import MANAGER_PROPERTIES
from pyctrd.ops.transferoptions import decode as decode_transfer_options


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
    async def ListContainersPaged(self, options: "a{sv}") -> "a{oa{sa{sv}}}s":
        # BusService answers it first, from GetManagedObjects' marshalled entries
        # (bus/paging.py); this is the same answer the slow way.
        return list(paging.page_values(self.operations.page_containers,
                                       paging.page_request(options)))

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

    @method()
    @translate_errors
    async def GetEvents(self, since_usec: "t", until_usec: "t") -> "a(tsssa{ss})":
        return [[e.time_usec, e.type, e.action, e.id, e.attributes]
                for e in self.operations.get_events(since_usec, until_usec)]

    @method()
    @translate_errors
    async def PullImage(self, reference: "s", options: "a{sv}") -> "o":
        job = self.operations.pull_image(reference, decode_transfer_options(
            {key: (variant.signature, variant.value) for key, variant in options.items()}),
            await caller_uid("PullImage"))
        return job_path(job.id)

    @method()
    @translate_errors
    async def ListJobs(self) -> "ao":
        return [job_path(job.id) for job in self.operations.list_jobs()]

    # Networks (core/networks.py)

    @method()
    @translate_errors
    async def CreateNetwork(self, name: "s", options: "a{sv}") -> "o":
        network = self.operations.create_network(name, decode_network_options(
            {key: (variant.signature, variant.value) for key, variant in options.items()}))
        return network_path(network.id)

    @method()
    @translate_errors
    async def GetNetwork(self, name_or_id: "s") -> "o":
        return network_path(self.operations.get_network(name_or_id).id)

    @method()
    @translate_errors
    async def ListNetworks(self) -> "a(ssso)":
        return [[n.id, n.name, n.subnet, network_path(n.id)]
                for n in self.operations.list_networks()]

    @method()
    @translate_errors
    async def RemoveNetwork(self, name_or_id: "s", force: "b") -> None:
        network = self.operations.get_network(name_or_id)
        await self.operations.remove_network(network, force)

    # Volumes (core/volumes.py, bus/volume.py)

    @method()
    @translate_errors
    async def CreateVolume(self, name: "s", options: "a{sv}") -> "o":
        return volume_path(self.operations.create_volume(
            name, decode_volume_options(options)).name)

    @method()
    @translate_errors
    async def GetVolume(self, name: "s") -> "o":
        return volume_path(self.operations.get_volume(name).name)

    @method()
    @translate_errors
    async def ListVolumes(self) -> "a(sso)":
        return [[v.name, v.mountpoint, volume_path(v.name)]
                for v in self.operations.list_volumes()]

    @method()
    @translate_errors
    async def RemoveVolume(self, name: "s", force: "b") -> None:
        await self.operations.remove_volume(self.operations.get_volume(name), force)

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
    "ListContainersPaged": ["objects", "next"],
    "ImportImage": ["image_id", "image"],
    "GetImage": ["image"],
    "ListImages": ["images"],
    "CreateNetwork": ["network"],
    "GetNetwork": ["network"],
    "ListNetworks": ["networks"],
    "CreateVolume": ["volume"],
    "GetVolume": ["volume"],
    "ListVolumes": ["volumes"],
    "GetEvents": ["events"],
    "PullImage": ["job"],
    "ListJobs": ["jobs"],
    "ContainerAdded": ["id", "path"],
    "ContainerRemoved": ["id", "path"],
    "ImageAdded": ["id", "path"],
    "ImageRemoved": ["id", "path"],
})
annotate_fd_methods(ManagerObject)
