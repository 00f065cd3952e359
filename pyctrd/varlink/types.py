"""The typed structs of io.pyctrd.*: their fields, and how each reads the core.

asyncvarlink derives the interface description from these dataclasses (each
one becomes a named `type`), so a field added here, or a row added to a
property table, is added to the contract: update varlink/*.varlink with it
(a test compares them with the live service).

ContainerInfo and ImageInfo are made from pyctrd.ops.properties' tables: one
field per D-Bus property, in snake_case and table order, read by the same
getters, so both front ends show the same values. CreateOptions is
pyctrd.ops.optionstructs.CreateOptions.
"""

import enum
from dataclasses import dataclass, make_dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from pyctrd.core.container import Container
from pyctrd.core.image import Image
from pyctrd.ops.options import STRUCT_FIELDS
from pyctrd.ops.optionstructs import PortMapping
from pyctrd.ops.properties import CONTAINER_PROPERTIES, IMAGE_PROPERTIES, Property, snake_case

# A property's D-Bus signature → its type in a Varlink struct.
_TYPES: dict[str, Any] = {
    "s": str, "b": bool, "i": int, "u": int, "t": int, "d": float,
    "as": list[str], "a{ss}": dict[str, str], "a(sqqs)": list[PortMapping],
}
# Signatures whose D-Bus value (a list of lists) becomes a list of structs.
_STRUCT_LISTS: dict[str, type] = {"a(sqqs)": PortMapping}


def _varlink_value(row: Property, value: Any) -> Any:
    struct = _STRUCT_LISTS.get(row.signature)
    return [struct(*item) for item in value] if struct is not None else value


def _info_struct(name: str, table: dict[str, Property], doc: str) -> type:
    struct = make_dataclass(name, [(row.field, _TYPES[row.signature]) for row in table.values()])
    struct.__doc__ = doc
    struct.__module__ = __name__
    return struct


if TYPE_CHECKING:  # made at run time; a type checker knows no more than "a dataclass"
    ContainerInfo: TypeAlias = Any
    ImageInfo: TypeAlias = Any
else:
    ContainerInfo = _info_struct("ContainerInfo", CONTAINER_PROPERTIES,
                                 "A container's D-Bus properties.")
    ImageInfo = _info_struct("ImageInfo", IMAGE_PROPERTIES, "An image's D-Bus properties.")


def container_info(container: Container) -> ContainerInfo:
    """The ContainerInfo of ``container`` now."""
    return ContainerInfo(**{row.field: _varlink_value(row, row.get(container))
                            for row in CONTAINER_PROPERTIES.values()})


ROWS_PER_REPLY = 2000  # ListRows with more: ~0.3 MB a reply with ps's 11 fields


def row_of(container: Container, rows: tuple[Property, ...]) -> list[Any]:
    """ListRows' row: the JSON values of ``rows`` (ports as PortMapping objects)."""
    values = []
    for row in rows:
        value = row.get(container)
        if row.signature in _STRUCT_LISTS:
            value = [dict(zip(STRUCT_FIELDS[row.signature], item, strict=True))
                     for item in value]
        values.append(value)
    return values


def image_info(image: Image) -> ImageInfo:
    """The ImageInfo of ``image`` now."""
    return ImageInfo(**{row.field: row.get(image) for row in IMAGE_PROPERTIES.values()})


# --------------------------------------------------------------------------
# Inspect: Container.inspect()'s podman-style dict, as typed structs


@dataclass
class InspectHealthResult:
    start: str  # RFC 3339
    end: str
    exit_code: int  # -1: killed at its timeout
    output: str
    truncated: bool


@dataclass
class InspectHealth:
    status: str
    failing_streak: int
    log: list[InspectHealthResult]  # the last 5, oldest first


@dataclass
class InspectState:
    status: str
    running: bool
    paused: bool
    pid: int
    conmon_pid: int
    exit_code: int
    oom_killed: bool
    started_at: str  # RFC 3339, "" when unset
    finished_at: str
    restart_count: int = 0
    health: InspectHealth | None = None  # only with a health check


