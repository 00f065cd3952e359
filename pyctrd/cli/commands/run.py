"""Verbs that run containers and join their stdio: create, run, start, attach."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from typing import Any

from pyctrd.cli import attach, detachkeys
from pyctrd.cli.bus import Daemon, Ref
from pyctrd.cli.cidfile import check_cidfile as _check_cidfile
from pyctrd.cli.cidfile import write_cidfile as _write_cidfile
from pyctrd.cli.commands import for_each, print_error, registry, targets
from pyctrd.cli.errors import CliError, DaemonError, about, name_in_use, run_exit_status
from pyctrd.cli.format import SHORT_ID
from pyctrd.cli.logstream import count_records, print_log, terminal_snapshot
from pyctrd.cli.options import container_command, create_options
from pyctrd.errors import AmbiguousId, Exists, InvalidState, NoSuchContainer, NoSuchImage
from pyctrd.ops.names import CONTAINER_IFACE, IMAGE_IFACE
from pyctrd.ops.options import OPTIONS

ACTIVE = ("running", "paused")


async def _create(daemon: Daemon, args: argparse.Namespace) -> Ref:
    options = create_options(args)
    found = await registry.ensure_image(daemon, args)  # --pull
    _check_cidfile(args.cidfile)
    if args.replace:
        if not args.name:
            raise CliError("cannot replace container without --name being set")
        try:  # podman: the container of that name goes first, running or not
            await daemon.manager("RemoveContainer", "sb", [args.name, True])
        except DaemonError as err:
            if not err.is_a(NoSuchContainer):
                raise
    try:
        entrypoint: list[str] = []
        if args.command and args.entrypoint is None:
            # podman: a command replaces the image's Cmd, after its Entrypoint
            image = found or await daemon.image(args.image)
            entrypoint = (await daemon.properties(image.path, IMAGE_IFACE)).get("Entrypoint", [])
        argv = container_command(args, entrypoint)
        (path,) = await daemon.manager("CreateContainer", "sasa{sv}",
                                       [args.image, argv, options])
    except DaemonError as err:
        if err.is_a(NoSuchImage, AmbiguousId):
            raise CliError(about(args.image, err)) from None
        if err.is_a(Exists) and args.name:
            text = err.text
            with contextlib.suppress(CliError):  # podman names the owner by its full ID
                text = f"container {(await daemon.container(args.name)).id}"
            raise CliError(name_in_use(args.name, text)) from None
        raise
    ref = Ref(args.name or path.rsplit("/", 1)[1][:SHORT_ID], path)
    _write_cidfile(args.cidfile, ref.id)
    return ref


async def cmd_create(daemon: Daemon, args: argparse.Namespace) -> int:
    ref = await _create(daemon, args)
    print(ref.id)
    return 0


async def _exit_code(daemon: Daemon, ref: Ref, sent: detachkeys.SentTail | None) -> int | None:
    """The container's exit code once it has exited; None if we detached from it."""
    if sent is not None and sent.detached:
        return None
    (code,) = await daemon.container_call(ref, "Wait")
    return int(code)


async def _attach_socket(daemon: Daemon, ref: Ref, keys: str) -> socket.socket | None:
    """An Attach socket, or None when the container has already exited."""
    try:
        fd = await daemon.call_for_fd(ref.path, CONTAINER_IFACE, "Attach", "s", [keys])
    except DaemonError as err:
        if err.is_a(InvalidState):
            return None
        raise
    return attach.attach_socket(fd)


async def follow_started(daemon: Daemon, ref: Ref, tty: bool, interactive: bool,
                         detach_keys: str, skip: int = 0) -> int | None:
    """Join a container we have just started until it exits; its exit code, or
    None if the user detached. ``skip``: log records of earlier runs."""
    keys = detachkeys.parse(detach_keys)
    if tty and interactive:
        sock = await _attach_socket(daemon, ref, detach_keys)
        if sock is not None:
            sent = detachkeys.SentTail(keys)
            await attach.relay_terminal(
                daemon, ref, sock, send_input=True, sent=sent,
                replay=lambda: terminal_snapshot(daemon, ref, skip))
            return await _exit_code(daemon, ref, sent)
        # it exited before we could attach: show what it wrote
        await print_log(daemon, ref, follow=False, skip=skip)
        return await _exit_code(daemon, ref, None)

    with attach.proxy_signals(daemon, ref) as give_up:
        # The log keeps stdout and stderr apart (an attach socket merges them).
        log = asyncio.ensure_future(print_log(daemon, ref, follow=True, skip=skip))
        giving_up = asyncio.ensure_future(give_up.wait())
        feeder = None
        if interactive:
            sock = await _attach_socket(daemon, ref, detach_keys)
            if sock is not None:
                feeder = asyncio.ensure_future(attach.relay_plain(
                    sock, send_input=True, close_on_eof=True, show_output=False))
        try:
            await asyncio.wait({log, giving_up}, return_when=asyncio.FIRST_COMPLETED)
            if not log.done():
                print(f"\npyctr: no longer following {ref.given}; it keeps running",
                      file=sys.stderr)
                return None
            log.result()  # its error, if it failed
        finally:
            for task in (log, feeder, giving_up):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    return await _exit_code(daemon, ref, None)


