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
from pyctrd.core.commit import CommitOptions
from pyctrd.core.commit import commit as commit_container
from pyctrd.core.container import Container
from pyctrd.core.engine import Engine
from pyctrd.core.events import Event
from pyctrd.core.image import Image
from pyctrd.core.jobs import Job
from pyctrd.core.networks import Network
from pyctrd.core.stats import container_stats
from pyctrd.core.unixsignals import parse_signal
from pyctrd.core.volumes import Volume, inspect_mounts
from pyctrd.errors import PyctrdError
from pyctrd.oci import rlimits
from pyctrd.ops import listing
from pyctrd.ops.streams import StreamLimits, StreamOwner
from pyctrd.registry.skopeo import TransferOptions

INSPECT = "org.pyctrd1.container.inspect"
ATTACH = "org.pyctrd1.container.attach"
MANAGE = "org.pyctrd1.container.manage"
CREATE = "org.pyctrd1.container.create"
MOUNT = "org.pyctrd1.container.mount"
IMAGE_MANAGE = "org.pyctrd1.image.manage"
EXEC = "org.pyctrd1.container.exec"
# Asked besides CREATE when a new container would reach the host (API.md).
CREATE_PRIVILEGED = "org.pyctrd1.container.create-privileged"
# Registries: pull, push, commit, and Cancel of another's job (API.md).
IMAGE_PULL = "org.pyctrd1.image.pull"
NETWORK_MANAGE = "org.pyctrd1.network.manage"


class Target(Enum):
    NONE = "none"
    CONTAINER = "container"  # an existing container, named by the call or its object
    IMAGE = "image"
    NEW_CONTAINER = "new container"  # CreateContainer: the image and the options
    JOB = "job"
    NETWORK = "network"  # an existing network, named by the call or its object
    VOLUME = "volume"  # an existing volume, named by the call or its object


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
    **_ops(None, Target.NONE, "ListContainersPaged"),
    # The history shows what properties and signals show anyone (names, states, exits).
    **_ops(None, Target.NONE, "GetEvents"),
    **_ops(IMAGE_PULL, Target.NONE, "PullImage"),
    **_ops(None, Target.NONE, "ListJobs"),
    # Networks (API.md): creating and removing them reaches the host's bridges and rules.
    **_ops(NETWORK_MANAGE, Target.NONE, "CreateNetwork"),
    **_ops(NETWORK_MANAGE, Target.NETWORK, "RemoveNetwork"),
    **_ops(None, Target.NONE, "GetNetwork", "ListNetworks"),
    # Volumes hold no host paths: they fall under container creation (API.md).
    **_ops(CREATE, Target.NONE, "CreateVolume"),
    **_ops(CREATE, Target.VOLUME, "RemoveVolume"),
    **_ops(None, Target.NONE, "GetVolume", "ListVolumes"),
}
CONTAINER_OPS = {
    **_ops(MANAGE, Target.CONTAINER, "Init", "Start", "Stop", "Kill", "Pause", "Unpause"),
    **_ops(MOUNT, Target.CONTAINER, "Mount", "Unmount", "Export"),
    **_ops(CREATE, Target.CONTAINER, "Remove"),
    **_ops(INSPECT, Target.CONTAINER, "Inspect", "OpenLog"),
    **_ops(ATTACH, Target.CONTAINER, "Attach", "ResizeTerminal"),
    **_ops(EXEC, Target.CONTAINER, "Exec"),  # its details: ops/exec.py
    **_ops(None, Target.CONTAINER, "Wait"),
    # Figures of its cgroup, like its properties (machined's are open too): no secret.
    **_ops(None, Target.CONTAINER, "GetStats"),
    # Runs the command its creator set, nothing a caller chooses: as Start.
    **_ops(MANAGE, Target.CONTAINER, "RunHealthCheck"),
    # A new image of what is inside: the image transfer action, as pull (API.md).
    **_ops(IMAGE_PULL, Target.CONTAINER, "Commit"),
}
IMAGE_OPS = {
    **_ops(IMAGE_MANAGE, Target.IMAGE, "Remove", "Tag", "Untag"),
    **_ops(IMAGE_PULL, Target.IMAGE, "Push"),
    # Save reads what a container of the image could read anyway, but writes a copy
    # of it anywhere the caller likes: as Export is, it is guarded.
    **_ops(IMAGE_MANAGE, Target.IMAGE, "Save"),
}
# Cancel of one's own job needs no more than starting it did; another's needs
# IMAGE_PULL (root passes without polkit).
JOB_OPS = _ops(IMAGE_PULL, Target.JOB, "Cancel")
NETWORK_OPS = _ops(NETWORK_MANAGE, Target.NETWORK, "Remove")
VOLUME_OPS = _ops(CREATE, Target.VOLUME, "Remove")
# Varlink's Watch streams what D-Bus signals show anyone.
WATCH = Operation("Watch", None)


