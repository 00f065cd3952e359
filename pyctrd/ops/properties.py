"""Property tables: how each object property reads the core, and when it changes.

D-Bus (getters, GetManagedObjects, InterfacesAdded, PropertiesChanged, the
introspection annotations) and Varlink (the Info structs, Watch's changed
fields) all read through these rows, so the two wires cannot disagree. A row
either never changes once its object exists (const: annotated
EmitsChangedSignal=const) or names the core status field whose change it
follows, as machined's vtable flags say which properties are const.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pyctrd.ops.errors import kind_of
from pyctrd.ops.names import image_path

Getter = Callable[[Any], Any]


@dataclass(frozen=True)
class Property:
    name: str
    signature: str
    get: Getter
    follows: str | None = None  # the core field whose change emits it; None: const
    doc: str = ""

    @property
    def const(self) -> bool:
        return self.follows is None

    @property
    def field(self) -> str:
        """Its name on Varlink: ImageId → image_id."""
        return snake_case(self.name)


def snake_case(name: str) -> str:
    """D-Bus property name → Varlink field: ImageId → image_id, OOMKilled → oom_killed."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _table(*rows: Property) -> dict[str, Property]:
    return {row.name: row for row in rows}


CONTAINER_PROPERTIES = _table(
    Property("Id", "s", lambda c: c.id, doc="64 hex digits"),
    Property("Name", "s", lambda c: c.name),
    Property("Image", "s", lambda c: c.config.image_ref, doc="the image's reference then"),
    Property("ImageId", "s", lambda c: c.config.image_id),
    Property("Command", "as", lambda c: c.config.command),
    Property("State", "s", lambda c: str(c.status.state), "state",
             "configured, created, running, paused, exited or unknown"),
    Property("PID", "i", lambda c: c.status.pid, "pid", "0 unless running or paused"),
    Property("ExitCode", "i", lambda c: c.status.exit_code, "exit_code"),
    Property("OOMKilled", "b", lambda c: c.status.oom_killed, "oom_killed"),
    Property("Mounted", "b", lambda c: c.status.mounted, "mounted"),
    Property("Mountpoint", "s", lambda c: c.status.mountpoint, "mountpoint"),
    Property("CreatedTimestamp", "t", lambda c: c.config.created,
             doc="microseconds since the epoch"),
    Property("StartedTimestamp", "t", lambda c: c.status.started, "started"),
    Property("FinishedTimestamp", "t", lambda c: c.status.finished, "finished"),
    Property("Labels", "a{ss}", lambda c: c.config.labels),
    Property("LogPath", "s", lambda c: str(c.log_path)),
    Property("StopSignal", "u", lambda c: c.config.stop_signal),
    Property("StopTimeout", "u", lambda c: c.config.stop_timeout),
    Property("Terminal", "b", lambda c: c.config.terminal),
    # Networks (core/networks.py): what it is on, its address, its published ports.
    Property("Networks", "as", lambda c: list(c.status.networks), "networks",
             "names of the networks it is on"),
    Property("IPAddress", "s", lambda c: _first_address(c), "addresses",
             'its address on its first network while set up, else ""'),
    Property("Ports", "a(sqqs)", lambda c: _ports(c), "published",
             "published ports (host_ip, host_port, container_port, protocol); host_port "
             "filled in while running"),
    # API.md: these emit PropertiesChanged; RestartPolicy and AutoRemove follow
    # config fields, which nothing changes yet (podman's `update --restart` would).
    Property("RestartPolicy", "s", lambda c: c.config.restart_policy, "restart_policy",
             "no, on-failure, always or unless-stopped"),
    Property("RestartCount", "u", lambda c: c.status.restart_count, "restart_count",
             "restarts by the policy since a caller's last Start"),
    Property("Health", "s", lambda c: c.status.health, "health",
             '"" without a health check, starting, healthy or unhealthy'),
    Property("AutoRemove", "b", lambda c: c.config.auto_remove, "auto_remove",
             "removed (with its object) once it has exited"),
)

