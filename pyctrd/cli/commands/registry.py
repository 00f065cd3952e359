"""pull, push, save, tag, untag, commit; and the pull that run/create do first."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from dbus_fast import Variant

from pyctrd.cli.bus import Daemon, Ref
from pyctrd.cli.errors import CliError, DaemonError
from pyctrd.cli.progress import ProgressBar
from pyctrd.errors import NoSuchImage
from pyctrd.ops.names import IMAGE_IFACE, JOB_IFACE

POLL = 0.1  # seconds between looks at a job


def transfer_options(args: argparse.Namespace) -> dict[str, Variant]:
    options: dict[str, Variant] = {}
    tls = getattr(args, "tls_verify", None)
    if tls is not None:
        options["tls_verify"] = Variant("b", tls == "true")
    creds = getattr(args, "creds", None)
    if creds:
        options["credentials"] = Variant("s", creds)
    platform = getattr(args, "platform", None)
    if platform:
        options["platform"] = Variant("s", platform)
    return options


async def follow_job(daemon: Daemon, job: str, label: str, quiet: bool) -> dict[str, Any]:
    """Wait for the job to end, drawing its progress on a terminal's stderr; Ctrl-C
    cancels it. Its final properties; CliError if it did not complete."""
    bar = None
    if not quiet and sys.stderr.isatty():
        bar = ProgressBar(label, 1, sys.stderr)
    try:
        while True:
            props = await daemon.properties(job, JOB_IFACE)
            if bar is not None and props.get("BytesTotal"):
                bar.total = max(int(props["BytesTotal"]), 1)
                bar.update(int(props.get("BytesDone", 0)))
            if props.get("State") != "running":
                break
            await asyncio.sleep(POLL)
    except (asyncio.CancelledError, KeyboardInterrupt):
        await daemon.call(job, JOB_IFACE, "Cancel")
        raise
    if bar is not None:
        bar.finish(int(props.get("BytesDone", 0)))
    if props.get("State") != "completed":
        name, _, message = str(props.get("Error", "")).partition(": ")
        raise CliError(f"{label}: {message or props.get('State')}"
                       f"{f' ({name.rsplit(chr(46), 1)[-1]})' if name else ''}")
    return props


async def pull(daemon: Daemon, reference: str, args: argparse.Namespace) -> str:
    """Pull ``reference``; the image ID."""
    (job,) = await daemon.manager("PullImage", "sa{sv}", [reference, transfer_options(args)])
    props = await follow_job(daemon, job, reference, bool(getattr(args, "quiet", False)))
    return str(props["Image"]).rsplit("/", 1)[-1]


async def ensure_image(daemon: Daemon, args: argparse.Namespace) -> Ref | None:
    """run/create --pull: missing (podman's default), always or never. The image
    when it was looked up and found (run needs no second look then)."""
    policy = getattr(args, "pull", None) or "missing"
    if policy == "never":
        return None
    if policy == "missing":
        try:
            return await daemon.image(args.image)
        except DaemonError as err:
            if not err.is_a(NoSuchImage):
                raise
    quiet = bool(getattr(args, "quiet", False))
    if not quiet and sys.stderr.isatty():
        print(f"Trying to pull {args.image}...", file=sys.stderr)
    try:
        await pull(daemon, args.image, args)
    except CliError as err:
        if policy != "missing":
            raise
        raise CliError(f"{args.image}: no such image here, and pulling it failed: "
                       f"{err.message}") from None
    return None


async def cmd_pull(daemon: Daemon, args: argparse.Namespace) -> int:
    started = time.monotonic()
    image_id = await pull(daemon, args.reference, args)
    if not args.quiet and sys.stderr.isatty():
        print(f"pulled in {time.monotonic() - started:.1f} s", file=sys.stderr)
    print(image_id)
    return 0


async def cmd_push(daemon: Daemon, args: argparse.Namespace) -> int:
    image = await daemon.image(args.image)
    (job,) = await daemon.call(image.path, IMAGE_IFACE, "Push", "sa{sv}",
                               [args.destination or args.image, transfer_options(args)])
    await follow_job(daemon, job, args.destination or args.image, args.quiet)
    return 0


async def cmd_save(daemon: Daemon, args: argparse.Namespace) -> int:
    image = await daemon.image(args.image)
    if args.output:
        try:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                         0o644)
        except OSError as err:
            raise CliError(f"cannot write {args.output}: {err.strerror}") from None
    else:
        if sys.stdout.isatty():
            raise CliError("refusing to write an archive to a terminal; use -o FILE "
                           "or redirect the output")
        fd = os.dup(1)
    try:
        await daemon.call(image.path, IMAGE_IFACE, "Save", "hs", [0, args.format], [fd])
    finally:
        os.close(fd)
    return 0


async def cmd_tag(daemon: Daemon, args: argparse.Namespace) -> int:
    image = await daemon.image(args.image)
    for reference in args.references:
        await daemon.call(image.path, IMAGE_IFACE, "Tag", "s", [reference])
    return 0


async def cmd_untag(daemon: Daemon, args: argparse.Namespace) -> int:
    image = await daemon.image(args.image)
    references = args.references or list(
        (await daemon.properties(image.path, IMAGE_IFACE)).get("References", []))
    for reference in references:
        await daemon.call(image.path, IMAGE_IFACE, "Untag", "s", [reference])
    return 0


async def cmd_commit(daemon: Daemon, args: argparse.Namespace) -> int:
    ref = await daemon.container(args.container)
    options: dict[str, Variant] = {"pause": Variant("b", args.pause == "true")}
    if args.message:
        options["message"] = Variant("s", args.message)
    if args.author:
        options["author"] = Variant("s", args.author)
    if args.change:
        options["changes"] = Variant("as", list(args.change))
    (job,) = await daemon.container_call(ref, "Commit", "sa{sv}",
                                         [args.image or "", options])
    props = await follow_job(daemon, job, args.image or args.container, args.quiet)
    print(str(props["Image"]).rsplit("/", 1)[-1])
    return 0
