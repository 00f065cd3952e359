"""Who may call what, as API.md's polkit table says; checked before any work.

Root (asked of the bus, GetConnectionUnixUser) passes without polkit, as
systemd's services do; everyone else is asked of polkit with their unique
bus name as subject and details naming the container or image and the verb,
so rules can be written per container. Every method of our interfaces is
either in ACTIONS or in OPEN: a method in neither is refused at export time.
"""

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

from dbus_fast import DBusError, Message, MessageFlag
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface

from pyctrd.bus.names import CONTAINER_IFACE, IMAGE_IFACE, MANAGER_IFACE
from pyctrd.bus.polkit import PolkitClient, Verdict, bus_name_subject
from pyctrd.errors import PyctrdError

INSPECT = "org.pyctrd1.container.inspect"
ATTACH = "org.pyctrd1.container.attach"
MANAGE = "org.pyctrd1.container.manage"
CREATE = "org.pyctrd1.container.create"
MOUNT = "org.pyctrd1.container.mount"
IMAGE_MANAGE = "org.pyctrd1.image.manage"

ACTIONS: dict[str, dict[str, str]] = {
    MANAGER_IFACE: {
        "CreateContainer": CREATE, "RemoveContainer": CREATE,
        "ImportImage": IMAGE_MANAGE, "RemoveImage": IMAGE_MANAGE,
    },
    CONTAINER_IFACE: {
        "Inspect": INSPECT, "OpenLog": INSPECT,
        "Attach": ATTACH, "ResizeTerminal": ATTACH,
        "Init": MANAGE, "Start": MANAGE, "Stop": MANAGE, "Kill": MANAGE,
        "Pause": MANAGE, "Unpause": MANAGE,
        "Remove": CREATE,
        "Mount": MOUNT, "Unmount": MOUNT, "Export": MOUNT,
    },
    IMAGE_IFACE: {"Remove": IMAGE_MANAGE},
}

# Methods anyone may call: they only read, like the properties.
OPEN: dict[str, frozenset[str]] = {
    MANAGER_IFACE: frozenset({"GetContainer", "ListContainers", "GetImage", "ListImages"}),
    CONTAINER_IFACE: frozenset({"Wait"}),
    IMAGE_IFACE: frozenset(),
}

ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
INTERACTIVE_REQUIRED = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
UID_CACHE_MAX = 4096

Handler = Callable[[Message, Any], None]


def action_for(interface: str, member: str) -> str | None:
    """The polkit action guarding a method; None for an open one."""
    if member in OPEN.get(interface, frozenset()):
        return None
    try:
        return ACTIONS[interface][member]
    except KeyError:
        raise LookupError(f"{interface}.{member} has no polkit action and is not open; "
                          "add it to pyctrd/bus/authz.py") from None


def details_for(interface: ServiceInterface, member: str, msg: Message) -> dict[str, str]:
    """What rules may look at: action.lookup("container_name") and the like."""
    details = {"verb": member}
    container = getattr(interface, "container", None)
    image = getattr(interface, "image", None)
    runtime = getattr(interface, "_runtime", None)
    if container is not None:
        details.update(container_id=container.id, container_name=container.name)
    elif image is not None:
        details.update(image_id=image.id, image_reference=image.reference)
    elif member == "RemoveContainer" and runtime is not None:
        with contextlib.suppress(PyctrdError):
            found = runtime.lookup_container(str(msg.body[0]))
            details.update(container_id=found.id, container_name=found.name)
    elif member == "CreateContainer":
        details["image"] = str(msg.body[0])
        name = msg.body[2].get("name") if len(msg.body) > 2 else None
        if name is not None:
            details["container_name"] = str(name.value)
    return details


class Authorizer:
    def __init__(self, bus: MessageBus, polkit: PolkitClient) -> None:
        self._bus = bus
        self._polkit = polkit
        self._uids: dict[str, int] = {}  # unique names are never reused on a bus
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}  # each sender's latest guarded call

    def guard(self, handler: Handler, interface: ServiceInterface, member: str,
              action: str) -> Handler:
        """A method handler that runs ``handler`` only once the caller is authorized.

        Calls of one sender are dispatched in the order they came, even when
        polkit answers them out of order (Start then Stop must not swap).
        """

        def guarded(msg: Message, send_reply: Any) -> None:
            sender = msg.sender or ""
            previous = self._last.get(sender)
            task = asyncio.ensure_future(self._run(handler, interface, member, action, msg,
                                                   send_reply, previous))
            self._last[sender] = task
            self._tasks.add(task)

            def done(finished: asyncio.Task[None]) -> None:
                self._tasks.discard(finished)
                if self._last.get(sender) is finished:
                    del self._last[sender]

            task.add_done_callback(done)

        return guarded

    async def _run(self, handler: Handler, interface: ServiceInterface, member: str,
                   action: str, msg: Message, send_reply: Any,
                   previous: asyncio.Task[None] | None) -> None:
        try:
            await self.authorize(msg, action, details_for(interface, member, msg))
        except DBusError as err:
            for fd in msg.unix_fds:  # the handler that would own them never runs
                with contextlib.suppress(OSError):
                    os.close(fd)
            if not msg.flags & MessageFlag.NO_REPLY_EXPECTED:
                send_reply(Message.new_error(msg, err.type, err.text))
            return
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        handler(msg, send_reply)

    async def authorize(self, msg: Message, action: str, details: dict[str, str]) -> None:
        sender = msg.sender or ""
        uid = await self._caller_uid(sender)
        if uid == 0:
            return
        interactive = bool(msg.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)
        decision = await self._polkit.check(bus_name_subject(sender), action, details,
                                            interactive)
        verb = details.get("verb", "this call")
        if decision.verdict is Verdict.ALLOWED:
            return
        if decision.verdict is Verdict.CHALLENGE and not interactive:
            raise DBusError(INTERACTIVE_REQUIRED,
                            f"{verb} needs authentication (polkit action {action}); call "
                            "again allowing interactive authorization")
        raise DBusError(ACCESS_DENIED,
                        f"{verb} is not allowed: {decision.reason} (polkit action {action})")

    async def _caller_uid(self, sender: str) -> int:
        uid = self._uids.get(sender)
        if uid is not None:
            return uid
        try:
            reply = await self._bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="GetConnectionUnixUser",
                signature="s", body=[sender]))
        except Exception as err:
            raise DBusError(ACCESS_DENIED, f"the caller could not be identified: {err}") from None
        if reply is None or reply.error_name:
            raise DBusError(ACCESS_DENIED, "the caller could not be identified by the bus")
        uid = int(reply.body[0])
        if len(self._uids) >= UID_CACHE_MAX:
            self._uids.clear()
        self._uids[sender] = uid
        return uid
