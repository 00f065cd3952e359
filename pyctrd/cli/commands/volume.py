"""volume create/ls/inspect/rm/prune/exists, as podman's."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from typing import Any

from dbus_fast import Variant

from pyctrd.cli.bus import Daemon
from pyctrd.cli.commands import for_each
from pyctrd.cli.errors import CliError, DaemonError
from pyctrd.errors import InUse, NoSuchVolume
from pyctrd.ops.names import VOLUME_IFACE

LS_DEFAULT = "table {{.Driver}}\t{{.Name}}"
LS_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT"}


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    found = {}
    for item in items:
        key, _sep, value = item.partition("=")
        if not key:
            raise CliError(f'invalid {flag} "{item}": give KEY=VALUE')
        found[key] = value
    return found


def _volume_status(err: CliError) -> int:
    """podman volume rm's statuses: 1 no such volume, 2 in use, else 125."""
    if isinstance(err, DaemonError) and err.is_a(NoSuchVolume):
        return 1
    if isinstance(err, DaemonError) and err.is_a(InUse):
        return 2
    return err.status


def _whole(err: CliError) -> CliError:
    """The daemon's volume messages are podman's already: print them as they are."""
    if isinstance(err, DaemonError) and err.is_a(NoSuchVolume, InUse):
        err.whole = True
    return err


def podman_inspect(props: dict[str, Any]) -> dict[str, Any]:
    """podman volume inspect's shape."""
    created = datetime.datetime.fromtimestamp(props["CreatedTimestamp"] / 1e6).astimezone()
    return {
        "Name": props["Name"], "Driver": props["Driver"], "Mountpoint": props["Mountpoint"],
        "CreatedAt": created.isoformat(), "Labels": props["Labels"], "Scope": "local",
        "Options": {}, "MountCount": 0, "NeedsCopyUp": True, "NeedsChown": True,
        "InUse": props["InUse"],
    }


async def _all(daemon: Daemon) -> list[dict[str, Any]]:
    (rows,) = await daemon.manager("ListVolumes")
    return [podman_inspect(await daemon.properties(path, VOLUME_IFACE))
            for _name, _mountpoint, path in rows]


async def _one(daemon: Daemon, name: str) -> dict[str, Any]:
    try:
        (path,) = await daemon.manager("GetVolume", "s", [name])
    except CliError as err:
        raise _whole(err) from None
    return podman_inspect(await daemon.properties(path, VOLUME_IFACE))


def _matches(volume: dict[str, Any], filters: list[str]) -> bool:
    """podman's volume filters: each key's values OR'ed, the keys AND'ed."""
    by_key: dict[str, list[tuple[bool, str]]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        negate = key.endswith("!")
        key = key.rstrip("!")
        if not sep:
            raise CliError(f'invalid --filter "{item}": give KEY=VALUE')
        if key not in ("name", "label", "driver", "dangling"):
            raise CliError(f'invalid --filter "{item}": pyctr volume filters are name, '
                           "label, driver and dangling")
        by_key.setdefault(key, []).append((negate, value))
    for key, wanted in by_key.items():
        hits = []
        for negate, value in wanted:
            if key == "name":
                hit = re.search(value, volume["Name"]) is not None
            elif key == "label":
                lk, lsep, lv = value.partition("=")
                labels = volume["Labels"]
                hit = lk in labels and (not lsep or labels[lk] == lv)
            elif key == "driver":
                hit = value == volume["Driver"]
            else:
                if value not in ("true", "false", "1", "0"):
                    raise CliError(f'invalid --filter "dangling={value}": true or false')
                hit = (not volume["InUse"]) == (value in ("true", "1"))
            hits.append(hit != negate)
        if not any(hits):
            return False
    return True


async def cmd_volume_create(daemon: Daemon, args: argparse.Namespace) -> int:
    if args.opt:
        raise CliError(f'--opt "{args.opt[0]}": pyctrd\'s local driver takes no options '
                       "(a volume is a plain directory)")
    options: dict[str, Variant] = {}
    if args.label:
        options["labels"] = Variant("a{ss}", _pairs(args.label, "--label"))
    if args.ignore and args.name:
        try:
            await daemon.manager("GetVolume", "s", [args.name])
            print(args.name)
            return 0
        except DaemonError as err:
            if not err.is_a(NoSuchVolume):
                raise
    (path,) = await daemon.manager("CreateVolume", "sa{sv}", [args.name, options])
    props = await daemon.properties(path, VOLUME_IFACE)
    print(props["Name"])
    return 0


async def cmd_volume_ls(daemon: Daemon, args: argparse.Namespace) -> int:
    from pyctrd.cli.gotemplate import Report
    report = Report(args.format, LS_DEFAULT, LS_HEADERS, noheading=args.noheading)
    volumes = [v for v in await _all(daemon) if _matches(v, args.filter)]
    if args.quiet:
        for volume in volumes:
            print(volume["Name"])
        return 0
    sys.stdout.write(report.lines(volumes))
    return 0


async def cmd_volume_inspect(daemon: Daemon, args: argparse.Namespace) -> int:
    if args.all == bool(args.volumes):
        raise CliError("give volume names or --all (not both)")
    found: list[dict[str, Any]] = []
    status = 0
    if args.all:
        found = await _all(daemon)
    else:
        async def one(name: str) -> None:
            found.append(await _one(daemon, name))
        status = await for_each(args.volumes, one, "inspect")
    if args.format and args.format != "json":
        from pyctrd.cli.gotemplate import render
        sys.stdout.write(render(args.format if args.format.endswith("\n")
                                else args.format + "\n", found))
    else:
        import json
        print(json.dumps(found, indent=4, ensure_ascii=False))
    return status


async def cmd_volume_rm(daemon: Daemon, args: argparse.Namespace) -> int:
    if args.all == bool(args.volumes):
        raise CliError("give volume names or --all (not both)")
    names = args.volumes
    if args.all:
        (rows,) = await daemon.manager("ListVolumes")
        names = [name for name, _mountpoint, _path in rows]

    async def one(name: str) -> None:
        try:
            await daemon.manager("RemoveVolume", "sb", [name, args.force])
        except CliError as err:
            raise _whole(err) from None
        print(name)

    return await for_each(names, one, "rm", statuses=_volume_status)


async def cmd_volume_prune(daemon: Daemon, args: argparse.Namespace) -> int:
    for item in args.filter:
        if not item.startswith(("label=", "label!=")):
            raise CliError(f'invalid --filter "{item}": volume prune filters by label only')
    if not args.force:
        sys.stdout.write("WARNING! This will remove all volumes not used by at least one "
                         "container. The following volumes will be removed:\n")
    unused = [v for v in await _all(daemon) if not v["InUse"] and _matches(v, args.filter)]
    if not args.force:
        for volume in unused:
            print(volume["Name"])
        sys.stdout.write("Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0

    async def one(name: str) -> None:
        await daemon.manager("RemoveVolume", "sb", [name, False])
        print(name)

    return await for_each([v["Name"] for v in unused], one, "prune")


async def cmd_volume_exists(daemon: Daemon, args: argparse.Namespace) -> int:
    try:
        await daemon.manager("GetVolume", "s", [args.name])
    except DaemonError as err:
        if err.is_a(NoSuchVolume):
            return 1
        raise
    return 0