async def _start(daemon: Daemon, ref: Ref) -> None:
    await daemon.container_call(ref, "Start")


async def cmd_run(daemon: Daemon, args: argparse.Namespace) -> int:
    if args.detach and args.rm and "auto_remove" not in OPTIONS:
        raise CliError("--rm with -d: this pyctrd cannot remove a container when it exits "
                       "on its own; run attached, or `pyctr rm` it later")
    detachkeys.parse(args.detach_keys)  # refuse bad keys before creating anything
    ref = await _create(daemon, args)
    code: int | None = None
    try:
        try:
            await _start(daemon, ref)
        except CliError as err:
            print_error(about(ref.given, err))
            return run_exit_status(err)
        if args.detach:
            print(ref.id)
            return 0
        code = await follow_started(daemon, ref, args.tty, args.interactive,
                                    args.detach_keys)
        return 0 if code is None else code
    finally:
        if args.rm and not args.detach:
            await _remove_after_run(daemon, ref, detached=code is None)


async def _remove_after_run(daemon: Daemon, ref: Ref, detached: bool) -> None:
    props = {}
    if detached:  # only then may it still run (a round trip less for every run --rm)
        with contextlib.suppress(CliError):
            props = await daemon.container_properties(ref)
    if detached and props.get("State") in ACTIVE:
        print(f"{ref.given} keeps running; remove it with `pyctr rm -f {ref.given}`",
              file=sys.stderr)
        return
    try:
        await daemon.manager("RemoveContainer", "sb", [ref.id, True])
    except CliError as err:
        print_error(about(ref.given, err))


def _check_sig_proxy(args: argparse.Namespace) -> None:
    if getattr(args, "sig_proxy", "true") == "false":
        raise CliError("--sig-proxy=false: pyctr always passes signals on to the container")


async def cmd_start(daemon: Daemon, args: argparse.Namespace) -> int:
    _check_sig_proxy(args)
    if args.filter and not args.all:
        raise CliError("--filter needs --all")
    if not args.attach:
        if args.interactive:
            raise CliError("-i needs -a: pyctr start -ai CONTAINER")

        async def start(name: str) -> None:
            await _start(daemon, await daemon.container(name))
            print(name, flush=True)

        which = None
        if args.filter:
            from pyctrd.cli.filters import CONTAINER_FILTERS, container_predicates, matches
            from pyctrd.cli.filters import parse as parse_filters
            filters = parse_filters(args.filter, CONTAINER_FILTERS)
            predicates = container_predicates(await daemon.containers())

            def which(c: dict[str, Any]) -> bool:
                return c.get("State") not in ACTIVE and matches(c, filters, predicates)
        elif args.all:
            def which(c: dict[str, Any]) -> bool:
                return c.get("State") not in ACTIVE
        return await for_each(await targets(daemon, args, args.containers, which), start,
                              "start")
    names = await targets(daemon, args, args.containers)
    if len(names) != 1:
        raise CliError("you cannot start and attach multiple containers at once")
    name = names[0]
    try:
        ref = await daemon.container(name)
        props = await daemon.container_properties(ref)
        skip = await count_records(daemon, ref)  # the output of earlier runs
        await _start(daemon, ref)
    except CliError as err:
        raise CliError(about(name, err, "start"), err.status) from None
    code = await follow_started(daemon, ref, bool(props.get("Terminal")), args.interactive,
                                args.detach_keys, skip)
    return 0 if code is None else code


async def cmd_attach(daemon: Daemon, args: argparse.Namespace) -> int:
    _check_sig_proxy(args)
    if args.latest == bool(args.container):
        raise CliError("attach requires the name or id of one running container or the "
                       "--latest flag")
    if args.latest:
        args.container = (await targets(daemon, args, []))[0]
    try:
        ref = await daemon.container(args.container)
        props = await daemon.container_properties(ref)
        sock = await _attach_socket(daemon, ref, args.detach_keys)
    except CliError as err:
        raise CliError(about(args.container, err, "attach"), err.status) from None
    if sock is None:
        raise CliError("you can only attach to running containers: container state improper")
    sent = detachkeys.SentTail(detachkeys.parse(args.detach_keys))
    send_input = not args.no_stdin
    if props.get("Terminal"):
        await attach.relay_terminal(daemon, ref, sock, send_input, sent=sent)
    else:
        with attach.proxy_signals(daemon, ref):
            await attach.relay_plain(sock, send_input, close_on_eof=False, show_output=True,
                                     sent=sent)
    code = await _exit_code(daemon, ref, sent)
    return 0 if code is None else code
