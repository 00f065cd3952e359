"""The ops property tables on the bus: getters, variants and introspection.

Each row of pyctrd.ops.properties becomes one read-only dbus_property; the
same rows give the values of GetManagedObjects, InterfacesAdded and
PropertiesChanged, and a const row carries the annotation
EmitsChangedSignal=const in introspection (as it does in dbus/*.xml).
dbus-fast's introspection objects are built when the class is defined and
have no place for argument names or annotations in the decorators, so the
helpers below set them on the class's introspection objects afterwards.
"""

from collections.abc import Callable, Iterable
from typing import Any

from dbus_fast import Variant
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import dbus_property

from pyctrd.ops.properties import Property, values

EMITS_CHANGED = "org.freedesktop.DBus.Property.EmitsChangedSignal"
UNIX_FD = "org.gtk.GDBus.C.UnixFD"

Table = dict[str, Property]


def variants(table: Table, obj: Any, rows: Iterable[Property] | None = None
             ) -> dict[str, Variant]:
    """name → Variant of ``rows`` (default: all of ``table``) read from ``obj``."""
    return {name: Variant(signature, value)
            for name, (signature, value) in values(table, obj, rows).items()}


def add_readonly_properties(cls: type, table: Table, target: Callable[[Any], Any]) -> None:
    """Give a ServiceInterface subclass one read-only dbus_property per table row,
    annotated const when the row never changes.

    ``target`` maps the interface instance to the object the getters read.
    Call before the class is first instantiated (dbus-fast collects members then).
    """

    def make_getter(row: Property) -> Callable[[Any], Any]:
        def getter(self: Any) -> Any:
            return row.get(target(self))

        getter.__name__ = row.name
        getter.__annotations__ = {"return": row.signature}
        return getter

    for row in table.values():
        prop = dbus_property(access=PropertyAccess.READ, name=row.name)(make_getter(row))
        if row.const:
            prop.introspection.annotations[EMITS_CHANGED] = "const"
        setattr(cls, row.name, prop)


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


def dbus_methods(cls: type) -> list[Any]:
    """The dbus-fast method entries (_Method) a ServiceInterface class defines."""
    return [entry for member in vars(cls).values()
            if (entry := getattr(member, "__dict__", {}).get("__DBUS_METHOD")) is not None]


def annotate_fd_methods(cls: type) -> None:
    """Mark each method taking or returning a descriptor (h) for gdbus-codegen,
    which then passes a GUnixFDList."""
    for method in dbus_methods(cls):
        if "h" in method.in_signature + method.out_signature:
            method.introspection.annotations[UNIX_FD] = "true"
