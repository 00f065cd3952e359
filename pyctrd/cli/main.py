"""pyctr: pyctrd's podman-like command-line client; it speaks D-Bus, and
Varlink for ps and for run without -i/-t (no asyncio, no dbus-fast), falling
back to D-Bus before anything was done.

main() is the one place errors turn into an exit status: one line on stderr,
never a traceback. Imports are lazy: a verb loads what it uses (asyncio and
dbus-fast alone took half of `pyctr ps`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pyctrd.cli.commands import print_error
from pyctrd.cli.errors import EXIT_ENGINE, CliError
from pyctrd.cli.parser import build_parser

if TYPE_CHECKING:
    from pyctrd.cli.bus import Daemon
    from pyctrd.cli.varlinkclient import VarlinkClient

Handler = Callable[["Daemon", argparse.Namespace], Awaitable[int]]
VarlinkHandler = Callable[["VarlinkClient", argparse.Namespace], int]


def load_handler(spec: str) -> Any:
    """"module:function" in pyctrd.cli.commands, loaded only for the verb that runs."""
    module, function = spec.split(":")
    return getattr(importlib.import_module(f"pyctrd.cli.commands.{module}"), function)


def run_over_varlink(args: argparse.Namespace) -> int | None:
    """The verb's status, run over the daemon's Varlink socket; None when the verb
    has no Varlink handler or the socket cannot serve it (then D-Bus does)."""
    spec = getattr(args, "varlink_handler", None)
    if spec is None:
        return None
    from pyctrd.cli.varlinkclient import VarlinkClient, VarlinkUnavailable, socket_path
    path = socket_path(args.varlink, args.address, args.user_bus)
    if path is None:
        return None
    handler: VarlinkHandler = load_handler(spec)
    try:
        client = VarlinkClient.connect(path)
    except VarlinkUnavailable:
        return None
    try:
        return int(handler(client, args))
    except VarlinkUnavailable:
        return None
    finally:
        client.close()


async def run(args: argparse.Namespace) -> int:
    from pyctrd.cli.bus import Daemon
    handler: Handler = load_handler(args.handler)
    daemon = await Daemon.connect(args.address, args.user_bus)
    try:
        return int(await handler(daemon, args))
    finally:
        daemon.close()


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    # argparse exits 2 on a usage error; podman uses 125 for its own errors
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:
        sys.exit(EXIT_ENGINE if done.code not in (0, None) else 0)
    if getattr(args, "noout", False):  # podman's global --noout: nothing on stdout
        import os
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    try:
        status = run_over_varlink(args)
        if status is None:
            import asyncio
            status = asyncio.run(run(args))
    except CliError as err:
        print_error(err.message)
        status = err.status
    except KeyboardInterrupt:
        status = 130
    except BrokenPipeError:
        status = 0  # our reader (| head) has gone; nothing to say to it
    except Exception as err:  # no traceback for the user, but say what broke
        print_error(f"{type(err).__name__}: {err}")
        status = EXIT_ENGINE
    _flush_quietly()
    sys.exit(status)


def _flush_quietly() -> None:
    """Flush stdout now, so a closed pipe cannot raise at interpreter exit."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        import os
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
