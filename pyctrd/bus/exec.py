"""org.pyctrd1.ExecSession objects, and Container.Exec's bus side.

Sessions are few and short-lived, so each is exported when it begins (not on
first use as containers are) and unexported when it goes, with
InterfacesAdded/Removed from the manager's path and PropertiesChanged with
values in between; GetManagedObjects lists them beside the containers.
"""

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dbus_fast import Message, Variant
from dbus_fast.service import ServiceInterface, method

from pyctrd.bus import connection
from pyctrd.bus.errors import translate_errors
from pyctrd.bus.managed import Interfaces
from pyctrd.bus.props import add_readonly_properties, name_out_args, variants
from pyctrd.core.container import Container
from pyctrd.core.exec import ExecSession
from pyctrd.ops import exec as exec_ops
from pyctrd.ops.names import (
    EXEC_SESSION_IFACE,
    MANAGER_PATH,
    OBJECT_MANAGER_IFACE,
    PROPERTIES_IFACE,
    exec_session_path,
)
from pyctrd.ops.operations import Check, Operation, Operations
from pyctrd.ops.properties import changed

if TYPE_CHECKING:
    from pyctrd.bus.service import BusService

STANDARD_IFACES = ("org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable",
                   "org.freedesktop.DBus.Peer")
TABLE = exec_ops.EXEC_SESSION_PROPERTIES


def session_path(session: ExecSession) -> str:
    return exec_session_path(session.container.id, session.number)


class ExecSessionObject(ServiceInterface):
    interface = EXEC_SESSION_IFACE

    def __init__(self, session: ExecSession, operations: Operations) -> None:
        super().__init__(self.interface)
        self.session = session
        self.operations = operations

    def call_check(self, operation: Operation, body: list[Any]) -> Check:
        return exec_ops.exec_check(operation, self.session.container, self.session.command)

    @method()
    @translate_errors
    async def Wait(self) -> "i":
        return await self.session.wait()

    @method()
    @translate_errors
    async def Kill(self, signal: "s") -> None:
        exec_ops.kill(self.operations, self.session, signal)

    @method()
    @translate_errors
    async def ResizeTerminal(self, rows: "q", cols: "q") -> None:
        exec_ops.resize(self.operations, self.session, rows, cols)

    @method()
    @translate_errors
    async def Remove(self) -> None:
        exec_ops.remove(self.operations, self.session)


add_readonly_properties(ExecSessionObject, TABLE, lambda obj: obj.session)
name_out_args(ExecSessionObject, {"Wait": ["exit_code"]})


def exec_call_check(container: Container, body: list[Any]) -> Check:
    """Container.Exec's polkit check: the command is its first argument."""
    command = [str(arg) for arg in body[0]] if body and isinstance(body[0], list) else []
    return exec_ops.exec_check(exec_ops.EXEC_OP, container, command)


class ExecBus:
    """Listens to the core's sessions and keeps their objects and signals."""

    def __init__(self, service: "BusService") -> None:
        self._service = service
        self._objects: dict[str, ExecSessionObject] = {}

    def start(self) -> None:
        execs = self._service.engine.execs
        execs.add_listener(self)
        for session in execs.sessions():
            self.exec_added(session)

    def managed_objects(self) -> list[tuple[str, Callable[[], Interfaces]]]:
        return [(path, functools.partial(_interfaces, obj.session))
                for path, obj in self._objects.items()]

    # ExecListener

    def exec_added(self, session: ExecSession) -> None:
        path = session_path(session)
        obj = ExecSessionObject(session, self._service.operations)
        self._objects[path] = obj
        self._service.bus.export(path, obj)
        self._service._managed.invalidate(path)
        connection.send(self._service.bus, Message.new_signal(
            MANAGER_PATH, OBJECT_MANAGER_IFACE, "InterfacesAdded", "oa{sa{sv}}",
            [path, _interfaces(session)]))

    def exec_changed(self, session: ExecSession, fields: list[str]) -> None:
        path = session_path(session)
        if path not in self._objects:
            return
        self._service._managed.invalidate(path)
        connection.send(self._service.bus, Message.new_signal(
            path, PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as",
            [EXEC_SESSION_IFACE, variants(TABLE, session, changed(TABLE, fields)), []]))

    def exec_removed(self, session: ExecSession) -> None:
        path = session_path(session)
        obj = self._objects.pop(path, None)
        if obj is None or obj.session is not session:
            if obj is not None:  # a newer session at the same path: not ours to drop
                self._objects[path] = obj
            return
        self._service.bus.unexport(path, obj)
        self._service._managed.invalidate(path)
        connection.send(self._service.bus, Message.new_signal(
            MANAGER_PATH, OBJECT_MANAGER_IFACE, "InterfacesRemoved", "oas",
            [path, [EXEC_SESSION_IFACE, *STANDARD_IFACES]]))


def _interfaces(session: ExecSession) -> dict[str, dict[str, Variant]]:
    return {EXEC_SESSION_IFACE: variants(TABLE, session),
            **{name: {} for name in STANDARD_IFACES}}
