"""Who may call what over Varlink: the D-Bus polkit actions, a unix-process subject.

Each Varlink method names its D-Bus counterpart, and pyctrd.bus.authz decides
the action from that, so both front ends guard a method with the same action
and send polkit the same details (verb = the D-Bus method name, so a rule
written for D-Bus callers holds for Varlink callers too). Root passes without
asking; polkit unreachable or answering with an error means no (PolkitClient
fails closed). A method in no table is refused when the server starts.

Varlink has no flag for interactive authorization (D-Bus has one), so polkit
is never asked to interact: a challenge is InteractiveAuthorizationRequired.
"""

import contextlib
from typing import Any

from pyctrd.bus.authz import action_for
from pyctrd.bus.names import CONTAINER_IFACE, IMAGE_IFACE, MANAGER_IFACE
from pyctrd.bus.polkit import PolkitClient, Verdict, process_subject
from pyctrd.core.engine import Engine
from pyctrd.errors import PyctrdError
from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.peer import Peer

CONTAINER = "io.pyctrd.Container"
IMAGE = "io.pyctrd.Image"
SERVICE = "org.varlink.service"

# Varlink method → its D-Bus counterpart (interface, member); None: no counterpart,
# open to all because it only reads what D-Bus shows anyone (Watch: the signals).
DBUS_METHOD: dict[str, dict[str, tuple[str, str] | None]] = {
    CONTAINER: {
        "Create": (MANAGER_IFACE, "CreateContainer"),
        "List": (MANAGER_IFACE, "ListContainers"),
        "Get": (MANAGER_IFACE, "GetContainer"),
        "Watch": None,
        **{m: (CONTAINER_IFACE, m) for m in (
            "Init", "Start", "Stop", "Kill", "Pause", "Unpause", "Mount", "Unmount",
            "Export", "Wait", "Remove", "Inspect")},
    },
    IMAGE: {
        "Import": (MANAGER_IFACE, "ImportImage"),
        "List": (MANAGER_IFACE, "ListImages"),
        "Get": (MANAGER_IFACE, "GetImage"),
        "Remove": (IMAGE_IFACE, "Remove"),
        "Watch": None,
    },
    SERVICE: {"GetInfo": None, "GetInterfaceDescription": None},
}


class UnknownMethod(LookupError):
    pass


def varlink_action(interface: str, method: str) -> str | None:
    """The polkit action guarding a Varlink method; None for an open one."""
    try:
        counterpart = DBUS_METHOD[interface][method]
    except KeyError:
        raise UnknownMethod(f"{interface}.{method} has no polkit action and is not open; "
                            "add it to pyctrd/varlink/authz.py") from None
    return None if counterpart is None else action_for(*counterpart)


def verb(interface: str, method: str) -> str:
    counterpart = DBUS_METHOD[interface][method]
    return counterpart[1] if counterpart else method


def details_for(runtime: Engine, interface: str, method: str,
                params: dict[str, Any]) -> dict[str, str]:
    """What polkit rules may look at, as on D-Bus: the container or image and the verb.
    ``params`` are the call's raw JSON parameters (not yet checked)."""
    details = {"verb": verb(interface, method)}
    name = params.get("name")
    if interface == CONTAINER and method == "Create":
        details["image"] = str(params.get("image", ""))
        options = params.get("options")
        if isinstance(options, dict) and isinstance(options.get("name"), str):
            details["container_name"] = options["name"]
    elif interface == CONTAINER and isinstance(name, str):
        with contextlib.suppress(PyctrdError):
            container = runtime.lookup_container(name)
            details.update(container_id=container.id, container_name=container.name)
    elif interface == IMAGE and method == "Remove" and isinstance(params.get("reference"), str):
        with contextlib.suppress(PyctrdError):
            image = runtime.lookup_image(params["reference"])
            details.update(image_id=image.id, image_reference=image.reference)
    return details


class Authorizer:
    """polkit checks for a system daemon's socket (a session daemon has none)."""

    def __init__(self, polkit: PolkitClient) -> None:
        self._polkit = polkit

    async def authorize(self, peer: Peer, action: str, details: dict[str, str],
                        errors: ErrorSet) -> None:
        if peer.uid == 0:
            return
        what = details.get("verb", "this call")
        if peer.start_time == 0:
            raise errors.make("AccessDenied", f"{what} is not allowed: the calling process "
                              "could not be identified", action=action)
        subject = process_subject(peer.pid, peer.start_time, peer.uid)
        decision = await self._polkit.check(subject, action, details, interactive=False)
        if decision.verdict is Verdict.ALLOWED:
            return
        if decision.verdict is Verdict.CHALLENGE:
            raise errors.make("InteractiveAuthorizationRequired",
                              f"{what} needs authentication (polkit action {action}), which "
                              "Varlink cannot ask for; authenticate through D-Bus (pyctr) "
                              "or get a polkit rule that allows it", action=action)
        raise errors.make("AccessDenied", f"{what} is not allowed: {decision.reason} "
                          f"(polkit action {action})", action=action)
