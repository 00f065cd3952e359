"""The typed structs of io.pyctrd.*: their fields, and how each reads the core.

asyncvarlink derives the interface description from these dataclasses (each
one becomes a named `type`), so a field added here is added to the contract:
update varlink/*.varlink with it (a test compares them with the live service).

ContainerInfo and ImageInfo carry exactly the D-Bus properties, in snake_case,
read through pyctrd.bus.props' tables so both front ends show the same values.
"""

import enum
import re
from dataclasses import dataclass
from typing import Any

from pyctrd.bus.props import CONTAINER_PROPERTIES, IMAGE_PROPERTIES, STATUS_TO_PROPERTIES
from pyctrd.core.container import Container
from pyctrd.core.image import Image
from pyctrd.errors import InvalidArgument

UINT32_MAX = (1 << 32) - 1
UINT64_MAX = (1 << 64) - 1


def snake_case(name: str) -> str:
    """D-Bus property name → Varlink field: ImageId → image_id, OOMKilled → oom_killed."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@dataclass
class ContainerInfo:
    id: str
    name: str
    image: str
    image_id: str
    command: list[str]
    state: str
    pid: int
    exit_code: int
    oom_killed: bool
    mounted: bool
    mountpoint: str
    created_timestamp: int
    started_timestamp: int
    finished_timestamp: int
    labels: dict[str, str]
    log_path: str
    stop_signal: int
    stop_timeout: int
    terminal: bool


@dataclass
class ImageInfo:
    id: str
    reference: str
    digest: str
    size: int
    created_timestamp: int
    layers: list[str]
    entrypoint: list[str]
    cmd: list[str]
    env: list[str]
    working_dir: str
    user: str


def container_info(container: Container) -> ContainerInfo:
    return ContainerInfo(**{snake_case(name): get(container)
                            for name, (_sig, get) in CONTAINER_PROPERTIES.items()})


def image_info(image: Image) -> ImageInfo:
    return ImageInfo(**{snake_case(name): get(image)
                        for name, (_sig, get) in IMAGE_PROPERTIES.items()})


def changed_fields(changes: dict[str, Any]) -> list[str]:
    """The ContainerInfo fields a core status change touched, in field order."""
    touched = {p for key in changes for p in STATUS_TO_PROPERTIES.get(key, ())}
    return [snake_case(name) for name in CONTAINER_PROPERTIES if name in touched]


# --------------------------------------------------------------------------
# Create


@dataclass
class Mount:
    source: str
    destination: str
    options: str  # comma-separated, e.g. "ro,bind"


@dataclass
class CreateOptions:
    """The D-Bus CreateContainer option keys; an absent field takes the default."""

    name: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    env: list[str] | None = None
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    terminal: bool | None = None
    stdin: bool | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    read_only: bool | None = None
    mounts: list[Mount] | None = None
    memory_limit: int | None = None
    cpu_quota: float | None = None
    pids_limit: int | None = None
    network: str | None = None


# What D-Bus' unsigned types guarantee and a Varlink int does not.
_RANGES = {"stop_timeout": UINT32_MAX, "memory_limit": UINT64_MAX, "pids_limit": UINT64_MAX}


def core_options(options: CreateOptions | None) -> dict[str, Any]:
    """CreateOptions → the plain dict Engine.create_container checks further."""
    if options is None:
        return {}
    plain: dict[str, Any] = {}
    for key, value in vars(options).items():
        if value is None:
            continue
        if key in _RANGES:
            check_range(key, value, _RANGES[key])
        if key == "mounts":
            value = [(m.source, m.destination, m.options) for m in value]
        plain[key] = value
    return plain


def check_range(what: str, value: int, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise InvalidArgument(f"{what} {value} is out of range 0..{maximum}")


# --------------------------------------------------------------------------
# Inspect: Container.inspect()'s podman-style dict, as typed structs


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


def inspect_info(data: dict[str, Any]) -> InspectInfo:
    graph = data["GraphDriver"]
    driver = graph["Data"]
    return InspectInfo(
        id=data["Id"], name=data["Name"], created=data["Created"], path=data["Path"],
        args=list(data["Args"]), image=data["Image"], image_name=data["ImageName"],
        state=InspectState(**_fields(InspectState, data["State"])),
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