def details(operation: Operation, target: Container | Image | Network | Volume | None,
            given: str = "", options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What polkit rules may look at: the verb and what it acts on, from the
    resolved target (``given`` is the image as the caller named it, for Create)."""
    found = {"verb": operation.verb}
    if isinstance(target, Container):
        found.update(container_id=target.id, container_name=target.name)
    elif isinstance(target, Image) and operation.target is Target.IMAGE:
        found.update(image_id=target.id, image_reference=target.reference)
    elif isinstance(target, Network):
        found.update(network_id=target.id, network_name=target.name)
    elif isinstance(target, Volume):
        found.update(volume_name=target.name)
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
    # A volume's name (no leading "/") reaches no host path: only host paths count.
    if any(str(mount[0]).startswith("/") for mount in options.get("mounts", [])):
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
    # A caller with this uid needs none of them (Cancel of one's own job).
    free_for_uid: int | None = None

    def actions_for(self, uid: int) -> tuple[str, ...]:
        return () if uid == self.free_for_uid else self.actions


def job_check(operation: Operation, job: Job | None) -> Check:
    """A job's method: its owner needs no polkit; anyone else the operation's action."""
    found = check(operation, None)
    if job is None:
        return found
    found.details.update(job_id=job.id, job_kind=job.kind, job_reference=job.reference)
    return Check(found.actions, found.details, job.owner)


def check(operation: Operation, target: Container | Image | Network | Volume | None,
          given: str = "", options: Mapping[str, Any] | None = None) -> Check:
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
        self._ids: listing.ContainerIds | None = None  # made on the first page

    def page_containers(self, request: listing.PageRequest) -> tuple[list[Container], str]:
        """A page of containers by ID (ops/listing.py), from an index of their IDs."""
        if self._ids is None:
            self._ids = listing.ContainerIds(self.engine.containers)
            self.engine.listener.add(self._ids)
        return self._ids.page(request)

    def target(self, operation: Operation,
               given: str) -> Container | Image | Network | Volume | None:
        """The object a call names, for its details; None when it names nothing
        (the operation itself then says so, once the caller is authorized: an
        unauthorized caller learns nothing from the answer)."""
        with contextlib.suppress(PyctrdError):
            if operation.target is Target.CONTAINER:
                return self.engine.lookup_container(given)
            if operation.target is Target.NETWORK:
                return self.engine.lookup_network(given)
            if operation.target is Target.VOLUME:
                return self.engine.volumes.lookup(given)
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

    def pull_image(self, reference: str, options: TransferOptions,
                   owner: int | None = None) -> Job:
        return self.engine.transfers.pull(reference, options, owner)

    def list_jobs(self) -> list[Job]:
        return list(self.engine.jobs.jobs.values())

    def get_job(self, job_id: str) -> Job:
        return self.engine.jobs.lookup(job_id)

    def cancel_job(self, job: Job) -> None:
        job.cancel()

    def push_image(self, image: Image, destination: str, options: TransferOptions,
                   owner: int | None = None) -> Job:
        return self.engine.transfers.push(image, destination, options, owner)

    def commit(self, container: Container, reference: str, options: CommitOptions,
               owner: int | None = None) -> Job:
        return commit_container(self.engine, container, reference, options, owner)

    async def save_image(self, image: Image, fd: int, fmt: str) -> None:
        await self.engine.transfers.save(image, fd, fmt)

    def tag_image(self, image: Image, reference: str) -> None:
        self.engine.transfers.tag(image, reference)

    def untag_image(self, image: Image, reference: str) -> None:
        self.engine.transfers.untag(image, reference)

    def get_image(self, reference_or_id: str) -> Image:
        return self.engine.lookup_image(reference_or_id)

    def list_images(self) -> list[Image]:
        return list(self.engine.images.values())

    async def remove_image_named(self, reference_or_id: str, force: bool) -> None:
        """podman rmi: naming one reference of several only untags."""
        await self.engine.remove_image_named(reference_or_id, force)

    async def remove_image(self, image: Image, force: bool) -> None:
        await self.engine.remove_image(image, force)

    # Networks

    def create_network(self, name: str, options: dict[str, Any]) -> Network:
        """``options``: checked values (ops.networkoptions)."""
        return self.engine.create_network(name, options)

    def get_network(self, name_or_id: str) -> Network:
        return self.engine.lookup_network(name_or_id)

    def list_networks(self) -> list[Network]:
        networks = self.engine.networks
        return list(networks.networks.values()) if networks is not None else []

    async def remove_network(self, network: Network, force: bool) -> None:
        await self.engine.remove_network(network, force)

    # Volumes (core/volumes.py)

    def create_volume(self, name: str, labels: dict[str, str]) -> Volume:
        return self.engine.volumes.create(name, labels)

    def get_volume(self, name: str) -> Volume:
        return self.engine.volumes.lookup(name)

    def list_volumes(self) -> list[Volume]:
        return sorted(self.engine.volumes.volumes.values(), key=lambda v: v.name)

    async def remove_volume(self, volume: Volume, force: bool) -> None:
        await self.engine.remove_volume(volume, force)

    # Container

    async def stop(self, container: Container, timeout: int | None) -> None:
        """``timeout`` None: the container's own stop timeout. An exited container
        waiting to be restarted by its policy stays exited (docker's stop of a
        restarting container)."""
        if self.engine.restarts.cancel(container):
            return
        await container.stop(timeout)
        self.engine.events.record("container", "stop", container.id,
                                  {"name": container.name, "image": container.config.image_ref})

    def get_events(self, since_usec: int, until_usec: int) -> list[Event]:
        """The event history, oldest first; a bound of 0 is none."""
        return self.engine.events.history(since_usec, until_usec)

    def stats(self, container: Container) -> dict[str, int]:
        return container_stats(container)

    async def kill(self, container: Container, signal: str) -> None:
        await container.kill(parse_signal(signal))

    async def run_health_check(self, container: Container) -> str:
        """Run its health check now; its Health after it (core/health.py)."""
        return await self.engine.health.run(container)

    def inspect(self, container: Container) -> dict[str, Any]:
        found = container.inspect()
        found["ExecIDs"] = [s.id for s in self.engine.execs.sessions(container)]  # as podman
        inspect_mounts(self.engine.volumes, found.get("Mounts", []))
        return found

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


