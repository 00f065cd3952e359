"""Errors a caller can cause or meet.

The core raises these; their wire names (D-Bus, Varlink) are not derived
from the class names but listed in pyctrd.ops.errors, so renaming or
subclassing a class can never rename a public error.
"""


class PyctrdError(Exception):
    """Base of every error a caller may see; the message is shown as is."""


class NoSuchContainer(PyctrdError):
    pass


class NoSuchImage(PyctrdError):
    pass


class NoSuchNetwork(PyctrdError):
    pass


class NoSuchJob(PyctrdError):
    pass


class NoSuchVolume(PyctrdError):
    pass


class NoSuchObject(PyctrdError):
    """A call on an object path that names nothing (any more)."""


class AmbiguousId(PyctrdError):
    pass


class Exists(PyctrdError):
    pass


class InvalidState(PyctrdError):
    pass


class InvalidArgument(PyctrdError):
    pass


class InUse(PyctrdError):
    pass


class RuntimeFailed(PyctrdError):
    pass


class StorageFailed(PyctrdError):
    pass


class RegistryFailed(PyctrdError):
    pass


class NotSupported(PyctrdError):
    pass


class Cancelled(PyctrdError):
    pass


class LimitsExceeded(PyctrdError):
    """A per-caller limit, or the bus's maximum message size."""


class AccessDenied(PyctrdError):
    """polkit said no (or could not be asked: fail closed)."""

    def __init__(self, message: str, action: str = "") -> None:
        super().__init__(message)
        self.action = action


class InteractiveAuthorizationRequired(PyctrdError):
    """polkit would allow it after authentication the caller did not allow."""

    def __init__(self, message: str, action: str = "") -> None:
        super().__init__(message)
        self.action = action


class Overflow(PyctrdError):
    """A watching client fell too far behind and was dropped."""


class Failed(PyctrdError):
    """Something unexpected; the daemon's journal has the details."""