@dataclass
class InspectConfig:
    cmd: list[str]
    env: list[str]
    working_dir: str
    user: str
    uid: int
    gid: int
    hostname: str
    labels: dict[str, str]
    annotations: dict[str, str]
    stop_signal: int
    stop_timeout: int
    tty: bool
    open_stdin: bool


@dataclass
class InspectHostConfig:
    memory: int
    cpus: float
    pids_limit: int
    network_mode: str
    readonly_rootfs: bool


@dataclass
class InspectMount:
    source: str
    destination: str
    options: list[str]


@dataclass
class InspectGraphDriver:
    name: str
    lower_dir: str
    upper_dir: str
    work_dir: str
    merged_dir: str


@dataclass
class InspectInfo:
    id: str
    name: str
    created: str
    path: str
    args: list[str]
    image: str
    image_name: str
    state: InspectState
    config: InspectConfig
    host_config: InspectHostConfig
    mounts: list[InspectMount]
    graph_driver: InspectGraphDriver
    mounted: bool
    mountpoint: str
    log_path: str
    bundle_path: str
    oci_runtime: str
    oci_spec: dict[str, Any] | None  # the OCI runtime spec in use; null before Init


def _fields(struct: type, data: dict[str, Any]) -> dict[str, Any]:
    """podman's CamelCase keys → the struct's fields (keys it does not know are left out)."""
    wanted = struct.__dataclass_fields__  # type: ignore[attr-defined]
    return {snake_case(key): value for key, value in data.items()
            if snake_case(key) in wanted}


def _inspect_state(state: dict[str, Any]) -> InspectState:
    found = _fields(InspectState, state)
    health = state.get("Health")
    if health is not None:
        found["health"] = InspectHealth(
            status=health["Status"], failing_streak=health["FailingStreak"],
            log=[InspectHealthResult(**_fields(InspectHealthResult, r))
                 for r in health["Log"]])
    return InspectState(**found)


def inspect_info(data: dict[str, Any]) -> InspectInfo:
    graph = data["GraphDriver"]
    driver = graph["Data"]
    return InspectInfo(
        id=data["Id"], name=data["Name"], created=data["Created"], path=data["Path"],
        args=list(data["Args"]), image=data["Image"], image_name=data["ImageName"],
        state=_inspect_state(data["State"]),
        config=InspectConfig(**_fields(InspectConfig, data["Config"])),
        host_config=InspectHostConfig(
            memory=int(data["HostConfig"]["Memory"]),
            cpus=float(data["HostConfig"]["Cpus"]),
            pids_limit=int(data["HostConfig"]["PidsLimit"]),
            network_mode=data["HostConfig"]["NetworkMode"],
            readonly_rootfs=bool(data["HostConfig"]["ReadonlyRootfs"])),
        mounts=[InspectMount(source=m["Source"], destination=m["Destination"],
                             options=list(m["Options"])) for m in data["Mounts"]],
        graph_driver=InspectGraphDriver(
            name=graph["Name"], lower_dir=driver["LowerDir"], upper_dir=driver["UpperDir"],
            work_dir=driver["WorkDir"], merged_dir=driver["MergedDir"]),
        mounted=data["Mounted"], mountpoint=data["Mountpoint"], log_path=data["LogPath"],
        bundle_path=data["BundlePath"], oci_runtime=data["OCIRuntime"],
        oci_spec=data["OCISpec"],
    )


# --------------------------------------------------------------------------
# Watch


class EventKind(enum.Enum):
    existing = "existing"  # Watch(existing: true): one per object there is, first
    ready = "ready"  # the subscription is live: every change from here on is sent
    added = "added"
    changed = "changed"
    removed = "removed"


@dataclass
class ContainerEvent:
    kind: EventKind
    id: str  # "" for ready
    changed: list[str]  # for changed: the ContainerInfo fields whose values changed
    container: ContainerInfo | None  # its properties then (the last known for removed)


@dataclass
class ImageEvent:
    kind: EventKind
    id: str
    changed: list[str]  # for changed: the ImageInfo fields whose values changed
    image: ImageInfo | None
