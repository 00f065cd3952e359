"""Puts the core on the bus: one object per container and image, and signals.

BusService listens to the core Engine and turns each event into prebuilt
signal messages (PropertiesChanged with values, InterfacesAdded/Removed from
the manager's path, the Manager's own signals). It answers GetManagedObjects
itself from pre-marshalled entries (pyctrd/bus/managed.py).

Container objects are exported on first use: a dbus-fast ServiceInterface
costs about 0.3 ms and 5 KB to set up, which at 10,000 containers would be
seconds of start-up spent on objects nobody calls. Until then the object
exists through GetManagedObjects, signals and introspection of its parent.

A call on a path where no object is (a container or image removed, an ID
that never was) answers org.freedesktop.DBus.Error.UnknownObject, as
sd-bus does; Peer calls and introspection of the nodes leading to objects
are answered as usual.
"""

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from dbus_fast import DBusError, Message, MessageFlag, MessageType, Variant
from dbus_fast.constants import RequestNameReply
from dbus_fast.service import ServiceInterface
from dbus_fast.signature import get_signature_tree

from pyctrd.bus import connection, paging
from pyctrd.bus.authz import CallGuard, operation_of
from pyctrd.bus.callers import connection_key
from pyctrd.bus.container import ContainerObject
from pyctrd.bus.errors import calls_in_flight, to_dbus_error
from pyctrd.bus.exec import ExecBus, ExecSessionObject
from pyctrd.bus.image import ImageObject
from pyctrd.bus.job import JobObject
from pyctrd.bus.managed import SIGNATURE as MANAGED_SIGNATURE
from pyctrd.bus.managed import Interfaces, ManagedObjects, RawReply
from pyctrd.bus.manager import ManagerObject
from pyctrd.bus.network import NetworkBus, NetworkObject
from pyctrd.bus.props import dbus_methods, variants
from pyctrd.bus.recovering import RecoveryWaits
from pyctrd.bus.volume import VolumeBus, VolumeObject
from pyctrd.core.container import Container
from pyctrd.core.image import Image
from pyctrd.core.jobs import Job
from pyctrd.errors import InvalidArgument, LimitsExceeded, NoSuchObject, PyctrdError
from pyctrd.ops import shutdown
from pyctrd.ops.authority import Authority
from pyctrd.ops.names import (
    BUS_NAME,
    CONTAINER_IFACE,
    CONTAINER_PREFIX,
    IMAGE_IFACE,
    IMAGE_PREFIX,
    JOB_IFACE,
    MANAGER_IFACE,
    MANAGER_PATH,
    OBJECT_MANAGER_IFACE,
    PROPERTIES_IFACE,
    container_path,
    image_path,
    job_path,
)
from pyctrd.ops.operations import Operations
from pyctrd.ops.properties import (
    CONTAINER_PROPERTIES,
    IMAGE_PROPERTIES,
    JOB_PROPERTIES,
    MANAGER_PROPERTIES,
    changed,
    values,
)

log = logging.getLogger(__name__)

CONTAINER_DIR = CONTAINER_PREFIX.rstrip("/")
IMAGE_DIR = IMAGE_PREFIX.rstrip("/")
INTROSPECTABLE_IFACE = "org.freedesktop.DBus.Introspectable"
PEER_IFACE = "org.freedesktop.DBus.Peer"
DRIVER = "org.freedesktop.DBus"
DRIVER_PATH = "/org/freedesktop/DBus"
STANDARD_IFACES = (PROPERTIES_IFACE, INTROSPECTABLE_IFACE, PEER_IFACE)
OBJECT_CLASSES: tuple[type[ServiceInterface], ...] = (ManagerObject, ContainerObject,
                                                      ImageObject, JobObject,
                                                      ExecSessionObject, NetworkObject,
                                                      VolumeObject)


class NameTaken(Exception):
    pass


def check_operations() -> None:
    """Every method of our objects is an ops Operation (LookupError if not): a
    method without a polkit decision stops the daemon at start, not at the
    first export of its object."""
    for cls in OBJECT_CLASSES:
        for method in dbus_methods(cls):
            operation_of(cls.interface, method.name)  # type: ignore[attr-defined]


