"""Property tables: one place says how each D-Bus property reads the core.

The ServiceInterface getters, GetManagedObjects, InterfacesAdded and
PropertiesChanged all read through these tables, so they cannot disagree.
"""

from collections.abc import Callable
from typing import Any

from dbus_fast import Variant

from pyctrd.core.container import Container
from pyctrd.core.image import Image

Getter = Callable[[Any], Any]

CONTAINER_PROPERTIES: dict[str, tuple[str, Getter]] = {
    "Id": ("s", lambda c: c.id),
    "Name": ("s", lambda c: c.name),
    "Image": ("s", lambda c: c.config.image_ref),
    "ImageId": ("s", lambda c: c.config.image_id),
    "Command": ("as", lambda c: c.config.command),
    "State": ("s", lambda c: str(c.status.state)),
    "PID": ("i", lambda c: c.status.pid),
    "ExitCode": ("i", lambda c: c.status.exit_code),
    "OOMKilled": ("b", lambda c: c.status.oom_killed),
    "Mounted": ("b", lambda c: c.status.mounted),
    "Mountpoint": ("s", lambda c: c.status.mountpoint),
    "CreatedTimestamp": ("t", lambda c: c.config.created),
    "StartedTimestamp": ("t", lambda c: c.status.started),
    "FinishedTimestamp": ("t", lambda c: c.status.finished),
    "Labels": ("a{ss}", lambda c: c.config.labels),
    "LogPath": ("s", lambda c: str(c.log_path)),
    "StopSignal": ("u", lambda c: c.config.stop_signal),
    "StopTimeout": ("u", lambda c: c.config.stop_timeout),
    "Terminal": ("b", lambda c: c.config.terminal),
}

# core status field → the properties it feeds
STATUS_TO_PROPERTIES: dict[str, tuple[str, ...]] = {
    "state": ("State",),
    "pid": ("PID",),
    "exit_code": ("ExitCode",),
    "oom_killed": ("OOMKilled",),
    "mounted": ("Mounted",),
    "mountpoint": ("Mountpoint",),
    "started": ("StartedTimestamp",),
    "finished": ("FinishedTimestamp",),
}

IMAGE_PROPERTIES: dict[str, tuple[str, Getter]] = {
    "Id": ("s", lambda i: i.id),
    "Reference": ("s", lambda i: i.reference),
    "Digest": ("s", lambda i: i.digest),
    "Size": ("t", lambda i: i.size),
    "CreatedTimestamp": ("t", lambda i: i.created),
    "Layers": ("as", lambda i: i.layers),
    "Entrypoint": ("as", lambda i: i.entrypoint),
    "Cmd": ("as", lambda i: i.cmd),
    "Env": ("as", lambda i: i.env),
    "WorkingDir": ("s", lambda i: i.workdir),
    "User": ("s", lambda i: i.user),
}


def variants(table: dict[str, tuple[str, Getter]], obj: Any,
             names: tuple[str, ...] | list[str] | None = None) -> dict[str, Variant]:
    selected = table if names is None else {n: table[n] for n in names}
    return {name: Variant(sig, get(obj)) for name, (sig, get) in selected.items()}


def container_variants(container: Container, names: list[str] | None = None
                       ) -> dict[str, Variant]:
    return variants(CONTAINER_PROPERTIES, container, names)


def image_variants(image: Image, names: list[str] | None = None) -> dict[str, Variant]:
    return variants(IMAGE_PROPERTIES, image, names)


def changed_properties(changes: dict[str, Any]) -> list[str]:
    """The D-Bus properties touched by a set of core status changes, in table order."""
    touched = {p for field in changes for p in STATUS_TO_PROPERTIES.get(field, ())}
    return [name for name in CONTAINER_PROPERTIES if name in touched]


def add_readonly_properties(cls: type, table: dict[str, tuple[str, Getter]],
                            target: Callable[[Any], Any]) -> None:
    """Give a ServiceInterface subclass one read-only dbus_property per table row.

    ``target`` maps the interface instance to the core object the getters read.
    Call before the class is first instantiated (dbus-fast collects members then).
    """
    from dbus_fast.constants import PropertyAccess
    from dbus_fast.service import dbus_property

    def make_getter(name: str, signature: str, get: Getter) -> Callable[[Any], Any]:
        def getter(self: Any) -> Any:
            return get(target(self))

        getter.__name__ = name
        getter.__annotations__ = {"return": signature}
        return getter

    for name, (signature, get) in table.items():
        prop = dbus_property(access=PropertyAccess.READ, name=name)
        setattr(cls, name, prop(make_getter(name, signature, get)))


def name_out_args(cls: type, names: dict[str, list[str]]) -> None:
    """Name the out arguments of methods and signals in the introspection data.

    dbus-fast takes types from return annotations but has no place for names;
    API.md gives them (e.g. Wait → (i exit_code)), and clients show them.
    """
    for member, arg_names in names.items():
        attrs = vars(getattr(cls, member))
        entry = attrs.get("__DBUS_METHOD") or attrs["__DBUS_SIGNAL"]
        args = entry.introspection.out_args if "__DBUS_METHOD" in attrs \
            else entry.introspection.args
        for arg, arg_name in zip(args, arg_names, strict=True):
            arg.name = arg_name
