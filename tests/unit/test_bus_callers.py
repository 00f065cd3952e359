"""Callers: the uid behind a bus name, forgotten with the name; departures announced."""

from dbus_fast import Message, MessageType

from pyctrd.bus.callers import Callers, connection_key, current_call, left_meanwhile, stream_owner
from pyctrd.ops.streams import StreamOwner


class UidBus:
    def __init__(self) -> None:
        self.asked = 0

    async def call(self, msg: Message) -> Message:
        self.asked += 1
        return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1,
                       signature="u", body=[1000])


def name_owner_changed(name: str, new: str) -> Message:
    return Message.new_signal("/org/freedesktop/DBus", "org.freedesktop.DBus",
                              "NameOwnerChanged", "sss", [name, name, new])


async def test_a_departed_caller_is_forgotten_and_announced():
    bus = UidBus()
    callers = Callers(bus)
    gone: list[str] = []
    callers.on_gone(gone.append)
    assert await callers.uid(":1.5") == 1000 and await callers.uid(":1.5") == 1000
    assert bus.asked == 1
    for msg in (name_owner_changed(":1.5", ""), name_owner_changed("org.x", ""),
                name_owner_changed(":1.6", ":1.6")):
        msg.sender = "org.freedesktop.DBus"
        callers._on_message(msg)
    spoofed = name_owner_changed(":1.7", "")
    spoofed.sender = ":1.9"  # only the bus itself says who left
    callers._on_message(spoofed)
    assert gone == [":1.5"] and callers.is_gone(":1.5") and not callers.is_gone(":1.7")
    assert await callers.uid(":1.5") == 1000 and bus.asked == 2  # asked again, not kept


async def test_the_stream_owner_is_the_caller_of_the_current_call():
    callers = Callers(UidBus())
    assert await stream_owner("OpenLog") is None  # outside a bus call: no owner
    call = Message(destination="org.pyctrd1", path="/", member="OpenLog", sender=":1.5",
                   serial=3)
    token = current_call.set((call, callers))
    try:
        owner = await stream_owner("OpenLog")
        assert owner == StreamOwner(1000, connection_key(":1.5"))
        assert not left_meanwhile(owner)
        callers.gone(":1.5")
        assert left_meanwhile(owner)
    finally:
        current_call.reset(token)
