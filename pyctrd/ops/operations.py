"""Every operation of the API, once: its polkit action, its target, its details,
and what it does to the core.

A front end maps each of its methods to one Operation (a method that maps
to none is refused when the front end starts), decodes the call, and:
resolves the target (``Operations.target``), asks the Authority with the
details built here, then runs the operation's function. Verbs are the D-Bus
method names, which polkit rules see as details["verb"] whichever wire the
call came by.
"""

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pyctrd import __version__
from pyctrd.core import stdio
from pyctrd.core.container import Container
from pyctrd.core.engine import Engine
from pyctrd.core.image import Image
from pyctrd.core.unixsignals import parse_signal
from pyctrd.errors import PyctrdError
from pyctrd.oci import rlimits
from pyctrd.ops.streams import StreamLimits, StreamOwner

INSPECT = "org.pyctrd1.container.inspect"
ATTACH = "org.pyctrd1.container.attach"
MANAGE = "org.pyctrd1.container.manage"
CREATE = "org.pyctrd1.container.create"
MOUNT = "org.pyctrd1.container.mount"
IMAGE_MANAGE = "org.pyctrd1.image.manage"
# Asked besides CREATE when a new container would reach the host (API.md).
CREATE_PRIVILEGED = "org.pyctrd1.container.create-privileged"


class Target(Enum):
    NONE = "none"
    CONTAINER = "container"  # an existing container, named by the call or its object
    IMAGE = "image"
    NEW_CONTAINER = "new container"  # CreateContainer: the image and the options


@dataclass(frozen=True)
class Operation:
    verb: str
    action: str | None  # None: open to anyone (it only reads what anyone may read)
    target: Target = Target.NONE


def _ops(action: str | None, target: Target, *verbs: str) -> dict[str, Operation]:
    return {verb: Operation(verb, action, target) for verb in verbs}


# Keyed by where the verb lives on D-Bus; Varlink maps its methods onto these.
MANAGER_OPS = {
    **_ops(CREATE, Target.NEW_CONTAINER, "CreateContainer"),
    **_ops(CREATE, Target.CONTAINER, "RemoveContainer"),
    **_ops(IMAGE_MANAGE, Target.NONE, "ImportImage"),
    **_ops(IMAGE_MANAGE, Target.IMAGE, "RemoveImage"),
    **_ops(None, Target.NONE, "GetContainer", "ListContainers", "GetImage", "ListImages"),
}
CONTAINER_OPS = {
    **_ops(MANAGE, Target.CONTAINER, "Init", "Start", "Stop", "Kill", "Pause", "Unpause"),
    **_ops(MOUNT, Target.CONTAINER, "Mount", "Unmount", "Export"),
    **_ops(CREATE, Target.CONTAINER, "Remove"),
    **_ops(INSPECT, Target.CONTAINER, "Inspect", "OpenLog"),
    **_ops(ATTACH, Target.CONTAINER, "Attach", "ResizeTerminal"),
    **_ops(None, Target.CONTAINER, "Wait"),
}
IMAGE_OPS = _ops(IMAGE_MANAGE, Target.IMAGE, "Remove")
# Varlink's Watch streams what D-Bus signals show anyone.
WATCH = Operation("Watch", None)


