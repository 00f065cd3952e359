"""The error catalogue: each error a caller can meet, with its name on each wire.

Names are literals, as systemd's bus-common-errors.h spells them, and are
checked against the table of shared/API.md by a test. A core exception maps
through its class (or the nearest catalogued base class); anything not in
the catalogue is unexpected and crosses the wire only as Failed, with no
traceback.
"""

from dataclasses import dataclass

from pyctrd import errors as e

FREEDESKTOP = "org.freedesktop.DBus.Error."
PYCTRD = "org.pyctrd1.Error."


@dataclass(frozen=True)
class ErrorKind:
    exception: type[e.PyctrdError]
    dbus_name: str
    varlink_name: str  # short: each Varlink interface declares it as <interface>.<name>
    params: tuple[str, ...]  # Varlink parameters after `message`
    doc: str


CATALOGUE: tuple[ErrorKind, ...] = (
    ErrorKind(e.NoSuchContainer, PYCTRD + "NoSuchContainer", "NoSuchContainer", ("name",),
              "No container has that name, ID or ID prefix."),
    ErrorKind(e.NoSuchImage, PYCTRD + "NoSuchImage", "NoSuchImage", ("reference",),
              "No image has that reference, ID or ID prefix."),
    ErrorKind(e.NoSuchNetwork, PYCTRD + "NoSuchNetwork", "NoSuchNetwork", ("name",),
              "No network has that name or ID."),
    ErrorKind(e.NoSuchJob, PYCTRD + "NoSuchJob", "NoSuchJob", ("id",),
              "No job has that path or ID."),
    ErrorKind(e.NoSuchVolume, PYCTRD + "NoSuchVolume", "NoSuchVolume", ("name",),
              "No volume has that name."),
    ErrorKind(e.AmbiguousId, PYCTRD + "AmbiguousId", "AmbiguousId", ("prefix",),
              "An ID prefix matches more than one."),
    ErrorKind(e.Exists, PYCTRD + "Exists", "Exists", (), "A name is already in use."),
    ErrorKind(e.InvalidState, PYCTRD + "InvalidState", "InvalidState", ("state",),
              "The method is not allowed in the container's current state (given in "
              "state)."),
    ErrorKind(e.InvalidArgument, PYCTRD + "InvalidArgument", "InvalidArgument", (),
              "A bad option, signal, name, path or archive."),
    ErrorKind(e.InUse, PYCTRD + "InUse", "InUse", (), "An image is used by containers."),
    ErrorKind(e.RuntimeFailed, PYCTRD + "RuntimeFailed", "RuntimeFailed", (),
              "The OCI runtime or conmon failed; message carries its stderr."),
    ErrorKind(e.StorageFailed, PYCTRD + "StorageFailed", "StorageFailed", (),
              "Mounting, unpacking or exporting failed."),
    ErrorKind(e.RegistryFailed, PYCTRD + "RegistryFailed", "RegistryFailed", (),
              "A registry could not be reached, refused the credentials, or has no such "
              "image or tag."),
    ErrorKind(e.NotSupported, PYCTRD + "NotSupported", "NotSupported", (),
              "The request needs something this daemon or host lacks; message says what."),
    ErrorKind(e.Cancelled, PYCTRD + "Cancelled", "Cancelled", (), "The job was cancelled."),
    ErrorKind(e.AccessDenied, FREEDESKTOP + "AccessDenied", "AccessDenied", ("action",),
              "polkit said no to the polkit action in action."),
    ErrorKind(e.InteractiveAuthorizationRequired,
              FREEDESKTOP + "InteractiveAuthorizationRequired",
              "InteractiveAuthorizationRequired", ("action",),
              "polkit wants authentication the call did not allow."),
    ErrorKind(e.LimitsExceeded, FREEDESKTOP + "LimitsExceeded", "LimitsExceeded", (),
              "A per-caller limit (pending authorizations, open streams, connections) or "
              "the bus's message size."),
    ErrorKind(e.NoSuchObject, FREEDESKTOP + "UnknownObject", "UnknownObject", (),
              "No object has that path (any more)."),
    ErrorKind(e.Overflow, FREEDESKTOP + "LimitsExceeded", "Overflow", (),
              "A Watch client fell too far behind; the daemon hung up on it."),
    ErrorKind(e.Failed, FREEDESKTOP + "Failed", "Failed", (),
              "An unexpected failure; the daemon's journal has the details."),
)

_BY_CLASS: dict[type[e.PyctrdError], ErrorKind] = {k.exception: k for k in CATALOGUE}
_BY_DBUS_NAME: dict[str, ErrorKind] = {}
for _kind in CATALOGUE:
    _BY_DBUS_NAME.setdefault(_kind.dbus_name, _kind)
BY_VARLINK_NAME: dict[str, ErrorKind] = {k.varlink_name: k for k in CATALOGUE}
FAILED = _BY_CLASS[e.Failed]


def kind_of(err: BaseException) -> ErrorKind:
    """The catalogued kind of ``err``: its class's, or its nearest catalogued base's;
    Failed for anything else."""
    for cls in type(err).__mro__:
        kind = _BY_CLASS.get(cls)
        if kind is not None:
            return kind
    return FAILED


def from_dbus_name(name: str) -> ErrorKind | None:
    """The kind a D-Bus error name stands for (pyctr maps replies back with it)."""
    return _BY_DBUS_NAME.get(name)


def short_name(dbus_name: str) -> str:
    """org.pyctrd1.Error.NoSuchImage → NoSuchImage (any namespace)."""
    return dbus_name.rsplit(".", 1)[-1]
