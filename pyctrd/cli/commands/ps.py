"""ps: which containers, which of their properties to fetch, and how to print them.

Over Varlink (ListRows) when the daemon's socket is at hand, which needs
neither asyncio nor dbus-fast; over D-Bus (ListContainersPaged) otherwise
(pyctrd.cli.commands.info.cmd_ps). Either way only the properties the output
needs are fetched, and the default table is printed without the template
engine: the same text (tests/unit/test_cli_ps.py), a tenth of the time at
10,000 rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from pyctrd.cli.format import SHORT_ID, ago, container_status, tabwrite
from pyctrd.cli.varlinkclient import VarlinkClient

ACTIVE = ("running", "paused")
# What the default table, -q, --sort, -n and -l read (format.container_status too).
TABLE_PROPERTIES = ("Id", "Name", "Image", "Command", "State", "CreatedTimestamp",
                    "ExitCode", "StartedTimestamp", "FinishedTimestamp", "Ports", "Health")
QUIET_PROPERTIES = ("Id", "State", "CreatedTimestamp", "Name", "Image", "Command",
                    "StartedTimestamp")  # and what --sort may order by
# Every container property (D-Bus name → Varlink field), as pyctrd.ops.properties
# has them (pyctr may not import it; tests/unit/test_cli_ps.py holds them equal).
FIELDS = {
    "Id": "id", "Name": "name", "Image": "image", "ImageId": "image_id",
    "Command": "command", "State": "state", "PID": "pid", "ExitCode": "exit_code",
    "OOMKilled": "oom_killed", "Mounted": "mounted", "Mountpoint": "mountpoint",
    "CreatedTimestamp": "created_timestamp", "StartedTimestamp": "started_timestamp",
    "FinishedTimestamp": "finished_timestamp", "Labels": "labels", "LogPath": "log_path",
    "StopSignal": "stop_signal", "StopTimeout": "stop_timeout", "Terminal": "terminal",
    "Networks": "networks", "IPAddress": "ip_address", "Ports": "ports",
    "RestartPolicy": "restart_policy", "RestartCount": "restart_count",
    "Health": "health", "AutoRemove": "auto_remove"}
PS_SORT = {"command": lambda c: " ".join(c.get("Command", [])),
           "created": lambda c: c.get("CreatedTimestamp", 0),
           "id": lambda c: c["Id"], "image": lambda c: c.get("Image", ""),
           "names": lambda c: c.get("Name", ""),
           "runningfor": lambda c: -c.get("CreatedTimestamp", 0),
           "status": lambda c: c.get("State", "")}
_PORT_FIELDS = ("host_ip", "host_port", "container_port", "protocol")


def default_table(args: argparse.Namespace) -> bool:
    return (args.format or "") in ("", "table")


def wanted_properties(args: argparse.Namespace) -> tuple[str, ...]:
    """The properties to fetch; () for all of them (a filter, JSON or a template
    may read any)."""
    if args.filter:
        return ()
    if args.quiet:
        return QUIET_PROPERTIES
    return TABLE_PROPERTIES if default_table(args) else ()


def wanted_states(args: argparse.Namespace) -> tuple[str, ...]:
    """The states to list; () for all (-a, and what implies it)."""
    every = args.all or args.filter or args.last >= 0 or args.latest
    return () if every else ACTIVE


def select_containers(containers: list[dict[str, Any]], args: argparse.Namespace,
                      now: float | None = None) -> list[dict[str, Any]]:
    """ps's choice of containers (oldest first): -a, --filter, -n/--last, -l, --sort."""
    every = args.all or args.filter or args.last >= 0 or args.latest
    chosen = [c for c in containers if every or c.get("State") in ACTIVE]
    if args.filter:
        from pyctrd.cli.filters import filter_containers
        chosen = filter_containers(chosen, args.filter, now)
    if args.latest:
        chosen = chosen[-1:]
    elif args.last >= 0:
        chosen = chosen[len(chosen) - args.last:] if args.last else []
    if args.sort != "created":
        chosen = sorted(chosen, key=PS_SORT[args.sort])
    return chosen


