"""The bus's CallGuard: order of one sender's calls, refusals, what polkit is asked."""

import asyncio
import os
from types import SimpleNamespace
from typing import Any

import pytest
from dbus_fast import Message, MessageFlag, MessageType, Variant

from pyctrd.bus.authz import CallGuard, operation_of
from pyctrd.bus.container import ContainerObject
from pyctrd.bus.manager import ManagerObject
from pyctrd.bus.service import check_operations
from pyctrd.core.container import Container, ContainerStatus
from pyctrd.core.image import Image
from pyctrd.errors import NoSuchImage
from pyctrd.ops.authority import Authority, Decision, Verdict
from pyctrd.ops.operations import CONTAINER_OPS, MANAGE, MANAGER_OPS, Check, Operations

ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
INTERACTIVE = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"


class UidBus:
    """Answers GetConnectionUnixUser with ``uid``, or with an error when None."""

    def __init__(self, uid: int | None = 1000) -> None:
        self.uid = uid
        self.asked = 0

    async def call(self, msg: Message) -> Message:
        self.asked += 1
        if self.uid is None:
            return Message.new_error(msg, "org.freedesktop.DBus.Error.NameHasNoOwner", "gone")
        return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1,
                       signature="u", body=[self.uid])


class Polkit:
    """Answers ``verdict``; the first check only after the second (fault injection)."""

    def __init__(self, verdict: Verdict = Verdict.ALLOWED) -> None:
        self.verdict = verdict
        self.checks: list[tuple[Any, ...]] = []

    async def check(self, subject, action, details, interactive) -> Decision:
        self.checks.append((subject, action, details, interactive))
        await asyncio.sleep(0.05 if len(self.checks) == 1 else 0)
        return Decision(self.verdict, "not authorized by polkit")


class Obj:
    def call_check(self, operation, body):
        return Check((operation.action,), {"verb": operation.verb, "container_id": "c" * 64})


def call(member: str, flags: MessageFlag = MessageFlag.NONE, **extra: Any) -> Message:
    return Message(destination="org.pyctrd1", path="/org/pyctrd1/container/x",
                   interface="org.pyctrd1.Container", member=member, sender=":1.5",
                   serial=1, flags=flags, **extra)


async def run_guarded(guard: CallGuard, *msgs: Message) -> tuple[list[str], list[Message]]:
    ran: list[str] = []
    replies: list[Message] = []
    for msg in msgs:
        guarded = guard.guard(lambda m, reply: ran.append(m.member), Obj(),
                              CONTAINER_OPS[msg.member])
        guarded(msg, replies.append)
    await asyncio.sleep(0.2)
    return ran, replies


async def test_calls_of_one_sender_keep_their_order():
    guard = CallGuard(UidBus(), Authority(Polkit()))  # type: ignore[arg-type]
    ran, replies = await run_guarded(guard, call("Start"), call("Stop", signature="u",
                                                                  body=[0]))
    assert ran == ["Start", "Stop"]
    assert replies == []


async def test_what_polkit_is_asked_and_the_uid_is_cached():
    bus = UidBus()
    polkit = Polkit()
    guard = CallGuard(bus, Authority(polkit))  # type: ignore[arg-type]
    await run_guarded(guard, call("Start", MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION),
                      call("Pause"))
    assert bus.asked == 1
    assert polkit.checks == [
        (("system-bus-name", {"name": ("s", ":1.5")}), MANAGE,
         {"verb": "Start", "container_id": "c" * 64}, True),
        (("system-bus-name", {"name": ("s", ":1.5")}), MANAGE,
         {"verb": "Pause", "container_id": "c" * 64}, False),
    ]


async def test_root_passes_without_polkit():
    polkit = Polkit(Verdict.DENIED)
    guard = CallGuard(UidBus(0), Authority(polkit))  # type: ignore[arg-type]
    ran, replies = await run_guarded(guard, call("Start"))
    assert ran == ["Start"] and replies == [] and polkit.checks == []


async def test_refused_call_is_answered_from_the_catalogue_and_its_fds_closed():
    guard = CallGuard(UidBus(), Authority(Polkit(Verdict.DENIED)))  # type: ignore[arg-type]
    r, w = os.pipe()
    os.close(w)
    msg = call("Export", signature="h", body=[0], unix_fds=[r])
    ran, (reply,) = await run_guarded(guard, msg)
    assert ran == []
    assert reply.message_type is MessageType.ERROR
    assert reply.error_name == ACCESS_DENIED
    assert "org.pyctrd1.container.mount" in reply.body[0]
    with pytest.raises(OSError):
        os.fstat(r)


