"""Every message pyctrd queues is measured against the bus's maximum size."""

import io
from collections import deque
from types import SimpleNamespace
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast._private.unmarshaller import Unmarshaller

from pyctrd.bus.connection import MAX_MESSAGE_SIZE, BackpressureWriter
from pyctrd.bus.managed import SIGNATURE, ManagedObjects, RawReply

LIMITS = "org.freedesktop.DBus.Error.LimitsExceeded"


def writer(limit: int) -> tuple[BackpressureWriter, Any]:
    bus = SimpleNamespace(_method_return_handlers={},
                          reply_member=lambda msg: "GetManagedObjects")
    w = BackpressureWriter.__new__(BackpressureWriter)
    w.messages = deque()
    w.negotiate_unix_fd = True
    w.bus = bus
    w.max_message_size = limit
    return w, bus


def parse(data: bytes) -> Message:
    unmarshaller = Unmarshaller(io.BytesIO(data))
    msg = unmarshaller.unmarshall()
    assert msg is not None
    return msg


def call() -> Message:
    return Message(destination="org.pyctrd1", path="/org/pyctrd1",
                   interface="org.freedesktop.DBus.ObjectManager",
                   member="GetManagedObjects", sender=":1.7", serial=41)


def test_the_limit_is_debians():
    assert MAX_MESSAGE_SIZE == 32 * 1024 * 1024


def test_a_reply_too_large_leaves_as_limits_exceeded_naming_a_smaller_call():
    w, _bus = writer(4096)
    reply = Message.new_method_return(call(), "s", ["x" * 5000])
    reply.serial = 9
    w.buffer_message(reply)
    (data, fds, _future), = w.messages
    assert len(data) < 4096 and fds is None
    sent = parse(data)
    assert sent.message_type is MessageType.ERROR and sent.error_name == LIMITS
    assert sent.reply_serial == 41 and sent.destination == ":1.7" and sent.serial == 9
    assert "ListContainers and ListImages" in sent.body[0]
    assert "Properties.GetAll" in sent.body[0]


def test_a_raw_get_managed_objects_reply_is_measured_too():
    w, _bus = writer(4096)
    body = ManagedObjects().body([(f"/o/{i}", lambda: {"i": {}}) for i in range(300)])
    reply = RawReply(call(), SIGNATURE, body)
    reply.serial = 3
    w.buffer_message(reply)  # type: ignore[arg-type]
    assert parse(w.messages[0][0]).error_name == LIMITS
    small = RawReply(call(), SIGNATURE, ManagedObjects().body([]))
    w.buffer_message(small)  # type: ignore[arg-type]
    assert parse(w.messages[1][0]).message_type is MessageType.METHOD_RETURN


def test_a_message_at_the_limit_is_sent_unchanged():
    w, _bus = writer(MAX_MESSAGE_SIZE)
    reply = Message.new_method_return(call(), "s", ["x" * 1000])
    reply.serial = 2
    w.buffer_message(reply)
    assert w.messages[0][0] == reply._marshall(True)


def test_a_signal_too_large_is_dropped(caplog):
    w, _bus = writer(4096)
    for _ in range(100):
        signal = Message.new_signal("/org/pyctrd1", "org.pyctrd1.Manager", "Big", "s",
                                    ["x" * 5000])
        signal.serial = 5
        w.buffer_message(signal)
    assert not w.messages
    assert len([r for r in caplog.records if "dropped the signal" in r.getMessage()]) == 1


def test_a_call_of_ours_too_large_fails_here():
    w, bus = writer(4096)
    msg = Message(destination="org.freedesktop.PolicyKit1", path="/",
                  interface="org.freedesktop.PolicyKit1.Authority", member="CheckAuthorization",
                  signature="s", body=["x" * 5000], serial=8)
    got: list[Any] = []
    bus._method_return_handlers[8] = lambda reply, err: got.append((reply, err))
    w.buffer_message(msg)
    assert not w.messages and got and got[0][0] is None
    assert "more than the bus allows" in str(got[0][1])
