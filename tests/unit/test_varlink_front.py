"""pyctrd.varlink as a thin front end: its structs, errors, operations and details
come from pyctrd.ops, without a daemon."""

import asyncio
import dataclasses
import json
import logging
import os
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from asyncvarlink import varlinksignature

from pyctrd.core.container import Container
from pyctrd.core.image import Image
from pyctrd.core.recovering import RecoveryGate
from pyctrd.errors import (
    AccessDenied,
    InteractiveAuthorizationRequired,
    InvalidState,
    NoSuchContainer,
    PyctrdError,
    RuntimeFailed,
)
from pyctrd.ops.authority import Authority, Decision, Verdict
from pyctrd.ops.errors import BY_VARLINK_NAME, CATALOGUE
from pyctrd.ops.operations import (
    CONTAINER_OPS,
    IMAGE_MANAGE,
    MANAGER_OPS,
    WATCH,
    Operation,
    details,
)
from pyctrd.ops.optionstructs import CreateOptions, PortMapping
from pyctrd.ops.properties import CONTAINER_PROPERTIES, IMAGE_PROPERTIES, Property
from pyctrd.varlink.authz import (
    CHALLENGE_HINT,
    METHODS,
    UnknownMethod,
    caller_of,
    check_for,
    create_options,
    operation_of,
)
from pyctrd.varlink.container import ContainerVarlink
from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.image import ImageVarlink
from pyctrd.varlink.peer import Peer, process_start_time
from pyctrd.varlink.types import ContainerInfo, ImageInfo
from pyctrd.varlink.watch import changed_fields, image_changed_fields

CONTAINER = "io.pyctrd.Container"
IMAGE = "io.pyctrd.Image"

# A property's D-Bus signature → the Python type of its Varlink field.
SIGNATURE_TYPES: dict[str, Any] = {"s": str, "b": bool, "i": int, "u": int, "t": int,
                                   "as": list[str], "a{ss}": dict[str, str],
                                   "a(sqqs)": list[PortMapping]}


# --------------------------------------------------------------------------
# structs


@pytest.mark.parametrize(("struct", "table"), [(ContainerInfo, CONTAINER_PROPERTIES),
                                                (ImageInfo, IMAGE_PROPERTIES)])
def test_info_structs_are_the_property_tables(struct: type,
                                              table: dict[str, Property]) -> None:
    fields = dataclasses.fields(struct)
    assert [f.name for f in fields] == [row.field for row in table.values()]
    hints = typing.get_type_hints(struct)
    assert [hints[f.name] for f in fields] == [SIGNATURE_TYPES[row.signature]
                                              for row in table.values()]


def test_create_takes_the_ops_option_struct() -> None:
    signature = varlinksignature(ContainerVarlink.Create)
    assert signature is not None
    assert "options: ?CreateOptions" in signature.parameter_type.as_varlink
    assert signature.parameter_type.typedefs["CreateOptions"] == \
        _varlink_struct(CreateOptions)


def _varlink_struct(struct: type) -> str:
    from asyncvarlink.conversion import VarlinkType

    return VarlinkType.from_type_annotation(struct).typedefs[struct.__name__]


def test_watch_names_the_changed_fields() -> None:
    assert changed_fields({"state": "exited", "exit_code": 7, "pid": 0, "conmon_pid": 0}) \
        == ["state", "pid", "exit_code"]
    assert changed_fields({"cleaned_up": True}) == []
    # the engine names a changed image property by its D-Bus name or its core field
    assert image_changed_fields(["reference"]) == ["reference", "references"]
    assert image_changed_fields(["size"]) == []  # const: never reported


# --------------------------------------------------------------------------
# methods → operations


def _methods(interface: type) -> set[str]:
    return {m for m in dir(interface) if varlinksignature(getattr(interface, m)) is not None}


def test_every_method_is_an_operation() -> None:
    for interface in (ContainerVarlink, ImageVarlink):
        assert _methods(interface) == set(METHODS[interface.name]), interface.name
    assert operation_of(CONTAINER, "Create") is MANAGER_OPS["CreateContainer"]
    assert operation_of(CONTAINER, "Start") is CONTAINER_OPS["Start"]
    assert operation_of(CONTAINER, "Remove") is CONTAINER_OPS["Remove"]
    assert operation_of(CONTAINER, "Get") is MANAGER_OPS["GetContainer"]
    assert operation_of(CONTAINER, "Watch") is WATCH
    assert operation_of(IMAGE, "Import") is MANAGER_OPS["ImportImage"]
    # D-Bus RemoveImage in action, details and behaviour (it untags a reference
    # of several), not Image.Remove
    assert operation_of(IMAGE, "Remove") is MANAGER_OPS["RemoveImage"]
    for interface, methods in METHODS.items():
        for method in ("List", "Get", "Watch", "GetInfo", "GetInterfaceDescription"):
            if method in methods:
                assert methods[method].action is None, (interface, method)
    assert operation_of(CONTAINER, "Wait").action is None
    with pytest.raises(UnknownMethod):
        operation_of(CONTAINER, "Frobnicate")


