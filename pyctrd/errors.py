"""Errors a caller can cause or meet; each maps to one D-Bus error name.

The core raises these; front ends translate them by class name, so the
class names are the error names of shared/API.md.
"""


class PyctrdError(Exception):
    """Base of every error a caller may see; the message is shown as is."""


class NoSuchContainer(PyctrdError):
    pass


class NoSuchImage(PyctrdError):
    pass


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
