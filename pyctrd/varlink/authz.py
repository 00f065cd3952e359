"""Which operation each Varlink method is, and who calls it.

Every Varlink method maps to one pyctrd.ops.operations.Operation, as each
D-Bus method does: the operation carries the polkit action (or none: open)
and builds the details, so a call guarded on one wire is guarded the same
way, with the same details, on the other. A method in no table is refused
when the server starts.

The caller is a unix-process subject (pid, start time, uid from the peer's
credentials); one whose start time could not be read is refused. Varlink
has no flag for interactive authorization, so polkit is never asked to
interact: a challenge is InteractiveAuthorizationRequired.
"""

import contextlib
from typing import Any

from asyncvarlink.conversion import ConversionError, VarlinkType

from pyctrd.core.container import Container
from pyctrd.errors import PyctrdError
from pyctrd.ops.authority import Caller, process_subject, unidentified
from pyctrd.ops.exec import EXEC_SESSION_OPS, command_of_call, exec_check
from pyctrd.ops.names import (
    VARLINK_CONTAINER,
    VARLINK_EVENTS,
    VARLINK_IMAGE,
    VARLINK_JOB,
    VARLINK_NETWORK,
    VARLINK_SERVICE,
    VARLINK_VOLUME,
)
from pyctrd.ops.operations import (
    CONTAINER_OPS,
    EXEC,
    IMAGE_OPS,
    JOB_OPS,
    MANAGER_OPS,
    NETWORK_OPS,
    VOLUME_OPS,
    WATCH,
    Check,
    Operation,
    Operations,
    Target,
    check,
    job_check,
)
from pyctrd.ops.optionstructs import CreateOptions, decode_varlink
from pyctrd.varlink.peer import Peer

CHALLENGE_HINT = ("Varlink cannot ask for a password: authenticate through D-Bus (pyctr) "
                  "or get a polkit rule that allows it")

# Varlink method → the operation it is.
METHODS: dict[str, dict[str, Operation]] = {
    VARLINK_CONTAINER: {
        "Create": MANAGER_OPS["CreateContainer"],
        "List": MANAGER_OPS["ListContainers"],
        "ListPaged": MANAGER_OPS["ListContainersPaged"],
        "ListRows": MANAGER_OPS["ListContainersPaged"],  # the same listing, fewer fields
        "Get": MANAGER_OPS["GetContainer"],
        "Watch": WATCH,
        **{m: CONTAINER_OPS[m] for m in (
            "Init", "Start", "Stop", "Kill", "Pause", "Unpause", "Mount", "Unmount",
            "Export", "Wait", "Remove", "Inspect", "GetStats", "RunHealthCheck")},
        "Exec": CONTAINER_OPS["Exec"],  # and its session's methods (varlink/exec.py):
        "ExecOutput": CONTAINER_OPS["Exec"],  # Exec with its output relayed as replies
        **{f"Exec{m}": EXEC_SESSION_OPS[m] for m in ("Kill", "ResizeTerminal", "Remove")},
        **{m: EXEC_SESSION_OPS["Wait"] for m in ("ExecWait", "ExecGet", "ExecWatch")},
        # Records of OpenLog's stream, as replies: the same action and cap.
        "Logs": CONTAINER_OPS["OpenLog"],
        "OpenLog": CONTAINER_OPS["OpenLog"],
        "Attach": CONTAINER_OPS["Attach"],
    },
    VARLINK_EVENTS: {"List": MANAGER_OPS["GetEvents"]},
    VARLINK_NETWORK: {
        "Create": MANAGER_OPS["CreateNetwork"],
        "Get": MANAGER_OPS["GetNetwork"],
        "List": MANAGER_OPS["ListNetworks"],
        "Remove": NETWORK_OPS["Remove"],
    },
    VARLINK_VOLUME: {
        "Create": MANAGER_OPS["CreateVolume"],
        "Get": MANAGER_OPS["GetVolume"],
        "List": MANAGER_OPS["ListVolumes"],
        "Remove": VOLUME_OPS["Remove"],
    },
    VARLINK_JOB: {
        "Pull": MANAGER_OPS["PullImage"],
        "Push": IMAGE_OPS["Push"],
        "Commit": CONTAINER_OPS["Commit"],
        "List": MANAGER_OPS["ListJobs"],
        "Get": MANAGER_OPS["ListJobs"],
        "Watch": MANAGER_OPS["ListJobs"],
        "Cancel": JOB_OPS["Cancel"],
    },
    VARLINK_IMAGE: {
        "Import": MANAGER_OPS["ImportImage"],
        "List": MANAGER_OPS["ListImages"],
        "Get": MANAGER_OPS["GetImage"],
        "Remove": MANAGER_OPS["RemoveImage"],
        "Watch": WATCH,
        **{m: IMAGE_OPS[m] for m in ("Tag", "Untag", "Save")},
    },
    # Varlink's own introspection: open, as D-Bus introspection is.
    VARLINK_SERVICE: {m: Operation(m, None) for m in ("GetInfo", "GetInterfaceDescription")},
}

# The call parameter that names an operation's target.
TARGET_PARAMETER = {Target.CONTAINER: "name", Target.IMAGE: "reference",
                    Target.NEW_CONTAINER: "image", Target.JOB: "id", Target.NETWORK: "name",
                    Target.VOLUME: "name"}

_CREATE_OPTIONS = VarlinkType.from_type_annotation(CreateOptions | None)


class UnknownMethod(LookupError):
    pass


def operation_of(interface: str, method: str) -> Operation:
    try:
        return METHODS[interface][method]
    except KeyError:
        raise UnknownMethod(f"{interface}.{method} is no operation; map it in "
                            "pyctrd/varlink/authz.py (METHODS)") from None


def caller_of(peer: Peer, operation: Operation) -> Caller:
    """Who calls, as the Authority needs it; AccessDenied if that cannot be told."""
    if peer.uid != 0 and peer.start_time == 0:
        assert operation.action is not None
        raise unidentified(operation.verb, operation.action)
    return Caller(uid=peer.uid, subject=process_subject(peer.pid, peer.start_time, peer.uid),
                  interactive=False, challenge_hint=CHALLENGE_HINT)


def check_for(operations: Operations, operation: Operation, params: dict[str, Any]) -> Check:
    """The polkit check, as D-Bus makes it for the same operation: actions and
    what polkit rules may look at,
    from the call's raw parameters (asyncvarlink checks them once authorized;
    a value of the wrong type names nothing here)."""
    given = params.get(TARGET_PARAMETER.get(operation.target, ""))
    if operation.target is Target.JOB:  # Cancel: its owner needs no polkit
        job = None
        if isinstance(given, str):
            with contextlib.suppress(PyctrdError):
                job = operations.get_job(given)
        return job_check(operation, job)
    if operation.action == EXEC:  # Exec and its session's methods: the command too
        target = operations.target(operation, given) if isinstance(given, str) else None
        return exec_check(operation, target if isinstance(target, Container) else None,
                          command_of_call(operations, operation.verb, params))
    if not isinstance(given, str):
        return check(operation, None)
    options: dict[str, Any] | None = None
    if operation.target is Target.NEW_CONTAINER:
        options = create_options(params.get("options"))
    return check(operation, operations.target(operation, given), given, options)


def create_options(raw: Any) -> dict[str, Any] | None:
    """CreateContainer's options from JSON, checked; None if they are not valid."""
    try:
        return decode_varlink(_CREATE_OPTIONS.fromjson(raw))
    except (ConversionError, PyctrdError):
        return None