class BusService:
    def __init__(self, operations: Operations, bus: connection.PyctrdBus,
                 authority: Authority | None) -> None:
        self.operations = operations
        self.engine = operations.engine
        self.bus = bus
        self.manager = ManagerObject(operations)
        self._containers: dict[str, ContainerObject] = {}
        self._images: dict[str, ImageObject] = {}
        self._jobs: dict[str, JobObject] = {}
        self._managed = ManagedObjects()
        # Calls on containers still being recovered wait for them (bus/recovering.py).
        self._recovery_waits = RecoveryWaits(self.engine.recovering, bus._process_message)
        self.execs = ExecBus(self)  # exec session objects (bus/exec.py)
        self.networks = NetworkBus(self)  # network objects (bus/network.py)
        self.volumes = VolumeBus(self)  # volume objects (bus/volume.py)
        # The Manager's changing properties as last announced.
        self._manager_values: dict[str, Any] = {}
        if authority is not None:
            bus.guard = CallGuard(bus, authority, bus.callers)

    async def start(self) -> None:
        check_operations()
        self.bus.export(MANAGER_PATH, self.manager)
        for image in self.engine.images.values():
            self._export_image(image)
        self._manager_values = {
            name: value for name, (_sig, value) in values(
                MANAGER_PROPERTIES, self.engine,
                (row for row in MANAGER_PROPERTIES.values() if not row.const)).items()}
        self.bus.virtual_children = self._virtual_children
        self.bus.add_message_handler(self._on_method_call)
        # Listening from the snapshot on, before the first await: Varlink serves
        # already (daemon.py), and a change it makes now must reach the bus too.
        self.engine.listener.add(self)
        self.engine.jobs.add_listener(self)
        # A caller's streams end when its connection does.
        self.bus.callers.on_gone(self._caller_gone)
        await self.bus.callers.start()
        self.execs.start()
        self.networks.start()
        self.volumes.start()
        reply = await self.bus.request_name(BUS_NAME)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise NameTaken(f"{BUS_NAME} is already owned on this bus; is pyctrd running?")

    async def end_calls(self) -> None:
        """At shutdown, before the connection closes: answer every call still running
        (a Wait, a long Stop) with Failed, "shutting down", and see the answers sent."""
        await shutdown.end_calls(calls_in_flight)
        # Each answer was handed to the bus as its call ended (dbus-fast's done
        # callback runs first); the bus handles our messages in order, so a reply
        # from its driver means they have all reached it.
        try:
            async with asyncio.timeout(shutdown.END_TIMEOUT):
                await self.bus.call(Message(destination=DRIVER, path=DRIVER_PATH,
                                            interface=DRIVER, member="GetId"))
        except (TimeoutError, OSError, DBusError) as err:
            log.warning("answering the calls still running at shutdown: %s", err)

    def _caller_gone(self, unique_name: str) -> None:
        closed = self.operations.streams.close_connection(connection_key(unique_name))
        if closed:
            log.debug("%s left the bus: closed its %d streams", unique_name, closed)

    # EngineListener

    def container_added(self, container: Container) -> None:
        path = container_path(container.id)
        self._managed.invalidate(path)
        self._interfaces_added(path, CONTAINER_IFACE, _container_variants(container))
        self._manager_signal("ContainerAdded", container.id, path)
        self._manager_changed(["containers"])

    def container_removed(self, container: Container) -> None:
        path = container_path(container.id)
        self._managed.invalidate(path)
        obj = self._containers.pop(container.id, None)
        if obj is not None:
            self.bus.unexport(path, obj)
        self._interfaces_removed(path, CONTAINER_IFACE)
        self._manager_signal("ContainerRemoved", container.id, path)
        self._manager_changed(["containers"])

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        rows = changed(CONTAINER_PROPERTIES, changes)
        if rows and container.id in self.engine.containers:
            path = container_path(container.id)
            self._managed.invalidate(path)
            self._properties_changed(path, CONTAINER_IFACE,
                                     variants(CONTAINER_PROPERTIES, container, rows))

    def image_added(self, image: Image) -> None:
        path = self._export_image(image)
        self._managed.invalidate(path)
        self._interfaces_added(path, IMAGE_IFACE, _image_variants(image))
        self._manager_signal("ImageAdded", image.id, path)
        self._manager_changed(["images"])

    def image_removed(self, image: Image) -> None:
        path = image_path(image.id)
        self._managed.invalidate(path)
        obj = self._images.pop(image.id, None)
        if obj is not None:
            self.bus.unexport(path, obj)
        self._interfaces_removed(path, IMAGE_IFACE)
        self._manager_signal("ImageRemoved", image.id, path)
        self._manager_changed(["images"])

    def image_changed(self, image: Image, fields: list[str]) -> None:
        rows = changed(IMAGE_PROPERTIES, fields)
        if rows and image.id in self._images:
            path = image_path(image.id)
            self._managed.invalidate(path)
            self._properties_changed(path, IMAGE_IFACE, variants(IMAGE_PROPERTIES, image, rows))

    # JobListener

    def job_added(self, job: Job) -> None:
        path = job_path(job.id)
        obj = JobObject(job, self.operations)
        self._jobs[job.id] = obj
        self.bus.export(path, obj)
        self._managed.invalidate(path)
        self._interfaces_added(path, JOB_IFACE, variants(JOB_PROPERTIES, job))

    def job_changed(self, job: Job, fields: list[str]) -> None:
        rows = changed(JOB_PROPERTIES, fields)
        if rows and job.id in self._jobs:
            path = job_path(job.id)
            self._managed.invalidate(path)
            self._properties_changed(path, JOB_IFACE, variants(JOB_PROPERTIES, job, rows))

    def job_removed(self, job: Job) -> None:
        path = job_path(job.id)
        self._managed.invalidate(path)
        obj = self._jobs.pop(job.id, None)
        if obj is not None:
            self.bus.unexport(path, obj)
        self._interfaces_removed(path, JOB_IFACE)

    # exporting

    def _export_container(self, container: Container) -> str:
        path = container_path(container.id)
        obj = ContainerObject(container, self.operations)
        self._containers[container.id] = obj
        self.bus.export(path, obj)
        return path

    def _export_image(self, image: Image) -> str:
        path = image_path(image.id)
        obj = ImageObject(image, self.operations)
        self._images[image.id] = obj
        self.bus.export(path, obj)
        return path

    # ObjectManager

    def managed_objects(self) -> list[tuple[str, Callable[[], Interfaces]]]:
        """Every object's path and a maker of its interfaces (called on a cache miss)."""
        objects: list[tuple[str, Callable[[], Interfaces]]] = []
        for image in self.engine.images.values():
            objects.append((image_path(image.id), functools.partial(
                _image_interfaces, image)))
        for container in self.engine.containers.values():
            objects.append((container_path(container.id), functools.partial(
                _container_interfaces, container)))
        for job in self.engine.jobs.jobs.values():
            objects.append((job_path(job.id), functools.partial(
                _with_standard_of, JOB_IFACE, JOB_PROPERTIES, job)))
        objects.extend(self.execs.managed_objects())
        objects.extend(self.networks.managed_objects())
        objects.extend(self.volumes.managed_objects())
        return objects

    def _on_method_call(self, msg: Message) -> Message | bool | None:
        """Runs before dbus-fast's dispatch: exports on first use, answers
        GetManagedObjects, and refuses calls on paths where no object is."""
        if msg.message_type is not MessageType.METHOD_CALL:
            return None
        if self._recovery_waits.defer(msg):
            return True
        if "h" in msg.signature and not _descriptors_attached(msg):
            return self._refused(msg, InvalidArgument(
                f"{msg.member}: a file descriptor argument (h) names no descriptor sent "
                "with the call; pass the descriptor itself (gdbus, or a library with fd "
                "passing)"))
        path = msg.path or ""
        if path == MANAGER_PATH:
            if (msg.member == "GetManagedObjects" and not msg.signature
                    and msg.interface in (None, OBJECT_MANAGER_IFACE)):
                try:
                    body = self._managed.cached_body() or self._managed.body(
                        self.managed_objects(), connection.MAX_MESSAGE_SIZE)
                except LimitsExceeded as err:  # 25,000 containers and more
                    # logged as the bus writer logs a reply it refuses (rate-limited)
                    connection._limited_log(
                        logging.WARNING, ("reply", "GetManagedObjects"),
                        "the reply to GetManagedObjects for %s would be more than the "
                        "bus allows (%d bytes): answered LimitsExceeded", msg.sender,
                        connection.MAX_MESSAGE_SIZE)
                    return self._refused(msg, LimitsExceeded(
                        f"{err}; {connection.SMALLER_CALLS['GetManagedObjects']}"))
                connection.send(self.bus, RawReply(msg, MANAGED_SIGNATURE, body))  # type: ignore[arg-type]
                return True
            if (msg.member == "ListContainersPaged" and msg.signature == "a{sv}"
                    and msg.interface in (None, MANAGER_IFACE)):
                # pages of the entries above, not marshalled again (bus/paging.py)
                try:
                    reply = paging.page_reply(msg, self.operations.page_containers,
                                              self._managed, _container_interfaces)
                except PyctrdError as err:
                    return self._refused(msg, err)
                connection.send(self.bus, reply)  # type: ignore[arg-type]
                return True
            return None
        if self._object_at(path) or msg.interface == PEER_IFACE:
            return None  # dbus-fast dispatches it (to the object now exported)
        if msg.interface == INTROSPECTABLE_IFACE and self._is_node(path):
            return None  # a node on the way to objects: introspection lists its children
        return self._unknown_object(msg)

    def _object_at(self, path: str) -> bool:
        """Whether an object lives at ``path``; a container's is exported now if not yet."""
        if path.startswith(CONTAINER_PREFIX):
            cid = path[len(CONTAINER_PREFIX):]
            if "/" in cid:  # below a container: an exec session, exported while it lives
                return path in self.bus._path_exports
            if cid in self._containers:
                return True
            container = self.engine.containers.get(cid)
            if container is None:
                return False
            self._export_container(container)
            return True
        return path in self.bus._path_exports

    def _is_node(self, path: str) -> bool:
        """Whether ``path`` lies on the way to objects: the container and image
        directories (even when empty), their parents, or a parent of an object."""
        if path in (CONTAINER_DIR, IMAGE_DIR) or _below(CONTAINER_DIR, path):
            return True
        return any(_below(exported, path) for exported in self.bus._path_exports)

    def _unknown_object(self, msg: Message) -> Message | bool:
        return self._refused(msg, NoSuchObject(
            f"no object has the path {msg.path} (any more); ListContainers and "
            "ListImages give the current ones"))

    def _refused(self, msg: Message, err: PyctrdError) -> Message | bool:
        """Answer ``msg`` with ``err`` before any handler sees it."""
        for fd in msg.unix_fds:  # nothing will own them
            with contextlib.suppress(OSError):
                os.close(fd)
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            return True
        error = to_dbus_error(err)
        return Message.new_error(msg, error.type, error.text)

    def _virtual_children(self, path: str) -> list[str]:
        """Child nodes of ``path`` that exist but may not be exported yet."""
        if path == MANAGER_PATH:
            return ["container"] if self.engine.containers else []
        if path == CONTAINER_DIR:
            return list(self.engine.containers)
        return []

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

    def _manager_changed(self, fields: Iterable[str]) -> None:
        """PropertiesChanged for the Manager properties following ``fields`` whose
        value differs from the one last announced (and only those)."""
        now = values(MANAGER_PROPERTIES, self.engine, changed(MANAGER_PROPERTIES, fields))
        news = {name: Variant(sig, value) for name, (sig, value) in now.items()
                if self._manager_values.get(name) != value}
        if news:
            self._manager_values.update((name, v.value) for name, v in news.items())
            self._properties_changed(MANAGER_PATH, MANAGER_IFACE, news)


