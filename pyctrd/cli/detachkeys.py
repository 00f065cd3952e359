"""podman's detach-keys syntax, to tell a detach from an exit when an attach ends.

The daemon does the detaching; the client only needs to know whether the
last bytes it sent were the sequence.
"""

from __future__ import annotations

from pyctrd.cli.errors import CliError
from pyctrd.detachkeys import DEFAULT_DETACH_KEYS, parse_detach_keys
from pyctrd.errors import InvalidArgument

DEFAULT = DEFAULT_DETACH_KEYS


def parse(spec: str) -> bytes:
    """"ctrl-p,ctrl-q" → b"\\x10\\x11"; "" is the default. The daemon's own parser,
    so that pyctr and pyctrd never disagree on what detaches."""
    try:
        return parse_detach_keys(spec)
    except InvalidArgument as err:
        raise CliError(str(err)) from None


class SentTail:
    """The last bytes sent to the container, to see whether they detached it."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.tail = b""

    def add(self, data: bytes) -> None:
        self.tail = (self.tail + data)[-len(self.keys):]

    @property
    def detached(self) -> bool:
        return bool(self.keys) and self.tail == self.keys
