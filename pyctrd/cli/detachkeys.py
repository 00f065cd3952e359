"""podman's detach-keys syntax, to tell a detach from an exit when an attach ends.

The daemon does the detaching; the client only needs to know whether the
last bytes it sent were the sequence.
"""

from __future__ import annotations

from pyctrd.cli.errors import CliError

DEFAULT = "ctrl-p,ctrl-q"
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse(spec: str) -> bytes:
    """"ctrl-p,ctrl-q" → b"\\x10\\x11"; "" is the default."""
    keys = bytearray()
    for key in (spec or DEFAULT).split(","):
        if len(key) == 1 and key.isascii():
            keys.append(ord(key))
        elif len(key) == 6 and key[:5].lower() == "ctrl-":
            char = key[5].lower()
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_SPECIALS:
                keys.append(_CTRL_SPECIALS[char])
            else:
                raise CliError(f"invalid detach key {key!r} in {spec!r}")
        else:
            raise CliError(f"invalid detach key {key!r} in {spec!r}: give one character "
                           "or ctrl-<c>, comma-separated (e.g. ctrl-p,ctrl-q)")
    return bytes(keys)


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