def _below(path: str, node: str) -> bool:
    """Whether ``path`` lies strictly below ``node``."""
    return path != node and path.startswith(node.rstrip("/") + "/")


def _with_standard(iface: str, values: dict[str, Variant]) -> dict[str, dict[str, Variant]]:
    return {iface: values, **{name: {} for name in STANDARD_IFACES}}


def _with_standard_of(iface: str, table: Any, obj: Any) -> Interfaces:
    return _with_standard(iface, variants(table, obj))


def _container_variants(container: Container) -> dict[str, Variant]:
    return variants(CONTAINER_PROPERTIES, container)


def _image_variants(image: Image) -> dict[str, Variant]:
    return variants(IMAGE_PROPERTIES, image)


def _container_interfaces(container: Container) -> Interfaces:
    return _with_standard(CONTAINER_IFACE, _container_variants(container))


def _image_interfaces(image: Image) -> Interfaces:
    return _with_standard(IMAGE_IFACE, _image_variants(image))


def _descriptors_attached(msg: Message) -> bool:
    """Whether each h argument indexes a descriptor that came with ``msg``.

    dbus-fast swaps an h argument's index for the received descriptor before
    the handler runs, but passes the bare index on when the message carried
    no descriptors (a caller that sent none, or the kernel dropping them at
    our fd limit): a handler would then read, write or close one of the
    daemon's own files. Our methods take h only as a top-level argument.
    """
    for token, value in zip((t.token for t in get_signature_tree(msg.signature).types),
                            msg.body, strict=False):
        if token == "h":
            if not (isinstance(value, int) and 0 <= value < len(msg.unix_fds)):
                return False
        elif "h" in token:
            return False
    return True
