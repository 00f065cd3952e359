"""pyctr's verbs, grouped by what they touch; each is ``async (daemon, args) -> status``."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable

from pyctrd.cli.errors import EXIT_ENGINE, CliError, about


def one_line(message: str) -> str:
    """A runtime's stderr may span lines; an error is one line."""
    return "; ".join(line.strip() for line in message.strip().splitlines() if line.strip())


def print_error(message: str) -> None:
    print(f"Error: {one_line(message)}", file=sys.stderr, flush=True)


async def for_each(names: Iterable[str], act: Callable[[str], Awaitable[None]]) -> int:
    """Run ``act`` on each name as podman does: go on after a failure, report each
    one on its own line, and fail (125) at the end if any did."""
    status = 0
    for name in names:
        try:
            await act(name)
        except CliError as err:
            print_error(about(name, err))
            status = EXIT_ENGINE
    return status
