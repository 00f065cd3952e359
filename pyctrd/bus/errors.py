"""Errors on the bus: the catalogue's D-Bus name and the message, nothing else.

Every error a handler raises crosses the bus through ``to_dbus_error``: a
PyctrdError under its catalogued name (pyctrd.ops.errors), anything else is
logged here and sent as Failed with a one-line message; never a traceback,
never a name derived from a Python class.
"""

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from dbus_fast import DBusError

from pyctrd.errors import PyctrdError
from pyctrd.ops.errors import FAILED, kind_of
from pyctrd.ops.shutdown import ended_by_shutdown, shutting_down_error

log = logging.getLogger(__name__)

T = TypeVar("T")

# Every method call being handled: at shutdown each is answered (pyctrd.ops.shutdown).
calls_in_flight: set[asyncio.Task[Any]] = set()


def to_dbus_error(err: BaseException, what: str = "the call") -> DBusError:
    """``err`` as the D-Bus error a caller sees; ``what`` names the call for the log."""
    if isinstance(err, DBusError):
        return err
    if isinstance(err, PyctrdError):
        return DBusError(kind_of(err).dbus_name, str(err))
    log.error("%s failed unexpectedly", what, exc_info=err)
    detail = " ".join(str(err).split()) or type(err).__name__
    return DBusError(FAILED.dbus_name,
                     f"{what} failed unexpectedly ({detail}); see the pyctrd journal")


def translate_errors(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Wrap a method handler so that whatever it raises leaves as ``to_dbus_error`` says."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        # The call's task, unless an outer handler of the same task counts it already.
        task = asyncio.current_task()
        if task in calls_in_flight:
            task = None
        if task is not None:
            calls_in_flight.add(task)
        try:
            return await fn(*args, **kwargs)
        except asyncio.CancelledError as err:
            if ended_by_shutdown(err):
                raise to_dbus_error(shutting_down_error()) from None
            raise
        except Exception as err:
            raise to_dbus_error(err, fn.__name__) from None
        finally:
            if task is not None:
                calls_in_flight.discard(task)

    return wrapper
