"""import, images, rmi."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from pyctrd.cli.bus import Daemon
from pyctrd.cli.commands import for_each
from pyctrd.cli.errors import CliError
from pyctrd.cli.format import SHORT_ID, images_json, images_table
from pyctrd.cli.progress import PipeFeeder, ProgressBar, wants_progress
from pyctrd.ops.names import IMAGE_IFACE


async def _import_fd(daemon: Daemon, fd: int, reference: str) -> str:
    image_id, _path = await daemon.manager("ImportImage", "hs", [0, reference], [fd])
    return str(image_id)


async def cmd_import(daemon: Daemon, args: argparse.Namespace) -> int:
    if args.file == "-":
        image_id = await _import_fd(daemon, 0, args.reference)
    else:
        try:
            fd = os.open(args.file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise CliError(f"cannot read {args.file}: {err.strerror}") from None
        try:
            if size := wants_progress(fd, args.quiet):
                label = os.path.basename(args.file)
                feeder = PipeFeeder(fd, ProgressBar(label, size, sys.stderr))
                feeder.start()
                try:
                    image_id = await _import_fd(daemon, feeder.read_end, args.reference)
                finally:
                    feeder.stop()
            else:
                image_id = await _import_fd(daemon, fd, args.reference)
        finally:
            os.close(fd)
    print(image_id)
    return 0


async def cmd_images(daemon: Daemon, args: argparse.Namespace) -> int:
    images = await daemon.images()
    if args.quiet:
        for image in images:
            print(image["Id"] if args.no_trunc else image["Id"][:SHORT_ID])
    elif args.format == "json":
        print(images_json(images))
    else:
        print(images_table(images, args.no_trunc))
    return 0


async def cmd_rmi(daemon: Daemon, args: argparse.Namespace) -> int:
    async def remove(name: str) -> None:
        ref = await daemon.image(name)
        reference = ""
        with contextlib.suppress(CliError):  # only for the message
            reference = (await daemon.properties(ref.path, IMAGE_IFACE)).get("Reference", "")
        await daemon.manager("RemoveImage", "sb", [name, args.force])
        if reference:
            print(f"Untagged: {reference}")
        print(f"Deleted: {ref.id}")

    return await for_each(args.images, remove)
