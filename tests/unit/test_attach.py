"""pyctrd.oci.attach: detach keys (podman's syntax) and finding them in input."""

import pytest

from pyctrd.detachkeys import parse_detach_keys
from pyctrd.errors import InvalidArgument
from pyctrd.oci.attach import DetachMatcher


@pytest.mark.parametrize(("spec", "keys"), [
    ("", b"\x10\x11"),  # the default, ctrl-p,ctrl-q
    ("ctrl-p,ctrl-q", b"\x10\x11"),
    ("CTRL-A", b"\x01"),
    ("ctrl-Z", b"\x1a"),
    ("ctrl-@", b"\x00"),
    ("ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x1b\x1c\x1d\x1e\x1f"),
    ("a", b"a"),
    ("x,y,ctrl-c", b"xy\x03"),
    (",", None),
])
def test_parse(spec, keys):
    if keys is None:
        with pytest.raises(InvalidArgument):
            parse_detach_keys(spec)
    else:
        assert parse_detach_keys(spec) == keys


@pytest.mark.parametrize("spec", [
    "ctrl-", "ctrl-1", "ctrl-ab", "ctl-a", "ab", "a,,b", "a,", "é", "ctrl-é", "ctrl-p ,ctrl-q",
    "shift-a",
])
def test_invalid(spec):
    with pytest.raises(InvalidArgument, match="detach keys"):
        parse_detach_keys(spec)


def test_detach_in_one_read():
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"ls\n\x10\x11after") == (b"ls\n", True)


def test_detach_across_reads():
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"ab\x10") == (b"ab", False)
    assert m.feed(b"\x11") == (b"", True)


def test_a_started_sequence_that_breaks_passes_everything_on():
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"\x10") == (b"", False)
    assert m.feed(b"x") == (b"\x10x", False)
    assert m.feed(b"\x10\x10\x11") == (b"\x10", True)


def test_single_key():
    m = DetachMatcher(b"q")
    assert m.feed(b"abc") == (b"abc", False)
    assert m.feed(b"zq") == (b"z", True)


def test_nothing_detaches_without_the_keys():
    m = DetachMatcher(b"\x10\x11")
    data = bytes(range(256)).replace(b"\x10", b"")
    assert m.feed(data) == (data, False)