async def test_challenge_without_interaction():
    guard = CallGuard(UidBus(), Authority(Polkit(Verdict.CHALLENGE)))  # type: ignore[arg-type]
    _ran, (reply,) = await run_guarded(guard, call("Start"))
    assert reply.error_name == INTERACTIVE


async def test_unidentified_caller_is_refused():
    polkit = Polkit()
    guard = CallGuard(UidBus(None), Authority(polkit))  # type: ignore[arg-type]
    ran, (reply,) = await run_guarded(guard, call("Start"))
    assert ran == [] and polkit.checks == []
    assert reply.error_name == ACCESS_DENIED
    assert "could not be identified" in reply.body[0]


async def test_no_reply_expected_gets_none():
    guard = CallGuard(UidBus(), Authority(Polkit(Verdict.DENIED)))  # type: ignore[arg-type]
    ran, replies = await run_guarded(guard, call("Start", MessageFlag.NO_REPLY_EXPECTED))
    assert ran == [] and replies == []


def test_every_operation_has_its_table():
    assert operation_of("org.pyctrd1.Manager", "ListImages").action is None
    with pytest.raises(LookupError, match="Frobnicate"):
        operation_of("org.pyctrd1.Container", "Frobnicate")


def test_every_exported_method_is_an_operation():
    check_operations()  # what BusService.start does before exporting anything


class Engine:
    image = Image(id="i" * 64, reference="busybox", digest="", size=1, created=0,
                  layers=[], entrypoint=[], cmd=[], env=[], workdir="/", user="")

    def lookup_image(self, given: str) -> Image:
        if given == "busybox":
            return self.image
        raise NoSuchImage(given)


def manager_details(member: str, body: list[Any]) -> dict[str, str]:
    manager = ManagerObject(Operations(Engine()))  # type: ignore[arg-type]
    return manager.call_check(MANAGER_OPS[member], body).details


def test_create_details_name_the_image_and_the_container():
    assert manager_details("CreateContainer", [
        "busybox", ["true"], {"name": Variant("s", "web")}]) == {
        "verb": "CreateContainer", "image": "busybox", "container_name": "web"}


def manager_actions(member: str, body: list[Any]) -> tuple[str, ...]:
    manager = ManagerObject(Operations(Engine()))  # type: ignore[arg-type]
    return manager.call_check(MANAGER_OPS[member], body).actions


def test_create_reaching_the_host_also_needs_create_privileged():
    plain = manager_actions("CreateContainer", ["busybox", ["true"], {}])
    assert plain == ("org.pyctrd1.container.create",)
    for option in ({"network": Variant("s", "host")},
                   {"mounts": Variant("a(sss)", [["/", "/host", ""]])}):
        assert manager_actions("CreateContainer", ["busybox", ["true"], option]) == (
            "org.pyctrd1.container.create", "org.pyctrd1.container.create-privileged")


def test_create_details_with_options_that_do_not_decode():
    assert manager_details("CreateContainer", [
        "busybox", [], {"name": Variant("u", 5), "bogus": Variant("s", "")}]) == {
        "verb": "CreateContainer", "image": "busybox"}


def test_remove_image_details_name_the_resolved_image():
    assert manager_details("RemoveImage", ["busybox", False]) == {
        "verb": "RemoveImage", "image_id": "i" * 64, "image_reference": "busybox"}
    # nothing resolved: the operation says NoSuchImage once the caller is allowed
    assert manager_details("RemoveImage", ["nosuch", False]) == {"verb": "RemoveImage"}
    assert manager_details("ImportImage", [0, "x"]) == {"verb": "ImportImage"}


def test_object_details():
    container = Container(SimpleNamespace(id="c" * 64, name="web"),  # type: ignore[arg-type]
                          ContainerStatus(), None)  # type: ignore[arg-type]
    obj = ContainerObject(container, None)  # type: ignore[arg-type]
    assert obj.call_check(CONTAINER_OPS["Kill"], ["SIGTERM"]).details == {
        "verb": "Kill", "container_id": "c" * 64, "container_name": "web"}
