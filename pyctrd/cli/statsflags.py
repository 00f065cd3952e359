"""pyctr stats's flags (podman's), apart from its code so the parser loads no D-Bus."""

from __future__ import annotations

import argparse
from typing import Any


def add_stats_verb(sub: Any) -> None:
    p = sub.add_parser("stats", help="show containers' resource use (CPU, memory, I/O)")
    add_stats_flags(p)


def add_stats_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true",
                   help="every container (default: the running ones)")
    p.add_argument("-l", "--latest", action="store_true", help="the newest container")
    p.add_argument("--no-stream", action="store_true",
                   help="print one reading and exit (CPU %% since the container started)")
    p.add_argument("--no-reset", action="store_true",
                   help="do not clear the terminal before each reading")
    p.add_argument("--no-trunc", action="store_true", help="full container IDs")
    p.add_argument("-n", "--noheading", action="store_true", help="no header row")
    p.add_argument("--format", default="", metavar="FORMAT",
                   help="json, or a Go template such as '{{.Name}} {{.CPUPerc}}'")
    p.add_argument("-i", "--interval", type=int, default=5, metavar="SECONDS",
                   help="seconds between readings when streaming (default 5)")
    p.add_argument("containers", nargs="*", metavar="CONTAINER",
                   help="names, IDs or unique ID prefixes (default: every running one)")
    p.set_defaults(handler="stats:cmd_stats")
