"""What pyctr prints and returns when something fails.

podman's convention: 125 when the engine itself (here pyctrd or the bus)
fails; for `run`, 126/127 when the container's command cannot be invoked or
found; otherwise the container's own exit code.

An error reply is mapped back to its kind in the daemon's error catalogue
(pyctrd.ops.errors), so commands test for the error classes the daemon
raised, not for spellings of wire names.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pyctrd.errors import (
    Exists,
    InvalidState,
    NoSuchContainer,
    NoSuchImage,
    PyctrdError,
    RuntimeFailed,
)

if TYPE_CHECKING:
    from pyctrd.ops.errors import ErrorKind

EXIT_ENGINE = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127

# The daemon's messages name API calls ("ListContainers shows ..."); a shell user
# wants the pyctr command instead.
_CLI_HINTS: dict[type[PyctrdError], str] = {
    NoSuchContainer: "no such container; `pyctr ps -a` lists them",
    NoSuchImage: "no such image; `pyctr images` lists them, `pyctr import` adds one",
}
_BUS_ERRORS = {
    "org.freedesktop.DBus.Error.ServiceUnknown":
        "pyctrd is not running on this bus (start it, or choose the bus with --address/--user)",
    "org.freedesktop.DBus.Error.NameHasNoOwner":
        "pyctrd is not running on this bus (start it, or choose the bus with --address/--user)",
    "org.freedesktop.DBus.Error.NoReply": "pyctrd did not answer in time",
}


class CliError(Exception):
    """A failure worth one line on stderr; ``status`` is pyctr's exit status."""

    def __init__(self, message: str, status: int = EXIT_ENGINE, whole: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.whole = whole  # names its subject already: print as it is


class DaemonError(CliError):
    """An error reply from pyctrd (or the bus), with the D-Bus error name."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(describe(name, text))
        self.name = name
        self.text = text

    @property
    def kind(self) -> ErrorKind | None:
        """The catalogued error this reply names; None for the bus's own errors."""
        from pyctrd.ops.errors import from_dbus_name  # the catalogue: loaded on errors only
        return from_dbus_name(self.name)

    @property
    def short_name(self) -> str:
        """NoSuchImage for a catalogued error, the whole name for any other."""
        from pyctrd.ops.errors import short_name
        return short_name(self.name) if self.kind is not None else self.name

    def is_a(self, *errors: type[PyctrdError]) -> bool:
        """Whether the daemon answered with the wire name of one of ``errors``."""
        kind = self.kind
        return kind is not None and issubclass(kind.exception, errors)


def describe(name: str, text: str) -> str:
    from pyctrd.ops.errors import from_dbus_name
    kind = from_dbus_name(name)
    if kind is not None and kind.exception in _CLI_HINTS:
        return _CLI_HINTS[kind.exception]
    if name in _BUS_ERRORS:
        return _BUS_ERRORS[name]
    return text or name


def about(subject: str, err: CliError, verb: str = "") -> str:
    """The one line for a failure concerning ``subject`` (a container or image), in
    podman's words where scripts match them."""
    if err.whole:
        return err.message
    if isinstance(err, DaemonError) and subject:
        if err.is_a(NoSuchContainer):
            return no_such_container(subject)
        if err.is_a(NoSuchImage):
            return f"{subject}: image not known"
        if err.is_a(InvalidState):
            return invalid_state(subject, verb, err.text)
        if err.is_a(Exists):
            return name_in_use(subject, err.text)
    return f"{subject}: {err.message}" if subject else err.message


def no_such_container(name: str) -> str:
    return f'no container with name or ID "{name}" found: no such container'


_STATE = re.compile(r"it is (\w+)")


def invalid_state(subject: str, verb: str, text: str) -> str:
    """podman's message for a verb the container's state does not allow."""
    match = _STATE.search(text)
    state = match.group(1) if match else "unknown"
    state = {"configured": "created"}.get(state, state)  # podman's word for not yet run
    improper = "container state improper"
    if verb == "pause":
        return f'"{subject}" is not running, can\'t pause: {improper}'
    if verb == "unpause":
        return f'"{subject}" is not paused, can\'t unpause: {improper}'
    if verb == "kill":
        return f"can only kill running containers. {subject} is in state {state}: {improper}"
    if verb == "rm":
        return (f"cannot remove container {subject} as it is {state} - running or paused "
                f"containers cannot be removed without force: {improper}")
    if verb == "attach":
        return f"you can only attach to running containers: {improper}"
    return f"{subject}: {text or 'invalid state'}: {improper}"


def name_in_use(name: str, text: str) -> str:
    found = re.search(r"container ([0-9a-f]{12,64})", text)
    owner = found.group(1) if found else "another container"
    return (f'creating container storage: the container name "{name}" is already in use '
            f"by {owner}. You have to remove that container to be able to reuse that name: "
            "that name is already in use")


def run_exit_status(err: CliError) -> int:
    """`run`'s exit status for a failure to start: 126/127 when the runtime says
    the command cannot be invoked or found, as podman reports them."""
    if not isinstance(err, DaemonError) or not err.is_a(RuntimeFailed):
        return err.status
    text = err.text.lower()
    if ("executable file not found" in text or "no such file or directory" in text
            or "not found in $path" in text):
        return EXIT_NOT_FOUND
    if "permission denied" in text or "exec format error" in text or "is a directory" in text:
        return EXIT_CANNOT_INVOKE
    return err.status
