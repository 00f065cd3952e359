"""Verbs that change containers' states: stop, restart, kill, pause, unpause, rm,
wait, mount, unmount. Each takes several containers (or --all, --latest,
--cidfile); each success prints the name as given (an ID for --all and the
like), as podman does, each failure one line in podman's words."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pyctrd.cli.bus import Daemon, Ref
from pyctrd.cli.commands import for_each, removal_status, targets
from pyctrd.cli.errors import CliError, DaemonError
from pyctrd.cli.format import SHORT_ID
from pyctrd.errors import InvalidState, NoSuchContainer

ACTIVE = ("running", "paused")
WAIT_CONDITIONS = {"stopped": ("exited",), "exited": ("exited",), "running": ("running",),
                   "paused": ("paused",), "created": ("created",),
                   "configured": ("created",), "removing": ()}


def _active(c: dict[str, Any]) -> bool:
    return c.get("State") in ACTIVE


async def _stop(daemon: Daemon, ref: Ref, timeout: int | None) -> None:
    props = await daemon.container_properties(ref)
    if props.get("State") not in ACTIVE:
        return  # podman: stopping a stopped container succeeds
    if timeout is None:
        timeout = int(props.get("StopTimeout", 10))
    try:
        await daemon.container_call(ref, "Stop", "u", [max(timeout, 0)])
    except DaemonError as err:
        # it exited on its own between our look and the call
        if not err.is_a(InvalidState) or \
                (await daemon.container_properties(ref)).get("State") in ACTIVE:
            raise


async def cmd_stop(daemon: Daemon, args: argparse.Namespace) -> int:
    async def stop(name: str) -> None:
        await _stop(daemon, await daemon.container(name), args.time)
        print(name, flush=True)

    names = await targets(daemon, args, args.containers, _active)
    return await for_each(names, stop, "stop", ignore_missing=args.ignore)


async def cmd_restart(daemon: Daemon, args: argparse.Namespace) -> int:
    async def restart(name: str) -> None:
        ref = await daemon.container(name)
        await _stop(daemon, ref, args.time)
        await daemon.container_call(ref, "Start")
        print(name, flush=True)

    which = _active if args.running else None
    return await for_each(await targets(daemon, args, args.containers, which), restart,
                          "restart")


Command = Callable[[Daemon, argparse.Namespace], Awaitable[int]]


def _simple(verb: str, member: str, which: Callable[[dict[str, Any]], bool] | None,
            signature: str = "", body: Callable[[argparse.Namespace], list[Any]] | None = None
            ) -> Command:
    async def command(daemon: Daemon, args: argparse.Namespace) -> int:
        async def act(name: str) -> None:
            await daemon.container_call(await daemon.container(name), member, signature,
                                        body(args) if body else None)
            print(name, flush=True)

        return await for_each(await targets(daemon, args, args.containers, which), act, verb)

    return command


cmd_pause = _simple("pause", "Pause", lambda c: c.get("State") == "running")
cmd_unpause = _simple("unpause", "Unpause", lambda c: c.get("State") == "paused")
# a running container's root is mounted for its run, not by `mount`: --all leaves it
cmd_unmount = _simple("unmount", "Unmount",
                      lambda c: bool(c.get("Mounted")) and c.get("State") not in ACTIVE)
cmd_kill = _simple("kill", "Kill", _active, "s", lambda args: [args.signal])


async def cmd_wait(daemon: Daemon, args: argparse.Namespace) -> int:
    from pyctrd.cli.filters import parse_duration
    conditions = args.condition or ["stopped"]
    states: set[str] = set()
    for condition in conditions:
        if condition not in WAIT_CONDITIONS:
            raise CliError(f'invalid condition "{condition}": pyctr waits for stopped, '
                           "exited, running, paused or created")
        states.update(WAIT_CONDITIONS[condition])
    interval = parse_duration(args.interval)
    if interval is None and args.interval.isdigit():
        interval = int(args.interval) / 1000  # podman: a bare number is milliseconds
    if interval is None or interval <= 0:
        raise CliError(f'invalid argument "{args.interval}" for "-i, --interval" flag')

    async def wait(name: str) -> None:
        try:
            ref = await daemon.container(name)
        except DaemonError as err:
            if args.ignore and err.is_a(NoSuchContainer):
                print(-1, flush=True)
                return
            raise
        if states == {"exited"}:
            (code,) = await daemon.container_call(ref, "Wait")
            print(code, flush=True)
            return
        while True:  # other conditions: look every --interval, as podman does
            props = await daemon.container_properties(ref)
            if props.get("State") in states:
                print(props.get("ExitCode", 0) if props.get("State") == "exited" else -1,
                      flush=True)
                return
            await asyncio.sleep(interval)

    return await for_each(await targets(daemon, args, args.containers), wait, "wait")


async def cmd_rm(daemon: Daemon, args: argparse.Namespace) -> int:
    async def remove(name: str) -> None:
        if args.force and args.time is not None:
            ref = await daemon.container(name)
            await _stop(daemon, ref, args.time)
        await daemon.manager("RemoveContainer", "sb", [name, args.force])
        print(name, flush=True)

    names = await targets(daemon, args, args.containers)
    return await for_each(names, remove, "rm", ignore_missing=args.ignore,
                          statuses=removal_status)


async def cmd_mount(daemon: Daemon, args: argparse.Namespace) -> int:
    if not args.containers and not args.all and not args.latest:  # list what is mounted
        mounted = [c for c in await daemon.containers() if c.get("Mounted")]
        if args.format == "json":
            print(json.dumps([{"id": c["Id"], "names": [c.get("Name", "")],
                               "mountpoint": c.get("Mountpoint", "")} for c in mounted],
                             indent=4))
            return 0
        for c in mounted:
            print(f"{c['Id'] if args.no_trunc else c['Id'][:SHORT_ID]} "
                  f"{c.get('Mountpoint', '')}")
        return 0

    several = args.all or len(args.containers) > 1

    async def mount(name: str) -> None:
        (mountpoint,) = await daemon.container_call(await daemon.container(name), "Mount",
                                                    "s", [""])
        print(f"{name} {mountpoint}" if several and args.all else mountpoint, flush=True)

    return await for_each(await targets(daemon, args, args.containers), mount, "mount")