def test_a_method_in_no_table_stops_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyctrd.varlink import server
    from pyctrd.varlink.watch import Watchers

    monkeypatch.setitem(METHODS, CONTAINER, {k: v for k, v in METHODS[CONTAINER].items()
                                             if k != "Pause"})
    with pytest.raises(UnknownMethod, match="Pause"):
        server.make_registry(_FakeOperations(), Watchers())  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# who calls, and what polkit sees


def test_the_caller_is_a_unix_process_that_cannot_be_asked() -> None:
    caller = caller_of(Peer(pid=123, uid=1000, gid=1000, start_time=4567),
                       CONTAINER_OPS["Start"])
    assert caller.uid == 1000 and caller.interactive is False
    assert caller.subject == ("unix-process", {"pid": ("u", 123), "start-time": ("t", 4567),
                                               "uid": ("i", 1000)})
    assert caller.challenge_hint == CHALLENGE_HINT
    assert CHALLENGE_HINT.startswith("Varlink cannot ask for a password")


def test_a_caller_without_a_start_time_is_refused_unless_root() -> None:
    with pytest.raises(AccessDenied) as refused:
        caller_of(Peer(pid=123, uid=1000, gid=1000, start_time=0), CONTAINER_OPS["Start"])
    assert refused.value.action == "org.pyctrd1.container.manage"
    assert "Start" in str(refused.value) and "identified" in str(refused.value)
    assert caller_of(Peer(pid=123, uid=0, gid=0, start_time=0), CONTAINER_OPS["Start"]).uid == 0


class _FakeOperations:
    """Operations.target over one image and no containers."""

    version = "0"

    def __init__(self, image: Image | None = None) -> None:
        self.image = image

    def target(self, operation: Operation, given: str) -> Any:
        if self.image is not None and given in (self.image.reference, self.image.id):
            return self.image
        return None


BUSYBOX = Image(id="ab" * 32, reference="busybox:latest", digest="", size=1, created=1,
                layers=[], references=["busybox:latest", "busybox:1"])


def test_image_remove_sends_remove_images_details() -> None:
    ops: Any = _FakeOperations(BUSYBOX)
    remove = METHODS[IMAGE]["Remove"]
    assert remove.action == IMAGE_MANAGE
    sent = check_for(ops, remove, {"reference": "busybox:latest", "force": False}).details
    assert sent == {"verb": "RemoveImage", "image_id": BUSYBOX.id,
                    "image_reference": "busybox:latest"}
    # exactly what D-Bus RemoveImage sends for the same image
    assert sent == details(MANAGER_OPS["RemoveImage"], BUSYBOX)
    assert check_for(ops, remove, {"reference": "nosuch"}).details == {"verb": "RemoveImage"}
    assert check_for(ops, remove, {"reference": 42}).details == {"verb": "RemoveImage"}


def test_create_details_come_from_the_checked_options() -> None:
    ops: Any = _FakeOperations(BUSYBOX)
    create = METHODS[CONTAINER]["Create"]
    sent = check_for(ops, create, {"image": "busybox:latest", "command": [],
                                     "options": {"name": "web", "stop_timeout": 3}}).details
    assert sent == {"verb": "CreateContainer", "image": "busybox:latest",
                    "container_name": "web"}
    assert sent == details(MANAGER_OPS["CreateContainer"], BUSYBOX, "busybox:latest",
                           {"name": "web", "stop_timeout": 3})
    # invalid options name nothing: asyncvarlink or the operation refuses them later
    for bad in ({"name": 5}, {"colour": "red"}, {"name": "web", "cpu_quota": -1.0},
                {"name": "web", "stop_timeout": 1 << 40}):
        assert create_options(bad) is None, bad
        assert check_for(ops, create, {"image": "busybox", "options": bad}).details == {
            "verb": "CreateContainer", "image": "busybox"}
    assert create_options(None) == {}
    assert create_options({"mounts": [{"source": "/a", "destination": "/b",
                                       "options": "ro"}]}) == {"mounts": [("/a", "/b", "ro")]}


# --------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("interface", [ContainerVarlink, ImageVarlink])
def test_errors_are_the_catalogues(interface: Any) -> None:
    errors: ErrorSet = interface.error_set
    assert errors.interface == interface.name
    assert [e.name for e in interface.errors] == [
        f"{interface.name}.{k.varlink_name}" for k in CATALOGUE
        if k.varlink_name in errors.classes]
    for cls in interface.errors:
        kind = BY_VARLINK_NAME[cls.name.rsplit(".", 1)[1]]
        assert cls.__doc__ == kind.doc
        assert list(cls.paramtype.as_type.__annotations__) == ["message", *kind.params]
    described = interface.render_interface_description()
    assert "error AccessDenied (message: string, action: string)" in described


