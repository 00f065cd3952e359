"""Exec, once for both front ends: the polkit action and its details, the
options' schema, the ExecSession property table and operations.

Exec's details carry the command besides the container (a rule may allow
``ps`` and refuse ``sh``); ExecSession's methods are checked against the same
action with the session's container and command.
"""

import contextlib
import shlex
from collections.abc import Mapping
from typing import Any

from pyctrd.core.container import Container
from pyctrd.core.exec import ExecOptions, ExecSession
from pyctrd.core.unixsignals import parse_signal
from pyctrd.errors import InvalidArgument, PyctrdError
from pyctrd.ops.operations import (
    CONTAINER_OPS,
    EXEC,
    Check,
    Operation,
    Operations,
    Target,
    details,
)
from pyctrd.ops.properties import Property
from pyctrd.ops.streams import StreamOwner

EXEC_OP = CONTAINER_OPS["Exec"]
EXEC_SESSION_OPS = {
    **{verb: Operation(verb, EXEC, Target.CONTAINER)
       for verb in ("Kill", "ResizeTerminal", "Remove")},
    "Wait": Operation("Wait", None, Target.CONTAINER),
}

# name → (D-Bus signature, Python type): Exec's a{sv} options
OPTIONS: dict[str, tuple[str, type]] = {
    "terminal": ("b", bool),
    "stdin": ("b", bool),
    "env": ("as", list),
    "workdir": ("s", str),
    "user": ("s", str),
    "detach_keys": ("s", str),
}

EXEC_SESSION_PROPERTIES = {row.name: row for row in (
    Property("Id", "s", lambda s: s.id, doc="64 hex digits (podman's exec session ID)"),
    Property("Command", "as", lambda s: s.command),
    Property("State", "s", lambda s: s.state, "state", "running or exited"),
    Property("PID", "i", lambda s: s.pid, "pid", "0 once exited"),
    Property("ExitCode", "i", lambda s: s.exit_code, "exit_code", "-1 while running"),
    Property("Terminal", "b", lambda s: s.terminal),
    Property("CreatedTimestamp", "t", lambda s: s.created,
             doc="microseconds since the epoch"),
    Property("FinishedTimestamp", "t", lambda s: s.finished, "finished"),
)}


def command_text(command: list[str]) -> str:
    return shlex.join(command)


def exec_check(operation: Operation, container: Container | None,
               command: list[str]) -> Check:
    """The polkit check of Exec or an ExecSession method: the container and the command."""
    assert operation.action is not None
    found = details(operation, container)
    found["command"] = command_text(command)
    return Check((operation.action,), found)


def decode_options(options: Mapping[str, Any]) -> ExecOptions:
    """Exec's options as plain values (from either wire); InvalidArgument if wrong."""
    decoded = ExecOptions()
    for name, value in options.items():
        if name not in OPTIONS:
            raise InvalidArgument(f"unknown Exec option {name!r}; known: "
                                  f"{', '.join(sorted(OPTIONS))}")
        signature, kind = OPTIONS[name]
        if isinstance(value, list):
            if kind is not list or not all(isinstance(v, str) for v in value):
                raise InvalidArgument(f"Exec option {name!r} must be of type {signature}")
            value = list(value)
        elif not isinstance(value, kind) or kind is list:
            raise InvalidArgument(f"Exec option {name!r} must be of type {signature}")
        setattr(decoded, name, value)
    return decoded


async def exec_in(operations: Operations, container: Container, command: list[str],
                  options: ExecOptions, owner: StreamOwner | None) -> tuple[ExecSession, int]:
    """Start the session; its stdio socket's descriptor, the caller's to own."""
    async with operations.streams.admit(owner, "Exec"):
        session, sock = await operations.engine.execs.exec(container, command, options, owner)
    return session, sock.detach()


def kill(operations: Operations, session: ExecSession, signal: str) -> None:
    operations.engine.execs.kill(session, parse_signal(signal or "SIGKILL"))


def resize(operations: Operations, session: ExecSession, rows: int, cols: int) -> None:
    operations.engine.execs.resize(session, rows, cols)


def remove(operations: Operations, session: ExecSession) -> None:
    operations.engine.execs.remove(session, force=False)


def command_of_call(operations: Operations, verb: str, params: Mapping[str, Any]) -> list[str]:
    """The command a Varlink exec call concerns (its own for Exec, the session's
    for the others), for polkit's details; [] if the call names none."""
    if verb == "Exec":
        command = params.get("command")
        return [str(a) for a in command] if isinstance(command, list) else []
    name, number = params.get("name"), params.get("session")
    if isinstance(name, str) and isinstance(number, int):
        with contextlib.suppress(PyctrdError):
            container = operations.get_container(name)
            return operations.engine.execs.lookup(container, number).command
    return []