IMAGE_PROPERTIES = _table(
    Property("Id", "s", lambda i: i.id),
    # The one image property that changes: a reference can move to another image
    # or be untagged (API.md lists all of Image's as const; this one cannot be).
    Property("Reference", "s", lambda i: i.reference, "reference"),
    Property("Digest", "s", lambda i: i.digest),
    Property("Size", "t", lambda i: i.size),
    Property("CreatedTimestamp", "t", lambda i: i.created),
    Property("Layers", "as", lambda i: i.layers),
    Property("Entrypoint", "as", lambda i: i.entrypoint),
    Property("Cmd", "as", lambda i: i.cmd),
    Property("Env", "as", lambda i: i.env),
    Property("WorkingDir", "s", lambda i: i.workdir),
    Property("User", "s", lambda i: i.user),
    Property("References", "as", lambda i: i.references, "reference",
             "all its references, the primary (Reference) first"),
)

JOB_PROPERTIES = _table(
    Property("Kind", "s", lambda j: j.kind, doc="pull, push or commit"),
    Property("Reference", "s", lambda j: j.reference),
    Property("State", "s", lambda j: str(j.state), "state",
             "running, completed, failed or cancelled"),
    Property("Progress", "d", lambda j: j.progress, "progress", "0.0 to 1.0; -1 while unknown"),
    Property("BytesDone", "t", lambda j: j.bytes_done, "bytes_done"),
    Property("BytesTotal", "t", lambda j: j.bytes_total, "bytes_total"),
    Property("Image", "o", lambda j: _image_path(j.result_id), "result_id",
             'the image made or fetched; "/" until known'),
    Property("Error", "s", lambda j: _job_error(j), "error",
             'the error\'s D-Bus name, a colon, its message; "" unless failed'),
    Property("CreatedTimestamp", "t", lambda j: j.created, doc="microseconds since the epoch"),
    Property("FinishedTimestamp", "t", lambda j: j.finished, "finished"),
)


def _image_path(image_id: str) -> str:
    return image_path(image_id) if image_id else "/"


def _job_error(job: Any) -> str:
    if job.error is None:
        return ""
    return f"{kind_of(job.error).dbus_name}: {job.error}"

def _first_address(container: Any) -> str:
    addresses = container.status.addresses
    for name in container.status.networks:
        if name in addresses:
            return str(addresses[name])
    return ""


def _ports(container: Any) -> list[list[Any]]:
    if container.status.netns:
        return [list(p) for p in container.status.published]
    return [list(p) for p in container.config.ports]


NETWORK_PROPERTIES = _table(
    Property("Id", "s", lambda n: n.id),
    Property("Name", "s", lambda n: n.name),
    Property("Driver", "s", lambda n: n.driver, doc='"bridge"'),
    Property("Subnet", "s", lambda n: n.subnet, doc="CIDR"),
    Property("Gateway", "s", lambda n: n.gateway),
    Property("Internal", "b", lambda n: n.internal, doc="no route out"),
    Property("DNSEnabled", "b", lambda n: n.dns_enabled,
             doc="containers resolve each other by name and alias (aardvark-dns)"),
    Property("Containers", "as", lambda n: sorted(n.members), "members",
             "IDs of the containers on it"),
    Property("Labels", "a{ss}", lambda n: n.labels),
)

VOLUME_PROPERTIES = _table(
    Property("Name", "s", lambda v: v.name),
    Property("Driver", "s", lambda v: v.driver, doc='"local"'),
    Property("Mountpoint", "s", lambda v: v.mountpoint,
             doc="the host directory containers mount (<root>/volumes/<name>/_data)"),
    Property("Labels", "a{ss}", lambda v: v.labels),
    Property("CreatedTimestamp", "t", lambda v: v.created, doc="µs since the epoch"),
    Property("InUse", "b", lambda v: v.in_use, "users", "a container mounts it"),
)

MANAGER_PROPERTIES = _table(
    Property("Version", "s", lambda engine: engine.version),
    Property("Runtime", "s", lambda engine: engine.oci_runtime_path,
             doc="path of the OCI runtime in use"),
    Property("ContainerCount", "u", lambda engine: len(engine.containers), "containers"),
    Property("ImageCount", "u", lambda engine: len(engine.images), "images"),
)


def changed(table: dict[str, Property], fields: Iterable[str]) -> list[Property]:
    """The rows that follow any of the changed core ``fields``, in table order."""
    touched = set(fields)
    return [row for row in table.values() if row.follows in touched]


def values(table: dict[str, Property], obj: Any,
           rows: Iterable[Property] | None = None) -> dict[str, tuple[str, Any]]:
    """name → (signature, value) of ``rows`` (default: all) read from ``obj``."""
    return {row.name: (row.signature, row.get(obj))
            for row in (table.values() if rows is None else rows)}
