"""Verbs that read: ps, inspect, logs, export."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from pyctrd.cli.bus import Daemon
from pyctrd.cli.commands import for_each
from pyctrd.cli.errors import CliError, DaemonError
from pyctrd.cli.format import SHORT_ID, ps_json, ps_table, rfc3339
from pyctrd.cli.logstream import count_records, print_log
from pyctrd.errors import NoSuchContainer
from pyctrd.ops.names import IMAGE_IFACE


async def cmd_ps(daemon: Daemon, args: argparse.Namespace) -> int:
    containers = [c for c in await daemon.containers()
                  if args.all or c.get("State") in ("running", "paused")]
    if args.quiet:
        for c in containers:
            print(c["Id"] if args.no_trunc else c["Id"][:SHORT_ID])
    elif args.format == "json":
        print(ps_json(containers))
    else:
        print(ps_table(containers, args.no_trunc))
    return 0


def _image_inspect(props: dict[str, Any]) -> dict[str, Any]:
    """An image's properties in `podman image inspect`'s shape."""
    return {
        "Id": props.get("Id", ""),
        "Digest": props.get("Digest", ""),
        "RepoTags": [props["Reference"]] if props.get("Reference") else [],
        "Created": rfc3339(props.get("CreatedTimestamp", 0)),
        "Size": props.get("Size", 0),
        "Config": {"Entrypoint": props.get("Entrypoint", []), "Cmd": props.get("Cmd", []),
                   "Env": props.get("Env", []), "WorkingDir": props.get("WorkingDir", ""),
                   "User": props.get("User", "")},
        "RootFS": {"Type": "layers", "Layers": props.get("Layers", [])},
    }


async def cmd_inspect(daemon: Daemon, args: argparse.Namespace) -> int:
    found: list[Any] = []

    async def inspect(name: str) -> None:
        try:
            ref = await daemon.container(name)
        except DaemonError as err:
            if not err.is_a(NoSuchContainer):
                raise
            try:  # podman inspect takes images too
                image = await daemon.image(name)
            except DaemonError:
                raise CliError("no such container or image; `pyctr ps -a` and "
                               "`pyctr images` list them") from None
            found.append(_image_inspect(await daemon.properties(image.path, IMAGE_IFACE)))
            return
        (text,) = await daemon.container_call(ref, "Inspect")
        found.append(json.loads(text))

    status = await for_each(args.names, inspect)
    print(json.dumps(found, indent=4))
    return status


async def cmd_logs(daemon: Daemon, args: argparse.Namespace) -> int:
    several = len(args.containers) > 1

    async def logs(name: str) -> None:
        ref = await daemon.container(name)
        skip = 0
        if args.tail is not None and args.tail >= 0:
            skip = max(await count_records(daemon, ref) - args.tail, 0)
        prefix = f"{ref.id[:SHORT_ID]} ".encode() if several else b""
        await print_log(daemon, ref, args.follow, skip, args.timestamps, prefix)

    if args.follow and several:  # every container's output as it comes
        statuses = await asyncio.gather(*(for_each([n], logs) for n in args.containers))
        return max(statuses)
    return await for_each(args.containers, logs)


async def cmd_export(daemon: Daemon, args: argparse.Namespace) -> int:
    ref = await daemon.container(args.container)
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
