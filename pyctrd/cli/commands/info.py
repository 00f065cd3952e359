"""Verbs that read: ps, inspect, logs, export."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from pyctrd.cli.bus import Daemon
from pyctrd.cli.commands import for_each, targets
from pyctrd.cli.errors import CliError, DaemonError, about
from pyctrd.cli.format import SHORT_ID
from pyctrd.cli.logstream import count_records, print_log
from pyctrd.errors import NoSuchContainer, NoSuchImage
from pyctrd.ops.names import IMAGE_IFACE


async def cmd_ps(daemon: Daemon, args: argparse.Namespace) -> int:
    """ps over D-Bus (pyctrd.cli.commands.ps has it over Varlink)."""
    from pyctrd.cli.commands.ps import (
        check_format,
        print_ps,
        wanted_properties,
        wanted_states,
    )
    now = time.time()
    check_format(args)
    containers = await daemon.containers(wanted_properties(args), wanted_states(args))
    return print_ps(containers, args, now)


async def _inspect_one(daemon: Daemon, name: str, kind: str) -> Any:
    from pyctrd.cli.reports import container_inspect, image_inspect
    if kind in ("all", "container"):
        try:
            ref = await daemon.container(name)
        except DaemonError as err:
            if not err.is_a(NoSuchContainer) or kind == "container":
                raise
        else:
            (text,) = await daemon.container_call(ref, "Inspect")
            return container_inspect(json.loads(text))
    try:
        image = await daemon.image(name)
    except DaemonError as err:
        if err.is_a(NoSuchImage):
            if kind == "image":
                raise CliError(f"{name}: image not known", whole=True) from None
            raise CliError(f'no such object: "{name}"', whole=True) from None
        raise
    return image_inspect(await daemon.properties(image.path, IMAGE_IFACE))


async def cmd_inspect(daemon: Daemon, args: argparse.Namespace) -> int:
    """podman inspect: JSON, or --format's template once per object."""
    from pyctrd.cli.gotemplate import Template, TemplateError, normalize
    kind = getattr(args, "type", "all")
    template = None
    if args.format and args.format != "json":
        try:
            template = Template(normalize(args.format)[1])
        except TemplateError as err:
            raise CliError(str(err)) from None
    names = list(args.names)
    if args.latest:
        if names:
            raise CliError("--latest and containers cannot be used together")
        names = await targets(daemon, args, [])
    elif not names:
        raise CliError("you must provide at least one name or id")
    found: list[Any] = []

    async def inspect(name: str) -> None:
        found.append(await _inspect_one(daemon, name, kind))

    status = await for_each(names, inspect, "inspect")
    if template is None:
        print(json.dumps(found, indent=4, default=str))
        return status
    for item in found:
        try:
            sys.stdout.write(template.execute(item))
        except TemplateError as err:
            raise CliError(str(err)) from None
    return status


def _time_ns(text: str) -> int:
    """--since/--until in nanoseconds: a timestamp to the digit, else as parse_time."""
    from pyctrd.cli.filters import parse_time
    from pyctrd.cli.logstream import rfc3339_ns
    if "T" in text or "-" in text[1:]:
        exact = rfc3339_ns(text)
        if exact is not None:
            return exact
    return int(parse_time(text) * 1_000_000_000)


async def cmd_logs(daemon: Daemon, args: argparse.Namespace) -> int:
    since = _time_ns(args.since) if args.since else None
    until = _time_ns(args.until) if args.until else None
    names = list(args.containers)
    if args.latest:
        names = await targets(daemon, args, names)
    elif not names:
        raise CliError("you must provide at least one name or id")
    several = len(names) > 1

    async def logs(name: str) -> None:
        ref = await daemon.container(name)
        skip = 0
        if args.tail is not None and args.tail >= 0:
            skip = max(await count_records(daemon, ref) - args.tail, 0)
        prefix = b""
        if args.names:
            props = await daemon.container_properties(ref)
            prefix = f"{props.get('Name', '')} ".encode()
        elif several:
            prefix = f"{ref.id[:SHORT_ID]} ".encode()
        await print_log(daemon, ref, args.follow, skip, args.timestamps, prefix,
                        since=since, until=until)

    if args.follow and several:  # every container's output as it comes
        statuses = await asyncio.gather(*(for_each([n], logs, "logs") for n in names))
        return max(statuses)
    return await for_each(names, logs, "logs")


async def cmd_export(daemon: Daemon, args: argparse.Namespace) -> int:
    try:
        ref = await daemon.container(args.container)
    except CliError as err:
        raise CliError(about(args.container, err), err.status) from None
    if args.output:
        try:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                         0o644)
        except OSError as err:
            raise CliError(f"cannot write {args.output}: {err.strerror}") from None
    elif os.isatty(1):
        raise CliError("refusing to export to a terminal: give -o FILE or redirect stdout")
    else:
        fd = os.dup(1)
    try:
        await daemon.container_call(ref, "Export", "h", [0], [fd])
    finally:
        os.close(fd)
    return 0
