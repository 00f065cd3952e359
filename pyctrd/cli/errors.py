"""What pyctr prints and returns when something fails.

podman's convention: 125 when the engine itself (here pyctrd or the bus)
fails; for `run`, 126/127 when the container's command cannot be invoked or
found; otherwise the container's own exit code.
"""

EXIT_ENGINE = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127

ERROR_PREFIX = "org.pyctrd1.Error."

# The daemon's messages name API calls ("ListContainers shows ..."); a shell user
# wants the pyctr command instead.
_CLI_HINTS = {
    "NoSuchContainer": "no such container; `pyctr ps -a` lists them",
    "NoSuchImage": "no such image; `pyctr images` lists them, `pyctr import` adds one",
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

    def __init__(self, message: str, status: int = EXIT_ENGINE) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class DaemonError(CliError):
    """An error reply from pyctrd (or the bus), with the D-Bus error name."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(describe(name, text))
        self.name = name
        self.text = text

    @property
    def short_name(self) -> str:
        return self.name.removeprefix(ERROR_PREFIX)


def describe(name: str, text: str) -> str:
    short = name.removeprefix(ERROR_PREFIX)
    if short in _CLI_HINTS:
        return _CLI_HINTS[short]
    if name in _BUS_ERRORS:
        return _BUS_ERRORS[name]
    return text or name


def about(subject: str, err: CliError) -> str:
    """The one line for a failure concerning ``subject`` (a container or image)."""
    return f"{subject}: {err.message}" if subject else err.message


def run_exit_status(err: CliError) -> int:
    """`run`'s exit status for a failure to start: 126/127 when the runtime says
    the command cannot be invoked or found, as podman reports them."""
    if not isinstance(err, DaemonError) or err.short_name != "RuntimeFailed":
        return err.status
    text = err.text.lower()
    if ("executable file not found" in text or "no such file or directory" in text
            or "not found in $path" in text):
        return EXIT_NOT_FOUND
    if "permission denied" in text or "exec format error" in text or "is a directory" in text:
        return EXIT_CANNOT_INVOKE
    return err.status
