"""pyctrd.oci.runtime: the runtime's stderr turned into one human line."""

import json

import pytest

from pyctrd.oci.runtime import _is_missing, _last_error

LOGFMT = (
    'time="2024-05-01T10:00:00Z" level=error msg="container_linux.go:380: starting '
    'container process caused: exec: \\"/nope\\": stat /nope: no such file or directory"'
)
WANTED = ('container_linux.go:380: starting container process caused: exec: "/nope": '
          "stat /nope: no such file or directory")


def test_logfmt_line():
    assert _last_error(LOGFMT.encode()) == WANTED


def test_logfmt_last_line_wins():
    stderr = ('time="x" level=warning msg="first"\n' + LOGFMT + "\n\n").encode()
    assert _last_error(stderr) == WANTED


def test_logfmt_with_a_field_after_msg():
    # logrus adds fields after msg, e.g. WithError(err): error="..."
    line = 'time="x" level=error msg="cannot start" error="exit status 1"'
    assert _last_error(line.encode()) == "cannot start"


def test_json_line():
    line = json.dumps({"level": "error", "msg": 'exec: "/nope": no such file',
                       "time": "2024-05-01T10:00:00Z"})
    assert _last_error(line.encode()) == 'exec: "/nope": no such file'


def test_json_without_msg_gives_the_line():
    line = '{"level": "error"}'
    assert _last_error(line.encode()) == line


def test_brace_but_not_json():
    assert _last_error(b"{not json") == "{not json"


def test_plain_line():
    stderr = b"warning\ncontainer \"abc\" does not exist\n"
    assert _last_error(stderr) == 'container "abc" does not exist'


@pytest.mark.parametrize("stderr", [b"", b"\n\n", b"   \n\t\n"])
def test_empty(stderr):
    assert _last_error(stderr) == "no error output"


def test_invalid_utf8():
    assert _last_error(b"bad \xff byte") == "bad \ufffd byte"


@pytest.mark.parametrize(("message", "missing"), [
    ("runc state failed: container \"x\" does not exist", True),
    ("crun state failed: container `x` not found", True),
    ("runc kill failed: permission denied", False),
])
def test_is_missing(message, missing):
    assert _is_missing(message) is missing
