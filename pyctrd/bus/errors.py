"""Core errors → D-Bus errors; nothing else (and no traceback) crosses the bus."""

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from dbus_fast import DBusError

from pyctrd.bus.names import ERROR_PREFIX
from pyctrd.errors import InvalidArgument, PyctrdError

log = logging.getLogger(__name__)

T = TypeVar("T")


def to_dbus_error(err: PyctrdError) -> DBusError:
    return DBusError(ERROR_PREFIX + type(err).__name__, str(err))


def invalid_argument(message: str) -> DBusError:
    return to_dbus_error(InvalidArgument(message))


def translate_errors(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Wrap a method handler: core errors keep their names, the unexpected is logged."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except DBusError:
            raise
        except PyctrdError as err:
            raise to_dbus_error(err) from None
        except Exception as err:
            log.exception("%s failed unexpectedly", fn.__name__)
            raise DBusError("org.freedesktop.DBus.Error.Failed",
                            f"{fn.__name__} failed: {err}; see the pyctrd journal") from None

    return wrapper
