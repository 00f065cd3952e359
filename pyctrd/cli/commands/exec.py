"""pyctr exec: run a command in a running container, as podman exec does.

The exit status is the command's (126 when it cannot be invoked, 127 when it
is not found, both as the daemon reports them), 125 when pyctrd fails. The
daemon's stdio socket merges the command's stdout and stderr (as a terminal
would show them); they go to our stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket

from dbus_fast import Variant

from pyctrd.cli import attach, detachkeys
from pyctrd.cli.bus import Daemon
from pyctrd.cli.errors import CliError, about
from pyctrd.cli.options import parse_env
from pyctrd.ops.names import CONTAINER_IFACE, EXEC_SESSION_IFACE


def _options(args: argparse.Namespace, tty: bool) -> dict[str, Variant]:
    options = {"terminal": Variant("b", tty), "stdin": Variant("b", bool(args.interactive))}
    env = parse_env(args.env)
    if env:
        options["env"] = Variant("as", env)
    if args.workdir:
        options["workdir"] = Variant("s", args.workdir)
    if args.user:
        options["user"] = Variant("s", args.user)
    if args.detach_keys:
        options["detach_keys"] = Variant("s", args.detach_keys)
    return options


async def cmd_exec(daemon: Daemon, args: argparse.Namespace) -> int:
    if not args.command:
        raise CliError("exec needs a command to run in the container")
    keys = detachkeys.parse(args.detach_keys)
    # -t without a terminal of ours would hand the command a terminal nobody types in
    tty = bool(args.tty) and not args.detach
    try:
        ref = await daemon.container(args.container)
    except CliError as err:
        raise CliError(about(args.container, err), err.status) from None
    reply = await daemon.call_message(ref.path, CONTAINER_IFACE, "Exec", "asa{sv}",
                                      [list(args.command), _options(args, tty)])
    session = str(reply.body[0])
    sock = socket.socket(fileno=reply.unix_fds[reply.body[1]])
    for fd in reply.unix_fds[1:]:  # none expected; leak nothing
        os.close(fd)
    if args.detach:
        sock.close()
        (values,) = await daemon.call(session, "org.freedesktop.DBus.Properties", "Get",
                                      "ss", [EXEC_SESSION_IFACE, "Id"])
        print(values.value)
        return 0
    sock.setblocking(False)
    sent = detachkeys.SentTail(keys if tty else b"")  # the daemon detaches terminals only
    if tty:
        await _relay_terminal(daemon, session, sock, bool(args.interactive), sent)
    else:
        await _relay_plain(sock, bool(args.interactive), sent)
    if sent.detached:
        return 0
    (code,) = await daemon.call(session, EXEC_SESSION_IFACE, "Wait")
    return int(code)


async def _relay_plain(sock: socket.socket, interactive: bool,
                       sent: detachkeys.SentTail) -> None:
    """Our stdin to the command (its end as the command's end of input), its
    output to our stdout, until the daemon closes the socket."""
    loop = asyncio.get_running_loop()
    sender = (loop.create_task(attach.send_stdin(sock, None, sent)) if interactive
              else None)
    if not interactive:
        sock.shutdown(socket.SHUT_WR)
    try:
        await attach.receive(sock, 1)
    finally:
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        sock.close()


async def _relay_terminal(daemon: Daemon, session: str, sock: socket.socket,
                          interactive: bool, sent: detachkeys.SentTail) -> None:
    """This terminal ⇄ the command's, the size following ours (SIGWINCH)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def resize() -> None:
        if (size := attach.terminal_size()) is None:
            return
        with contextlib.suppress(CliError):  # it may be exiting: nothing to resize
            await daemon.call(session, EXEC_SESSION_IFACE, "ResizeTerminal", "qq", list(size))

    def on_winch() -> None:
        task = loop.create_task(resize())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    with attach.raw_terminal():
        await resize()
        loop.add_signal_handler(signal.SIGWINCH, on_winch)
        sender = (loop.create_task(attach.send_stdin(sock, attach.EOT, sent)) if interactive
                  else None)
        try:
            await attach.receive(sock, 1)
        finally:
            loop.remove_signal_handler(signal.SIGWINCH)
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            for task in list(tasks):
                task.cancel()
            sock.close()
