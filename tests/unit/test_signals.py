"""pyctrd.core.unixsignals.parse_signal."""

import signal

import pytest

from pyctrd.core.unixsignals import parse_signal
from pyctrd.errors import InvalidArgument


@pytest.mark.parametrize(("value", "expected"), [
    ("SIGTERM", 15),
    ("TERM", 15),
    ("sigterm", 15),
    ("term", 15),
    ("SigHup", 1),
    (" HUP ", 1),
    ("SIGKILL", 9),
    ("KILL", 9),
    ("9", 9),
    (9, 9),
    ("1", 1),
    (1, 1),
    ("SIGUSR1", int(signal.SIGUSR1)),
    ("usr2", int(signal.SIGUSR2)),
    ("SIGRTMIN", int(signal.SIGRTMIN)),
    (int(signal.SIGRTMAX), int(signal.SIGRTMAX)),
    (str(int(signal.SIGRTMAX)), int(signal.SIGRTMAX)),
])
def test_valid(value, expected):
    result = parse_signal(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("value", [
    0, "0", 65, "65", -1, "-9", "SIGBOGUS", "BOGUS", "", "SIG", True, False, "9.0",
    10**30, "SIGTERM SIGKILL",
])
def test_invalid(value):
    with pytest.raises(InvalidArgument) as info:
        parse_signal(value)
    assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_unicode_digits_are_invalid_argument_not_value_error():
    # str.isdigit() is true for superscripts that int() rejects; a D-Bus caller
    # (Kill, stop_signal) can send any string, so this must stay InvalidArgument.
    with pytest.raises(InvalidArgument):
        parse_signal("\u00b2")  # "²"
