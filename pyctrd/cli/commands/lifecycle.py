"""Verbs that change containers' states: stop, restart, kill, pause, unpause, rm,
wait, mount, unmount. Each takes several containers; each success prints the
name as given (as podman does), each failure one line."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from pyctrd.cli.bus import Daemon, Ref
from pyctrd.cli.commands import for_each
from pyctrd.cli.errors import DaemonError
from pyctrd.cli.format import SHORT_ID
from pyctrd.errors import InvalidState

ACTIVE = ("running", "paused")


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

    return await for_each(args.containers, stop)


async def cmd_restart(daemon: Daemon, args: argparse.Namespace) -> int:
    async def restart(name: str) -> None:
        ref = await daemon.container(name)
        await _stop(daemon, ref, args.time)
        await daemon.container_call(ref, "Start")
        print(name, flush=True)

    return await for_each(args.containers, restart)


Command = Callable[[Daemon, argparse.Namespace], Awaitable[int]]


def _simple(member: str, signature: str = "", body: list[Any] | None = None) -> Command:
    async def command(daemon: Daemon, args: argparse.Namespace) -> int:
        async def act(name: str) -> None:
            await daemon.container_call(await daemon.container(name), member, signature, body)
            print(name, flush=True)

        return await for_each(args.containers, act)

    return command


cmd_pause = _simple("Pause")
cmd_unpause = _simple("Unpause")
cmd_unmount = _simple("Unmount")


async def cmd_kill(daemon: Daemon, args: argparse.Namespace) -> int:
    return await _simple("Kill", "s", [args.signal])(daemon, args)


async def cmd_wait(daemon: Daemon, args: argparse.Namespace) -> int:
    async def wait(name: str) -> None:
        (code,) = await daemon.container_call(await daemon.container(name), "Wait")
        print(code, flush=True)

    return await for_each(args.containers, wait)


async def cmd_rm(daemon: Daemon, args: argparse.Namespace) -> int:
    async def remove(name: str) -> None:
        await daemon.manager("RemoveContainer", "sb", [name, args.force])
        print(name, flush=True)

    return await for_each(args.containers, remove)


async def cmd_mount(daemon: Daemon, args: argparse.Namespace) -> int:
    if not args.containers:  # list what is mounted
        for c in await daemon.containers():
            if c.get("Mounted"):
                print(f"{c['Id'][:SHORT_ID]}  {c.get('Mountpoint', '')}")
        return 0

    async def mount(name: str) -> None:
        (mountpoint,) = await daemon.container_call(await daemon.container(name), "Mount",
                                                    "s", [""])
        print(mountpoint, flush=True)

    return await for_each(args.containers, mount)
