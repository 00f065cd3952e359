"""pyctr: a small command-line client of pyctrd, over D-Bus only.

This first cut covers images and listing; the podman-like verbs arrive with
the CLI issue.
"""

import argparse
import asyncio
import os
import sys

from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

BUS_NAME = "org.pyctrd1"
MANAGER_PATH = "/org/pyctrd1"
MANAGER_IFACE = "org.pyctrd1.Manager"
EXIT_DAEMON_ERROR = 125


async def call(bus: MessageBus, member: str, signature: str = "", body: list | None = None,
               unix_fds: list[int] | None = None) -> list:
    reply = await bus.call(Message(
        destination=BUS_NAME, path=MANAGER_PATH, interface=MANAGER_IFACE, member=member,
        signature=signature, body=body or [], unix_fds=unix_fds or []))
    if reply.message_type is MessageType.ERROR:
        raise DBusError(reply.error_name, reply.body[0] if reply.body else "")
    return list(reply.body)


async def cmd_import(bus: MessageBus, args: argparse.Namespace) -> int:
    fd = sys.stdin.fileno() if args.file == "-" else os.open(args.file, os.O_RDONLY)
    image_id, _path = await call(bus, "ImportImage", "hs", [0, args.reference], [fd])
    print(image_id)
    return 0


async def cmd_images(bus: MessageBus, args: argparse.Namespace) -> int:
    (images,) = await call(bus, "ListImages")
    print(f"{'REFERENCE':<30} {'IMAGE ID':<14} {'SIZE':>10}")
    for image_id, reference, size, _path in images:
        print(f"{reference or '<none>':<30} {image_id[:12]:<14} {size:>10}")
    return 0


async def cmd_ps(bus: MessageBus, args: argparse.Namespace) -> int:
    (containers,) = await call(bus, "ListContainers")
    print(f"{'CONTAINER ID':<14} {'IMAGE':<20} {'STATE':<11} NAME")
    for cid, name, image, state, _path in containers:
        if args.all or state in ("running", "paused"):
            print(f"{cid[:12]:<14} {image:<20} {state:<11} {name}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyctr", description="Drive pyctrd over D-Bus")
    p.add_argument("--user", action="store_true", help="use the session bus")
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import a root filesystem tarball")
    imp.add_argument("file", help="the archive, or - for stdin")
    imp.add_argument("reference", nargs="?", default="")
    imp.set_defaults(run=cmd_import)
    sub.add_parser("images", help="list images").set_defaults(run=cmd_images)
    ps = sub.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true")
    ps.set_defaults(run=cmd_ps)
    return p


async def run(args: argparse.Namespace) -> int:
    bus_type = BusType.SESSION if args.user else BusType.SYSTEM
    bus = await MessageBus(bus_type=bus_type, negotiate_unix_fd=True).connect()
    try:
        return int(await args.run(bus, args))
    finally:
        bus.disconnect()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        sys.exit(asyncio.run(run(args)))
    except DBusError as err:
        print(f"Error: {err.text}", file=sys.stderr)
        sys.exit(EXIT_DAEMON_ERROR)
    except OSError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(EXIT_DAEMON_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
