"""podman's detach-keys syntax, parsed once for the daemon and pyctr alike,
so that the two never disagree on what detaches."""

from pyctrd.errors import InvalidArgument

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"

# ctrl-<char> → its control code, as in podman (and the terminal).
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str) -> bytes:
    """podman's syntax: comma-separated keys, each "ctrl-<c>" or one character.

    "" means the default (ctrl-p,ctrl-q). InvalidArgument for anything else.
    """
    if spec == "":
        spec = DEFAULT_DETACH_KEYS
    keys = bytearray()
    for key in spec.split(","):
        if len(key) == 1 and key.isascii():
            keys.append(ord(key))
        elif len(key) == 6 and key[:5].lower() == "ctrl-" and key[5].isascii():
            char = key[5].lower()
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_SPECIALS:
                keys.append(_CTRL_SPECIALS[char])
            else:
                raise _bad_keys(spec, key)
        else:
            raise _bad_keys(spec, key)
    return bytes(keys)


def _bad_keys(spec: str, key: str) -> InvalidArgument:
    return InvalidArgument(
        f"invalid detach keys {spec!r}: {key!r} is neither one character nor ctrl-<c> "
        "(c one of a-z @ [ \\ ] ^ _); give a comma-separated list such as 'ctrl-p,ctrl-q'")
