"""pyctr healthcheck run: run a container's health check now, as podman does.

As podman: nothing is printed and the status is 0 when it is healthy; its
status ("unhealthy", or "starting" while failures do not count yet) is
printed and the exit status is 1 otherwise; 125 when pyctrd fails.
"""

from __future__ import annotations

import argparse

from pyctrd.cli.bus import Daemon
from pyctrd.cli.commands import print_error
from pyctrd.cli.errors import EXIT_ENGINE, CliError, about


async def cmd_healthcheck_run(daemon: Daemon, args: argparse.Namespace) -> int:
    try:
        ref = await daemon.container(args.container)
        (status,) = await daemon.container_call(ref, "RunHealthCheck")
    except CliError as err:
        print_error(about(args.container, err))
        return EXIT_ENGINE
    if status == "healthy":
        return 0
    print(status, flush=True)
    return 1
