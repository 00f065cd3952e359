"""One sender's guarded calls run in arrival order even if polkit answers out of order."""

import asyncio

from dbus_fast import Message, MessageType

from pyctrd.bus.authz import Authorizer
from pyctrd.bus.polkit import Decision, Verdict


class UidBus:
    """Answers GetConnectionUnixUser with a non-root uid."""

    async def call(self, msg: Message) -> Message:
        return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1,
                       signature="u", body=[1000])


class SlowFirstPolkit:
    """Fault injection: the first check is answered after the second."""

    def __init__(self) -> None:
        self.calls = 0

    async def check(self, subject, action, details, interactive) -> Decision:
        self.calls += 1
        await asyncio.sleep(0.05 if self.calls == 1 else 0)
        return Decision(Verdict.ALLOWED)


class Iface:
    name = "org.pyctrd1.Container"


def call(member: str) -> Message:
    return Message(destination="org.pyctrd1", path="/org/pyctrd1/container/x",
                   interface="org.pyctrd1.Container", member=member, sender=":1.5", serial=1)


async def test_calls_of_one_sender_keep_their_order():
    authorizer = Authorizer(UidBus(), SlowFirstPolkit())  # type: ignore[arg-type]
    ran: list[str] = []
    for member in ("Start", "Stop"):
        guarded = authorizer.guard(lambda msg, reply: ran.append(msg.member), Iface(),
                                   member, "org.pyctrd1.container.manage")
        guarded(call(member), None)
    await asyncio.sleep(0.2)
    assert ran == ["Start", "Stop"]
