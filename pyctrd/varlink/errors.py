"""Core errors → Varlink errors, named and documented by pyctrd.ops.errors only.

Varlink errors belong to an interface, so each interface declares its own
set (io.pyctrd.Container.NoSuchImage and io.pyctrd.Image.NoSuchImage), built
from the catalogue's rows: the name, the parameters after `message` and the
IDL comment all come from there. Every error carries `message`, the same
one-line text D-Bus callers see; some add what a script wants without
parsing it (the name that was not found, the state a container is in, the
polkit action). Nothing else, and no traceback, crosses the socket.
"""

import asyncio
import contextlib
import logging
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from asyncvarlink import TypedVarlinkErrorReply, VarlinkErrorReply

from pyctrd.errors import PyctrdError
from pyctrd.ops.errors import BY_VARLINK_NAME, CATALOGUE, FAILED, ErrorKind, kind_of
from pyctrd.ops.shutdown import ended_by_shutdown, shutting_down_error

log = logging.getLogger(__name__)

# A call parameter's value, or a function that reads it when the error happens.
Context = str | Callable[[], str]


class ErrorSet:
    """The error classes of one interface, and the translation into them."""

    def __init__(self, interface: str, names: Iterable[str] | None = None) -> None:
        """``names``: the catalogue's Varlink names this interface declares (default:
        all), kept in catalogue order; Failed is always among them."""
        wanted = set(BY_VARLINK_NAME if names is None else names) | {FAILED.varlink_name}
        unknown = wanted - set(BY_VARLINK_NAME)
        if unknown:
            raise LookupError(f"not in pyctrd.ops.errors.CATALOGUE: {sorted(unknown)}")
        self.interface = interface
        self.kinds: dict[str, ErrorKind] = {
            k.varlink_name: k for k in CATALOGUE if k.varlink_name in wanted}
        self.classes: dict[str, type[TypedVarlinkErrorReply]] = {
            name: _error_class(interface, kind) for name, kind in self.kinds.items()}

    def make(self, name: str, message: str, /, **params: Any) -> VarlinkErrorReply:
        """Error ``name`` (a catalogue Varlink name this interface declares)."""
        kind = self.kinds[name]
        values = {key: str(params.get(key, "")) for key in kind.params}
        return self.classes[name](message=message, **values)

    def of(self, err: PyctrdError, context: dict[str, Context]) -> VarlinkErrorReply:
        """The Varlink error for a core error. A parameter comes from the error
        itself (AccessDenied's action) or else from ``context``, a callable value
        being called now (e.g. to read a container's state)."""
        kind = kind_of(err)
        if kind.varlink_name not in self.kinds:
            # Catalogued, but not declared here: e.g. a container's error while an
            # image is removed with force. Its message still says what happened.
            log.warning("varlink: %s has no %s; answering Failed: %s",
                        self.interface, kind.varlink_name, err)
            kind = FAILED
        params: dict[str, Any] = {}
        for key in kind.params:
            value = getattr(err, key, None)
            if value is None and key in context:
                found = context[key]
                value = found() if callable(found) else found
            params[key] = "" if value is None else value
        return self.make(kind.varlink_name, str(err), **params)

    @contextlib.contextmanager
    def translated(self, **context: Context) -> Iterator[None]:
        """Run a method body: core errors get their catalogued names, the
        unexpected is logged and becomes Failed."""
        try:
            yield
        except VarlinkErrorReply:
            raise
        except asyncio.CancelledError as err:
            if ended_by_shutdown(err):
                raise self.of(shutting_down_error(), context) from None
            raise
        except PyctrdError as err:
            raise self.of(err, context) from None
        except Exception as err:
            log.exception("a Varlink call on %s failed unexpectedly", self.interface)
            raise self.make(FAILED.varlink_name,
                            f"the call failed: {err}; see the pyctrd journal") from None


def _error_class(interface: str, kind: ErrorKind) -> type[TypedVarlinkErrorReply]:
    annotations = {"message": str, **dict.fromkeys(kind.params, str)}

    def body(ns: dict[str, Any]) -> None:
        ns["__doc__"] = kind.doc
        ns["Parameters"] = type("Parameters", (), {"__annotations__": annotations})

    return types.new_class(kind.varlink_name, (TypedVarlinkErrorReply,),
                           {"interface": interface, "paramprefix": "p_"}, body)
