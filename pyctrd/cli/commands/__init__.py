"""pyctr's verbs, grouped by what they touch; each is ``async (daemon, args) -> status``."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pyctrd.cli.errors import EXIT_ENGINE, CliError, about


def one_line(message: str) -> str:
    """A runtime's stderr may span lines; an error is one line."""
    return "; ".join(line.strip() for line in message.strip().splitlines() if line.strip())


def print_error(message: str) -> None:
    print(f"Error: {one_line(message)}", file=sys.stderr, flush=True)


async def for_each(names: Iterable[str], act: Callable[[str], Awaitable[None]],
                   verb: str = "", ignore_missing: bool = False,
                   statuses: Callable[[CliError], int] | None = None) -> int:
    """Run ``act`` on each name as podman does: go on after a failure, report each
    one on its own line, and fail (125) at the end if any did. With
    ``ignore_missing`` (--ignore), a container that does not exist is no failure.
    ``statuses`` gives a failure's own exit status (rm, rmi: 1 for a missing one,
    2 for one in use); the worst one wins, 125 above all."""
    failed: list[int] = []
    for name in names:
        try:
            await act(name)
        except CliError as err:
            if ignore_missing and _is_missing(err):
                continue
            print_error(about(name, err, verb))
            failed.append(statuses(err) if statuses else EXIT_ENGINE)
    if not failed:
        return 0
    return EXIT_ENGINE if EXIT_ENGINE in failed else max(failed)


def removal_status(err: CliError) -> int:
    """podman rm's and rmi's exit statuses: 1 no such one, 2 running or in use."""
    from pyctrd.cli.errors import DaemonError
    from pyctrd.errors import InUse, InvalidState
    if _is_missing(err):
        return 1
    if isinstance(err, DaemonError) and err.is_a(InvalidState, InUse):
        return 2
    return EXIT_ENGINE


def _is_missing(err: CliError) -> bool:
    from pyctrd.cli.errors import DaemonError
    from pyctrd.errors import NoSuchContainer, NoSuchImage
    return isinstance(err, DaemonError) and err.is_a(NoSuchContainer, NoSuchImage)


def read_cidfiles(paths: Iterable[str]) -> list[str]:
    """The container IDs in --cidfile FILEs (podman writes one ID, no newline)."""
    ids = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                ids.append(f.read().strip())
        except OSError as err:
            raise CliError(f"reading CIDFile: {err.strerror}: {path}") from None
    return ids


def check_targets(args: Any, names: list[str]) -> None:
    """podman's rule: names, or --all/--latest/--cidfile, not both and not neither."""
    chosen = [flag for flag, on in (("--all", getattr(args, "all", False)),
                                    ("--latest", getattr(args, "latest", False)),
                                    ("--cidfile", bool(getattr(args, "cidfile", None))))
              if on]
    if names and chosen and chosen != ["--cidfile"]:
        raise CliError(f"{chosen[0]} and containers cannot be used together")
    if len(chosen) > 1 and "--cidfile" not in chosen:
        raise CliError(f"{chosen[0]} and {chosen[1]} cannot be used together")
    if not names and not chosen:
        raise CliError("you must provide at least one name or id")


async def targets(daemon: Any, args: Any, names: list[str],
                  which: Callable[[dict[str, Any]], bool] | None = None) -> list[str]:
    """The containers a verb acts on: the names given, the IDs in --cidfile files,
    every one (--all, those ``which`` accepts) or the newest (--latest)."""
    check_targets(args, names)
    found = list(names) + read_cidfiles(getattr(args, "cidfile", None) or [])
    if getattr(args, "all", False) or getattr(args, "latest", False):
        containers = await daemon.containers()  # oldest first
        if getattr(args, "latest", False):
            if not containers:
                raise CliError("no containers to choose with --latest")
            return [containers[-1]["Id"]]
        found += [c["Id"] for c in containers if which is None or which(c)]
    return found
