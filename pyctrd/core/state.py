"""Container states and which operations each one allows (libpod's model)."""

from enum import StrEnum

from pyctrd.errors import InvalidState


class State(StrEnum):
    CONFIGURED = "configured"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"
    UNKNOWN = "unknown"


S = State

# Operation → the states it may start from.
ALLOWED: dict[str, frozenset[State]] = {
    "Init": frozenset({S.CONFIGURED, S.EXITED}),
    "Start": frozenset({S.CONFIGURED, S.CREATED, S.EXITED}),
    "Stop": frozenset({S.CREATED, S.RUNNING, S.PAUSED}),
    "Kill": frozenset({S.RUNNING}),
    "Pause": frozenset({S.RUNNING}),
    "Unpause": frozenset({S.PAUSED}),
    "Mount": frozenset({S.CONFIGURED, S.CREATED, S.RUNNING, S.PAUSED, S.EXITED}),
    "Unmount": frozenset({S.CONFIGURED, S.CREATED, S.EXITED}),
    "Export": frozenset({S.CONFIGURED, S.CREATED, S.RUNNING, S.PAUSED, S.EXITED}),
    "Remove": frozenset({S.CONFIGURED, S.CREATED, S.EXITED, S.UNKNOWN}),
}

# States in which a live conmon (and so an OCI runtime container) exists.
ACTIVE = frozenset({S.CREATED, S.RUNNING, S.PAUSED})

# States in which the container's process is the user's command, and so has a PID to
# show (API.md: "PID is 0 unless the container is running or paused"); when created,
# runc's init waits in its place.
WITH_PID = frozenset({S.RUNNING, S.PAUSED})


def require(operation: str, current: State, name: str) -> None:
    """Raise InvalidState unless ``operation`` may run in ``current``."""
    allowed = ALLOWED[operation]
    if current not in allowed:
        needed = ", ".join(sorted(allowed))
        raise InvalidState(
            f"cannot {operation} container {name}: it is {current}; "
            f"{operation} needs a container that is {needed}"
        )
