"""Who may call what: root passes, everyone else is asked of polkit; fail closed.

One Authority serves both front ends, as systemd's bus-polkit.c serves
machined's D-Bus and Varlink methods. A front end only says who calls (a
Caller: uid, polkit subject, whether interaction is allowed); the action
and the details come from the operation and its resolved target
(pyctrd.ops.operations), so a rule sees the same thing whichever wire the
call came by. A daemon on a session bus has no Authority checks at all:
the bus or socket admits only its user.

polkit is a shared resource: dbus-daemon lets pyctrd's connection wait for
at most 128 replies (max_replies_per_connection on Debian's system bus), and
past that every check fails, so fail closed would refuse everyone. Checks
are therefore bounded (pyctrd.ops.checklimits): a few pending per uid (the
excess refused at once with LimitsExceeded, for that uid alone, whichever
connection or front end it calls from) and fewer in flight than the bus
allows, handed out round robin between uids.
"""

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from pyctrd.errors import AccessDenied, InteractiveAuthorizationRequired, LimitsExceeded
from pyctrd.ops.checklimits import CheckLimits
from pyctrd.ops.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

# A polkit subject as plain values: (kind, {key: (D-Bus signature, value)}).
Subject = tuple[str, dict[str, tuple[str, Any]]]


def bus_name_subject(unique_name: str) -> Subject:
    return ("system-bus-name", {"name": ("s", unique_name)})


def process_subject(pid: int, start_time: int, uid: int) -> Subject:
    return ("unix-process", {"pid": ("u", pid), "start-time": ("t", start_time),
                             "uid": ("i", uid)})


class Verdict(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    CHALLENGE = "challenge"  # allowed after authentication the caller did not permit


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""


class PolkitChecker(Protocol):
    """pyctrd.ops.polkit.PolkitClient, or a test's stand-in."""

    async def check(self, subject: Subject, action: str, details: dict[str, str],
                    interactive: bool) -> Decision: ...


@dataclass(frozen=True)
class Caller:
    uid: int
    subject: Subject
    interactive: bool = False  # the caller allows polkit to ask for a password
    # What to do when polkit wants authentication this caller cannot give.
    challenge_hint: str = "call again allowing interactive authorization"


class Authority:
    def __init__(self, polkit: PolkitChecker, limits: CheckLimits | None = None) -> None:
        self._polkit = polkit
        self.limits = limits if limits is not None else CheckLimits()
        self._log = RateLimitedLog(log)

    async def authorize_all(self, caller: Caller, actions: tuple[str, ...],
                            details: dict[str, str]) -> None:
        """``authorize`` for each action in turn: all must allow."""
        for action in actions:
            await self.authorize(caller, action, details)

    async def authorize(self, caller: Caller, action: str, details: dict[str, str]) -> None:
        """Return if ``caller`` may do ``action``; AccessDenied or
        InteractiveAuthorizationRequired if not."""
        if caller.uid == 0:
            return
        verb = details.get("verb", "this call")
        try:
            async with self.limits.slot(caller.uid):
                decision = await self._polkit.check(caller.subject, action, details,
                                                    caller.interactive)
        except LimitsExceeded as err:
            self._log(logging.WARNING, caller.uid, "refused %s for uid %d: %s", verb,
                      caller.uid, err)
            raise LimitsExceeded(f"{verb} refused: {err}") from None
        if decision.verdict is Verdict.ALLOWED:
            return
        if decision.verdict is Verdict.CHALLENGE and not caller.interactive:
            raise InteractiveAuthorizationRequired(
                f"{verb} needs authentication (polkit action {action}); "
                f"{caller.challenge_hint}", action)
        raise AccessDenied(f"{verb} is not allowed: {decision.reason} (polkit action "
                           f"{action})", action)


def unidentified(verb: str, action: str) -> AccessDenied:
    """The refusal for a caller whose identity could not be established."""
    return AccessDenied(f"{verb} is not allowed: the caller could not be identified", action)