def test_a_core_error_keeps_its_catalogued_name_and_parameters() -> None:
    errors = ContainerVarlink.error_set
    reply = errors.of(NoSuchContainer("no container web"), {"name": "web"})
    assert reply.tojson() == {"error": f"{CONTAINER}.NoSuchContainer", "parameters": {
        "message": "no container web", "name": "web"}}
    state = errors.of(InvalidState("it is running"), {"name": "web", "state": lambda: "running"})
    assert state.tojson()["parameters"] == {"message": "it is running", "state": "running"}


def test_the_authoritys_refusals_carry_their_action() -> None:
    for interface in (ContainerVarlink, ImageVarlink):
        errors = interface.error_set
        with pytest.raises(Exception) as denied, errors.translated():
            raise AccessDenied("Start is not allowed", "org.pyctrd1.container.manage")
        assert denied.value.tojson() == {  # type: ignore[attr-defined]
            "error": f"{interface.name}.AccessDenied",
            "parameters": {"message": "Start is not allowed",
                           "action": "org.pyctrd1.container.manage"}}
        challenge = errors.of(InteractiveAuthorizationRequired("needs a password", "x.y"), {})
        assert challenge.tojson()["error"] == f"{interface.name}.InteractiveAuthorizationRequired"
        assert challenge.tojson()["parameters"]["action"] == "x.y"


def test_the_unexpected_is_failed_and_logged_without_a_traceback_on_the_wire(
        caplog: pytest.LogCaptureFixture) -> None:
    errors = ImageVarlink.error_set
    with caplog.at_level(logging.ERROR), pytest.raises(Exception) as failed, \
            errors.translated(reference="busybox"):
        raise KeyError("boom")
    wire = failed.value.tojson()  # type: ignore[attr-defined]
    assert wire["error"] == f"{IMAGE}.Failed"
    assert set(wire["parameters"]) == {"message"} and "Traceback" not in str(wire)
    assert "boom" in wire["parameters"]["message"]
    assert any(r.exc_info for r in caplog.records)  # the journal has the traceback
    # catalogued, but not declared on io.pyctrd.Image: Failed, with its message
    other = errors.of(NoSuchContainer("no container web"), {})
    assert other.tojson() == {"error": f"{IMAGE}.Failed",
                              "parameters": {"message": "no container web"}}
    # a PyctrdError subclass the catalogue does not list: its nearest base's name
    sub = type("SpecialRuntimeFailure", (RuntimeFailed,), {})
    assert errors.of(sub("runc said no"), {}).tojson()["error"] == f"{IMAGE}.RuntimeFailed"
    assert errors.of(PyctrdError("plain"), {}).tojson()["error"] == f"{IMAGE}.Failed"


# --------------------------------------------------------------------------
# the server in-process: a non-root peer, polkit stood in for


class _Checker:
    """A PolkitChecker that answers ``verdict`` and records what it was asked."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.asked: list[tuple[Any, str, dict[str, str], bool]] = []

    async def check(self, subject: Any, action: str, details: dict[str, str],
                    interactive: bool) -> Decision:
        self.asked.append((subject, action, details, interactive))
        return Decision(self.verdict, "not in the test's rules")


class _Container(Container):
    """A Container to look up and start, with nothing behind it."""

    id = "cd" * 32  # type: ignore[assignment]
    name = "web"  # type: ignore[assignment]

    def __init__(self) -> None:
        self.started = 0

    async def start(self) -> None:
        self.started += 1


class _ServedOperations(_FakeOperations):
    def __init__(self) -> None:
        super().__init__(BUSYBOX)
        self.container = _Container()
        self.engine = SimpleNamespace(listener=SimpleNamespace(add=lambda _: None,
                                                               remove=lambda _: None),
                                      recovering=RecoveryGate())

    def target(self, operation: Operation, given: str) -> Any:
        if given in ("web", self.container.id):
            return self.container
        return super().target(operation, given)

    def get_container(self, name: str) -> Any:
        if name not in ("web", self.container.id):
            raise NoSuchContainer(f"no container {name}")
        return self.container

    def list_containers(self) -> list[Any]:
        return []


async def _call(path: Path, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    """Send ``calls`` at once (pipelined) on one connection; their replies in order."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(b"".join(json.dumps(c).encode() + b"\0" for c in calls))
        await writer.drain()
        return [json.loads((await reader.readuntil(b"\0"))[:-1]) for _ in calls]
    finally:
        writer.close()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from pyctrd.varlink import server

    def start(verdict: Verdict, start_time: int | None = None) -> Any:
        known = process_start_time(os.getpid()) if start_time is None else start_time
        monkeypatch.setattr(server, "peer_of", lambda _sock: Peer(
            pid=os.getpid(), uid=1000, gid=1000, start_time=known))
        checker = _Checker(verdict)
        ops = _ServedOperations()
        vl = server.VarlinkServer(ops, tmp_path / "io.pyctrd",  # type: ignore[arg-type]
                                  Authority(checker))
        vl.start()
        return SimpleNamespace(server=vl, checker=checker, ops=ops, path=vl.path)

    made: list[Any] = []
    yield lambda *a: made.append(start(*a)) or made[-1]
    for s in made:
        s.server.close()