def print_ps(containers: list[dict[str, Any]], args: argparse.Namespace, now: float) -> int:
    """Print ``containers`` (oldest first, as listed) as ps does."""
    containers = select_containers(containers, args, now)
    if args.quiet:
        sys.stdout.write("".join(
            f"{c['Id'] if args.no_trunc else c['Id'][:SHORT_ID]}\n" for c in containers))
        return 0
    if default_table(args):
        sys.stdout.write(table_text(containers, args.no_trunc, args.noheading, now))
        return 0
    from pyctrd.cli.gotemplate import Report
    from pyctrd.cli.reports import PS_DEFAULT, PS_HEADERS, ps_item, ps_json
    report = Report(args.format, PS_DEFAULT, PS_HEADERS,
                    json_of=lambda c: ps_json(c, now), noheading=args.noheading)
    if args.format == "json":
        sys.stdout.write(report.lines(containers))
        return 0
    sys.stdout.write(report.lines([ps_item(c, args.no_trunc, now) for c in containers]))
    return 0


TABLE_HEADER = ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")


def table_text(containers: Sequence[dict[str, Any]], no_trunc: bool, noheading: bool,
               now: float) -> str:
    """reports.PS_DEFAULT's table as gotemplate.render prints it, cell by cell."""
    rows: list[tuple[str, ...]] = [] if noheading else [TABLE_HEADER]
    if containers:
        from pyctrd.cli.reports import COMMAND_WIDTH, ports_text
    odd = False
    for c in containers:
        command = " ".join(c.get("Command", []))
        if not no_trunc and len(command) > COMMAND_WIDTH:
            command = command[:COMMAND_WIDTH] + "..."
        image, name, ports = c.get("Image", ""), c.get("Name", ""), c.get("Ports")
        given = command + image + name  # what a user chose: a tab or newline may be in it
        odd = odd or "\t" in given or "\n" in given
        rows.append((
            c["Id"] if no_trunc else c["Id"][:SHORT_ID], image, command,
            ago(c.get("CreatedTimestamp", 0), now), container_status(c, now),
            ports_text(ports) if ports else "", name))
    if not rows:
        return ""
    if odd:  # the template's rows split at those into cells and lines of their own
        return tabwrite("".join("\t".join(row) + "\n" for row in rows))
    # format.tabwrite's layout, column by column: each cell but the last padded to
    # its column's widest plus two, at least 12 (the text after the last tab as is)
    widths = [max(12, max(len(row[i]) for row in rows) + 2) for i in range(len(rows[0]) - 1)]
    line = "".join(f"{{:<{width}}}" for width in widths) + "{}\n"
    return "".join([line.format(*row) for row in rows])


def oldest_first(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """As the D-Bus listing orders them: by creation, then ID."""
    return sorted(containers, key=lambda c: (c.get("CreatedTimestamp", 0), c["Id"]))


# -- over Varlink


def containers_over_varlink(client: VarlinkClient, properties: Sequence[str],
                            states: Sequence[str]) -> list[dict[str, Any]]:
    """Every container (in ``states``, if any) with ``properties`` (all if none),
    keyed by their D-Bus names, oldest first."""
    names = list(properties or FIELDS)
    fields = [FIELDS[name] for name in names]
    parameters: dict[str, Any] = {"fields": fields}
    if states:
        parameters["states"] = list(states)
    found: list[dict[str, Any]] = []
    for reply in client.call("io.pyctrd.Container.ListRows", parameters):
        found.extend(dict(zip(names, row, strict=True)) for row in reply.get("rows", ()))
    if "Ports" in names:  # PortMapping objects → D-Bus's (sqqs) lists
        for c in found:
            if c["Ports"]:
                c["Ports"] = [[p[k] for k in _PORT_FIELDS] for p in c["Ports"]]
    return oldest_first(found)


def check_format(args: argparse.Namespace) -> None:
    """A bad --format template fails before anything is fetched (as Report's check)."""
    if (args.format or "") not in ("", "json", "table"):
        from pyctrd.cli.gotemplate import normalize_and_check
        normalize_and_check(args.format)


def ps_over_varlink(client: VarlinkClient, args: argparse.Namespace) -> int:
    now = time.time()
    check_format(args)
    containers = containers_over_varlink(client, wanted_properties(args), wanted_states(args))
    return print_ps(containers, args, now)
