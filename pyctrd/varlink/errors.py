"""Core errors → Varlink errors named after the D-Bus ones, with typed parameters.

Varlink errors belong to an interface, so each interface gets its own set
(io.pyctrd.Container.NoSuchImage and io.pyctrd.Image.NoSuchImage). Every
error carries `message`, the same one-line text D-Bus callers see; some add
what a script wants without parsing it (the name that was not found, the
state a container is in). Nothing else, and no traceback, crosses the socket.
"""

import contextlib
import logging
import types
from collections.abc import Callable, Iterator
from typing import Any

from asyncvarlink import TypedVarlinkErrorReply, VarlinkErrorReply

from pyctrd.errors import PyctrdError

log = logging.getLogger(__name__)

# name → (extra parameters after `message`, what it means: the IDL comment)
ERRORS: dict[str, tuple[tuple[str, ...], str]] = {
    "NoSuchContainer": (("name",), "No container has that name, ID or ID prefix."),
    "NoSuchImage": (("reference",), "No image has that reference, ID or ID prefix."),
    "AmbiguousId": (("prefix",), "An ID prefix matches more than one."),
    "Exists": ((), "A name is already in use."),
    "InvalidState": (("state",), "The method is not allowed in the container's current "
                     "state (given in state)."),
    "InvalidArgument": ((), "A bad option, signal, name, path or archive."),
    "InUse": ((), "An image is used by containers."),
    "RuntimeFailed": ((), "The OCI runtime or conmon failed; message carries its stderr."),
    "StorageFailed": ((), "Mounting, unpacking or exporting failed."),
    "AccessDenied": (("action",), "polkit said no to the polkit action in action."),
    "InteractiveAuthorizationRequired": (("action",), "polkit wants authentication, which "
                                         "a Varlink call cannot give; use D-Bus or pyctr."),
    "Overflow": ((), "A Watch client fell too far behind; the daemon hung up on it."),
    "Failed": ((), "An unexpected failure; the daemon's journal has the details."),
}


class ErrorSet:
    """The error classes of one interface, and the translation into them."""

    def __init__(self, interface: str, names: tuple[str, ...] = tuple(ERRORS)) -> None:
        self.interface = interface
        self.classes: dict[str, type[TypedVarlinkErrorReply]] = {
            name: _error_class(interface, name, *ERRORS[name]) for name in names
        }

    def make(self, error: str, message: str, /, **params: str) -> VarlinkErrorReply:
        extra, _doc = ERRORS[error]
        values = {key: str(params.get(key, "")) for key in extra}
        return self.classes[error](message=message, **values)

    def of(self, err: PyctrdError, context: dict[str, Any]) -> VarlinkErrorReply:
        """The Varlink error for a core error; ``context`` fills its extra parameters
        (a callable value is called now, e.g. to read a container's state)."""
        error = type(err).__name__
        if error not in self.classes:
            error = "Failed"  # e.g. a container error while removing an image
        params = {k: (v() if callable(v) else v) for k, v in context.items()}
        return self.make(error, str(err), **params)

    @contextlib.contextmanager
    def translated(self, **context: str | Callable[[], str]) -> Iterator[None]:
        """Run a method body: core errors keep their names, the unexpected is logged."""
        try:
            yield
        except VarlinkErrorReply:
            raise
        except PyctrdError as err:
            raise self.of(err, context) from None
        except Exception as err:
            log.exception("a Varlink call on %s failed unexpectedly", self.interface)
            raise self.make("Failed", f"the call failed: {err}; see the pyctrd journal") \
                from None


def _error_class(interface: str, name: str, extra: tuple[str, ...],
                 doc: str) -> type[TypedVarlinkErrorReply]:
    annotations = {"message": str, **dict.fromkeys(extra, str)}

    def body(ns: dict[str, Any]) -> None:
        ns["__doc__"] = doc
        ns["Parameters"] = type("Parameters", (), {"__annotations__": annotations})

    return types.new_class(name, (TypedVarlinkErrorReply,),
                           {"interface": interface, "paramprefix": "p_"}, body)