async def test_a_challenge_is_interactive_authorization_required(served: Any) -> None:
    s = served(Verdict.CHALLENGE)
    (reply,) = await _call(s.path, {"method": f"{CONTAINER}.Start",
                                    "parameters": {"name": "web"}})
    assert reply["error"] == f"{CONTAINER}.InteractiveAuthorizationRequired"
    assert reply["parameters"]["action"] == "org.pyctrd1.container.manage"
    assert reply["parameters"]["message"].endswith(CHALLENGE_HINT)
    ((subject, action, sent, interactive),) = s.checker.asked
    assert subject == ("unix-process", {"pid": ("u", os.getpid()),
                                        "start-time": ("t", process_start_time(os.getpid())),
                                        "uid": ("i", 1000)})
    assert not interactive and action == "org.pyctrd1.container.manage"
    assert sent == {"verb": "Start", "container_id": s.ops.container.id,
                    "container_name": "web"}
    assert s.ops.container.started == 0


async def test_allowed_runs_denied_does_not_in_call_order(served: Any) -> None:
    s = served(Verdict.ALLOWED)
    replies = await _call(
        s.path,
        {"method": f"{CONTAINER}.Start", "parameters": {"name": "web"}},
        {"method": f"{CONTAINER}.Start", "parameters": {"name": "nosuch"}},
        {"method": f"{CONTAINER}.List", "parameters": {}},
        {"method": f"{CONTAINER}.Start", "parameters": {"name": 5}})
    assert replies[0] == {}  # asyncvarlink leaves out empty parameters
    assert replies[1]["error"] == f"{CONTAINER}.NoSuchContainer"
    assert replies[1]["parameters"]["name"] == "nosuch"
    assert replies[2] == {"parameters": {"containers": []}}
    # a malformed call is refused by asyncvarlink once polkit has said yes
    assert replies[3] == {"error": "org.varlink.service.InvalidParameter",
                          "parameters": {"parameter": "name"}}
    assert s.ops.container.started == 1
    assert [a[2] for a in s.checker.asked] == [
        {"verb": "Start", "container_id": s.ops.container.id, "container_name": "web"},
        {"verb": "Start"}, {"verb": "Start"}]  # List is open: polkit is not asked

    s.checker.verdict = Verdict.DENIED
    (denied,) = await _call(s.path, {"method": f"{CONTAINER}.Start",
                                     "parameters": {"name": "web"}})
    assert denied["error"] == f"{CONTAINER}.AccessDenied"
    assert "not in the test's rules" in denied["parameters"]["message"]
    assert s.ops.container.started == 1


async def test_a_peer_without_a_start_time_is_refused_without_asking(served: Any) -> None:
    s = served(Verdict.ALLOWED, 0)
    (reply,) = await _call(s.path, {"method": f"{IMAGE}.Remove",
                                    "parameters": {"reference": "busybox:latest"}})
    assert reply["error"] == f"{IMAGE}.AccessDenied"
    assert reply["parameters"] == {
        "message": "RemoveImage is not allowed: the caller could not be identified",
        "action": "org.pyctrd1.image.manage"}
    assert s.checker.asked == []
    (info,) = await _call(s.path, {"method": "org.varlink.service.GetInfo", "parameters": {}})
    assert {CONTAINER, IMAGE, "io.pyctrd.Events", "org.varlink.service"} <= set(
        info["parameters"]["interfaces"])


def test_list_rows_ports_are_objects_named_as_port_mapping() -> None:
    from pyctrd.ops.properties import CONTAINER_PROPERTIES
    from pyctrd.varlink.types import row_of

    ports = CONTAINER_PROPERTIES["Ports"]
    assert ports.signature == "a(sqqs)"
    row = dataclasses.replace(ports, get=lambda _c: [["127.0.0.1", 8080, 80, "tcp"]])
    assert row_of(None, (row,)) == [[  # type: ignore[arg-type]
        {"host_ip": "127.0.0.1", "host_port": 8080, "container_port": 80, "protocol": "tcp"}]]
    assert [f.name for f in dataclasses.fields(PortMapping)] == [
        "host_ip", "host_port", "container_port", "protocol"]
