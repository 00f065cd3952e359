"""import, images, rmi."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from pyctrd.cli.bus import Daemon
from pyctrd.cli.commands import for_each, removal_status
from pyctrd.cli.errors import CliError
from pyctrd.cli.format import SHORT_ID
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


IMAGE_SORT = {"created": lambda r: -r[0].get("CreatedTimestamp", 0),
              "id": lambda r: r[0]["Id"], "repository": lambda r: r[1],
              "size": lambda r: r[0].get("Size", 0), "tag": lambda r: r[2]}


async def cmd_images(daemon: Daemon, args: argparse.Namespace) -> int:
    from pyctrd.cli.filters import filter_images
    from pyctrd.cli.gotemplate import Report
    from pyctrd.cli.reports import (
        IMAGES_DEFAULT,
        IMAGES_HEADERS,
        image_item,
        image_json,
        image_rows,
    )
    default = IMAGES_DEFAULT
    if args.digests:
        default = default.replace("{{.Tag}}\t", "{{.Tag}}\t{{.Digest}}\t")
    report = Report(args.format, default, IMAGES_HEADERS, json_of=image_json,
                    noheading=args.noheading)
    images = await daemon.images()
    used: dict[str, int] = {}
    for c in await daemon.containers():
        used[c.get("ImageId", "")] = used.get(c.get("ImageId", ""), 0) + 1
    for image in images:
        image["_containers"] = used.get(image["Id"], 0)
    filters = list(args.filter) + ([f"reference={args.images}"] if args.images else [])
    images = filter_images(images, filters, set(used))
    if args.quiet:
        seen = set()
        for image in images:
            shown = image["Id"] if args.no_trunc else image["Id"][:SHORT_ID]
            if shown not in seen:  # an image with two names is listed once with -q
                seen.add(shown)
                print(shown)
        return 0
    if args.format == "json":
        sys.stdout.write(report.lines(images))
        return 0
    rows = [(i, repository, tag) for i in images for repository, tag in image_rows(i)]
    rows.sort(key=IMAGE_SORT[args.sort])
    sys.stdout.write(report.lines([image_item(i, repository, tag, args.no_trunc)
                                   for i, repository, tag in rows]))
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

    names = list(args.images)
    if args.all:
        if names:
            raise CliError("when using the --all switch, you may not pass any images names "
                           "or IDs")
        names = [i["Id"] for i in await daemon.images()]
    elif not names:
        raise CliError("image name or ID must be specified")
    return await for_each(names, remove, "rmi", ignore_missing=args.ignore,
                          statuses=removal_status)