def details(operation: Operation, target: Container | Image | None,
            given: str = "", options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What polkit rules may look at: the verb and what it acts on, from the
    resolved target (``given`` is the image as the caller named it, for Create)."""
    found = {"verb": operation.verb}
    if isinstance(target, Container):
        found.update(container_id=target.id, container_name=target.name)
    elif isinstance(target, Image) and operation.target is Target.IMAGE:
        found.update(image_id=target.id, image_reference=target.reference)
    if operation.target is Target.NEW_CONTAINER:
        found["image"] = given
        name = (options or {}).get("name")
        if isinstance(name, str):
            found["container_name"] = name
    return found


def privileged_requests(options: Mapping[str, Any]) -> list[str]:
    """What in CreateContainer's checked ``options`` reaches the host, so that the
    caller needs org.pyctrd1.container.create-privileged too; [] if nothing."""
    found = []
    if options.get("mounts"):
        found.append("host mounts")
    if options.get("network") == "host":
        found.append("the host's network")
    if options.get("privileged"):
        found.append("privileged")
    if options.get("cap_add"):
        found.append("added capabilities")
    if options.get("seccomp") == "unconfined":
        found.append("no seccomp filter")
    raised = rlimits.raises(options.get("ulimits", []))
    if raised:
        found.append(f"raised ulimits ({', '.join(raised)})")
    return found


@dataclass(frozen=True)
class Check:
    """What one call needs of polkit: each of ``actions`` (in order, all must
    allow), with the same ``details``."""

    actions: tuple[str, ...]
    details: dict[str, str]


def check(operation: Operation, target: Container | Image | None, given: str = "",
          options: Mapping[str, Any] | None = None) -> Check:
    """The polkit check for a call of ``operation`` (one with an action)."""
    assert operation.action is not None
    actions = [operation.action]
    if operation.target is Target.NEW_CONTAINER and privileged_requests(options or {}):
        actions.append(CREATE_PRIVILEGED)
    return Check(tuple(actions), details(operation, target, given, options))


class Operations:
    """The engine as the front ends see it: one method per operation."""

    version = __version__

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.streams = StreamLimits()

    def target(self, operation: Operation, given: str) -> Container | Image | None:
        """The object a call names, for its details; None when it names nothing
        (the operation itself then says so, once the caller is authorized: an
        unauthorized caller learns nothing from the answer)."""
        with contextlib.suppress(PyctrdError):
            if operation.target is Target.CONTAINER:
                return self.engine.lookup_container(given)
            if operation.target in (Target.IMAGE, Target.NEW_CONTAINER):
                return self.engine.lookup_image(given)
        return None

    # Manager

    def create_container(self, image: str, command: list[str],
                         options: dict[str, Any]) -> Container:
        """``options``: checked values, from options.decode_dbus or decode_varlink."""
        return self.engine.create_container(image, command, options)

    def get_container(self, name_or_id: str) -> Container:
        return self.engine.lookup_container(name_or_id)

    def list_containers(self) -> list[Container]:
        return list(self.engine.containers.values())

    async def remove_container(self, container: Container, force: bool) -> None:
        await self.engine.remove_container(container, force)

    async def import_image(self, fd: int, reference: str) -> Image:
        return await self.engine.import_image(fd, reference)

    def get_image(self, reference_or_id: str) -> Image:
        return self.engine.lookup_image(reference_or_id)

    def list_images(self) -> list[Image]:
        return list(self.engine.images.values())

    async def remove_image_named(self, reference_or_id: str, force: bool) -> None:
        """podman rmi: naming one reference of several only untags."""
        await self.engine.remove_image_named(reference_or_id, force)

    async def remove_image(self, image: Image, force: bool) -> None:
        await self.engine.remove_image(image, force)

    # Container

    async def stop(self, container: Container, timeout: int | None) -> None:
        """``timeout`` None: the container's own stop timeout."""
        await container.stop(timeout)

    async def kill(self, container: Container, signal: str) -> None:
        await container.kill(parse_signal(signal))

    def inspect(self, container: Container) -> dict[str, Any]:
        return container.inspect()

    def inspect_json(self, container: Container) -> str:
        return json.dumps(self.inspect(container))

    # ``owner``: who asks, for the per-uid cap on streams (None: no cap).

    async def open_log(self, container: Container, follow: bool,
                       owner: StreamOwner | None = None) -> int:
        async with self.streams.admit(owner, "OpenLog"):
            return stdio.open_log(container, follow, owner)

    async def attach(self, container: Container, detach_keys: str,
                     owner: StreamOwner | None = None) -> int:
        async with self.streams.admit(owner, "Attach"):
            sock = await stdio.attach(container, detach_keys, owner)
        return sock.detach()

    def resize_terminal(self, container: Container, rows: int, cols: int) -> None:
        stdio.resize_terminal(container, rows, cols)


