"""The polkit adapter: one CheckAuthorization over D-Bus, its answer as a Decision.

The only module of pyctrd.ops that speaks D-Bus: a system daemon's Varlink
front end asks polkit through it too (over the daemon's system-bus
connection). Fails closed: polkit missing, slow or answering with an error
means "no", with a message that says why, so a denied caller knows what to fix.
"""

import asyncio
import logging

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from pyctrd.ops.authority import Decision, Subject, Verdict
from pyctrd.ops.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)
# A failing polkit fails every check: one line per kind of failure per 10 s.
_log = RateLimitedLog(log)

AUTHORITY_NAME = "org.freedesktop.PolicyKit1"
AUTHORITY_PATH = "/org/freedesktop/PolicyKit1/Authority"
AUTHORITY_IFACE = "org.freedesktop.PolicyKit1.Authority"
ALLOW_USER_INTERACTION = 0x1
# Long enough for a person to type a password in an authentication dialog.
INTERACTIVE_TIMEOUT = 300.0
QUICK_TIMEOUT = 25.0


def _subject(subject: Subject) -> tuple[str, dict[str, Variant]]:
    kind, fields = subject
    return (kind, {key: Variant(sig, value) for key, (sig, value) in fields.items()})


class PolkitClient:
    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus

    async def check(self, subject: Subject, action: str, details: dict[str, str],
                    interactive: bool) -> Decision:
        call = Message(
            destination=AUTHORITY_NAME, path=AUTHORITY_PATH, interface=AUTHORITY_IFACE,
            member="CheckAuthorization", signature="(sa{sv})sa{ss}us",
            body=[_subject(subject), action, details,
                  ALLOW_USER_INTERACTION if interactive else 0, ""],
        )
        timeout = INTERACTIVE_TIMEOUT if interactive else QUICK_TIMEOUT
        try:
            reply = await _call(self._bus, call, timeout)
        except Exception as err:  # no polkit, lost bus, timeout: all mean "no"
            _log(logging.WARNING, ("unreachable", type(err).__name__),
                 "polkit could not be asked about %s: %s", action, err)
            return Decision(Verdict.DENIED, f"polkit could not be asked ({err})")
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body else ""
            _log(logging.WARNING, ("error", reply.error_name),
                 "polkit refused to check %s: %s %s", action, reply.error_name, text)
            return Decision(Verdict.DENIED, f"polkit answered {reply.error_name}: {text}")
        is_authorized, is_challenge, _details = reply.body[0]
        if is_authorized:
            return Decision(Verdict.ALLOWED)
        if is_challenge:
            return Decision(Verdict.CHALLENGE, "authentication is required")
        return Decision(Verdict.DENIED, "not authorized by polkit")


async def _call(bus: MessageBus, message: Message, timeout: float) -> Message:
    reply = await asyncio.wait_for(bus.call(message), timeout)
    assert reply is not None  # a method call always has a reply
    return reply
