"""The options of PullImage and Image.Push (API.md), checked once for both wires."""

from typing import Any

from pyctrd.core.commit import CommitOptions
from pyctrd.errors import InvalidArgument
from pyctrd.registry.skopeo import TransferOptions, check_options

SCHEMA = {"tls_verify": ("b", bool), "credentials": ("s", str), "platform": ("s", str)}


def decode(options: dict[str, tuple[str, Any]]) -> TransferOptions:
    """(signature, value) per key → TransferOptions; InvalidArgument for anything else."""
    values: dict[str, Any] = {}
    for key, (signature, value) in options.items():
        if key not in SCHEMA:
            raise InvalidArgument(f"unknown option {key!r}; known: {', '.join(SCHEMA)}")
        wanted, kind = SCHEMA[key]
        if signature != wanted or not isinstance(value, kind):
            raise InvalidArgument(f"option {key!r} takes the type {wanted!r}")
        values[key] = value
    found = TransferOptions(**values)
    check_options(found)
    return found


COMMIT_SCHEMA = {"pause": ("b", bool), "message": ("s", str), "author": ("s", str),
                 "changes": ("as", list)}


def decode_commit(options: dict[str, tuple[str, Any]]) -> CommitOptions:
    """Container.Commit's options (API.md): pause, message, author, changes."""
    values: dict[str, Any] = {}
    for key, (signature, value) in options.items():
        if key not in COMMIT_SCHEMA:
            raise InvalidArgument(f"unknown option {key!r}; known: {', '.join(COMMIT_SCHEMA)}")
        wanted, kind = COMMIT_SCHEMA[key]
        if signature != wanted or not isinstance(value, kind):
            raise InvalidArgument(f"option {key!r} takes the type {wanted!r}")
        if key == "changes" and not (isinstance(value, list)
                                     and all(isinstance(c, str) for c in value)):
            raise InvalidArgument("option 'changes' takes a list of strings")
        values[key] = value
    return CommitOptions(**values)


def decode_plain(options: dict[str, Any]) -> TransferOptions:
    """From Varlink's typed record (None: not given)."""
    return decode({k: (SCHEMA[k][0] if k in SCHEMA else "?", v)
                   for k, v in options.items() if v is not None})
