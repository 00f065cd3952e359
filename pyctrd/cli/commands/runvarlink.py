"""run over Varlink, for the common case: no -i, no -t. Blocking calls on one
socket and a select loop over the log; neither asyncio nor dbus-fast is
imported (they were a quarter of `pyctr run --rm ... true`).

The same steps as the D-Bus path (commands/run.py cmd_run), with its
options (cli/options.py), messages and exit statuses. VarlinkUnavailable
hands the command to D-Bus; it is raised only before anything shows: for
-i/-t, an image to pull, options without a Varlink form, an older daemon,
or an authorization Varlink cannot ask for (polkit would ask over D-Bus).
Refused after Create, the container is removed again first.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
from collections.abc import Iterator
from typing import Any

from pyctrd.cli import detachkeys
from pyctrd.cli.cidfile import check_cidfile, write_cidfile
from pyctrd.cli.commands import print_error
from pyctrd.cli.commands.ps import ACTIVE
from pyctrd.cli.errors import CliError, DaemonError, about, name_in_use, run_exit_status
from pyctrd.cli.format import SHORT_ID
from pyctrd.cli.logrecords import output_for, parse_record
from pyctrd.cli.options import container_command, varlink_create_options
from pyctrd.cli.sigproxy import GIVE_UP_AFTER, PROXIED_SIGNALS
from pyctrd.cli.varlinkclient import VarlinkClient, VarlinkHungUp, VarlinkUnavailable
from pyctrd.errors import (
    AccessDenied,
    AmbiguousId,
    Exists,
    InteractiveAuthorizationRequired,
    NoSuchContainer,
    NoSuchImage,
)
from pyctrd.ops.options import OPTIONS

CONTAINER = "io.pyctrd.Container"
IMAGE = "io.pyctrd.Image"
READ_CHUNK = 1 << 16


def refused(err: DaemonError) -> bool:
    """Refused for want of an authorization D-Bus may still get (it can ask)."""
    return err.is_a(AccessDenied, InteractiveAuthorizationRequired)


class Run:
    """One `pyctr run` on one Varlink connection."""

    def __init__(self, client: VarlinkClient, args: argparse.Namespace) -> None:
        self.client = client
        self.args = args
        self.id = ""
        self.given = ""
        self.cidfile_written = False
        self.undone = False  # removed again, for D-Bus to do it all

    def call(self, method: str, **parameters: Any) -> dict[str, Any]:
        return self.client.call_once(method, parameters)

    # -- before anything exists: every refusal hands over to D-Bus

    def image_entrypoint(self, found: dict[str, Any] | None) -> list[str]:
        args = self.args
        if not args.command or args.entrypoint is not None:
            return []
        image = found or self.call(f"{IMAGE}.Get", reference=args.image)["image"]
        return list(image.get("entrypoint") or [])

    def ensure_image(self) -> dict[str, Any] | None:
        """--pull: "never" looks nothing up; "missing" finds it here or leaves the
        pull (and its progress) to D-Bus, as "always" and "newer"."""
        policy = getattr(self.args, "pull", None) or "missing"
        if policy == "never":
            return None
        if policy != "missing":
            raise VarlinkUnavailable(f"--pull {policy}")
        try:
            image: dict[str, Any] = self.call(f"{IMAGE}.Get", reference=self.args.image)["image"]
        except DaemonError as err:
            if err.is_a(NoSuchImage):
                raise VarlinkUnavailable("the image is to be pulled") from None
            raise
        return image

    def create(self, options: dict[str, Any]) -> None:
        args = self.args
        found = self.ensure_image()
        check_cidfile(args.cidfile)
        if args.replace:
            if not args.name:
                raise CliError("cannot replace container without --name being set")
            try:
                self.call(f"{CONTAINER}.Remove", name=args.name, force=True)
            except DaemonError as err:
                if refused(err):
                    raise VarlinkUnavailable(err.text) from None
                if not err.is_a(NoSuchContainer):
                    raise
        try:
            argv = container_command(args, self.image_entrypoint(found))
            created = self.call(f"{CONTAINER}.Create", image=args.image, command=argv,
                                options=options)
        except VarlinkHungUp as err:
            if not self.client.replies:  # refused at accept (a limit): nothing made
                raise
            # It may have been created: D-Bus would make a second one.
            raise CliError(f"pyctrd hung up during the create ({err}); see `pyctr ps -a` "
                           "before running it again") from None
        except DaemonError as err:
            if refused(err):
                raise VarlinkUnavailable(err.text) from None
            if err.is_a(NoSuchImage, AmbiguousId):
                raise CliError(about(args.image, err)) from None
            if err.is_a(Exists) and args.name:
                text = err.text
                with contextlib.suppress(CliError):  # podman names the owner by its full ID
                    owner = self.call(f"{CONTAINER}.Get", name=args.name)["container"]
                    text = f"container {owner['id']}"
                raise CliError(name_in_use(args.name, text)) from None
            raise
        self.id = created["id"]
        self.given = args.name or self.id[:SHORT_ID]

    def undo(self) -> None:
        """Created, then refused what D-Bus may be allowed: as if never made."""
        self.undone = True
        if self.cidfile_written:
            with contextlib.suppress(OSError):
                os.unlink(self.args.cidfile)
        with contextlib.suppress(CliError, VarlinkUnavailable):
            self.call(f"{CONTAINER}.Remove", name=self.id, force=True)

    @contextlib.contextmanager
    def undone_if_refused(self) -> Iterator[None]:
        try:
            yield
        except DaemonError as err:
            if not refused(err):
                raise
            self.undo()
            raise VarlinkUnavailable(err.text) from None
        except VarlinkUnavailable:  # an older daemon without the method
            self.undo()
            raise

    # -- once it has started

    def follow(self, log_fd: int) -> int | None:
        """Print its log records, each to its stream, until it exits, passing our
        signals on to it; None if the user gave up following (the third ctrl-c)."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = {signum: signal.signal(signum, _ignore) for signum in PROXIED_SIGNALS}
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        interrupts = 0
        pending = b""
        try:
            while True:
                ready = select.select([log_fd, wake_r], [], [])[0]
                if wake_r in ready:
                    for signum in os.read(wake_r, 256):
                        self.kill(signum)
                        interrupts += signum == signal.SIGINT
                    if interrupts >= GIVE_UP_AFTER:
                        print(f"\npyctr: no longer following {self.given}; it keeps running",
                              file=sys.stderr)
                        return None
                if log_fd not in ready:
                    continue
                chunk = os.read(log_fd, READ_CHUNK)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    _print_record(line)
            if pending:
                _print_record(pending)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_r)
            os.close(wake_w)
        return int(self.call(f"{CONTAINER}.Wait", name=self.id)["exit_code"])

    def kill(self, signum: int) -> None:
        with contextlib.suppress(CliError, VarlinkUnavailable, ValueError):
            self.call(f"{CONTAINER}.Kill", name=self.id, signal=signal.Signals(signum).name)

    def remove_after_run(self, detached: bool) -> None:
        if detached:  # only then may it still run
            state = ""
            with contextlib.suppress(CliError, VarlinkUnavailable):
                state = self.call(f"{CONTAINER}.Get", name=self.id)["container"]["state"]
            if state in ACTIVE:
                print(f"{self.given} keeps running; remove it with `pyctr rm -f {self.given}`",
                      file=sys.stderr)
                return
        try:
            self.call(f"{CONTAINER}.Remove", name=self.id, force=True)
        except CliError as err:
            print_error(about(self.given, err))


def _ignore(signum: int, frame: Any) -> None:
    """A handler, so that the signal reaches the wakeup pipe and kills nothing here."""


def _print_record(line: bytes) -> None:
    _stamp, stream, text = parse_record(line)
    out = output_for(stream)
    out.write(text + b"\n")
    out.flush()


def run_over_varlink(client: VarlinkClient, args: argparse.Namespace) -> int:
    if args.interactive or args.tty:
        raise VarlinkUnavailable("-i/-t: attached over D-Bus")
    if args.detach and args.rm and "auto_remove" not in OPTIONS:
        raise VarlinkUnavailable("--rm -d: D-Bus says why not")
    detachkeys.parse(args.detach_keys)  # refuse bad keys before creating anything
    options = varlink_create_options(args)
    if options is None:
        raise VarlinkUnavailable("an option without a Varlink form")
    run = Run(client, args)
    run.create(options)
    return started(run)


def started(run: Run) -> int:
    """Start what ``run`` created and follow it; the exit status."""
    args = run.args
    code: int | None = None
    log_fd = -1
    try:
        with run.undone_if_refused():
            if not args.detach:
                # Followed only once started (before, it ends at once); asked now too,
                # so that a refusal (or a daemon without it) still hands over to D-Bus.
                os.close(run.client.call_for_fd(f"{CONTAINER}.OpenLog", {
                    "name": run.id, "follow": False}))
            write_cidfile(args.cidfile, run.id)
            run.cidfile_written = bool(args.cidfile)
            try:
                run.call(f"{CONTAINER}.Start", name=run.id)
            except DaemonError as err:
                if refused(err):
                    raise
                print_error(about(run.given, err))
                return run_exit_status(err)
        if args.detach:
            print(run.id)
            return 0
        log_fd = run.client.call_for_fd(f"{CONTAINER}.OpenLog", {
            "name": run.id, "follow": True})
        code = run.follow(log_fd)
        return 0 if code is None else code
    except VarlinkUnavailable as err:
        if run.undone:
            raise
        raise CliError(f"pyctrd's Varlink socket: {err}") from None  # too late for D-Bus
    finally:
        if log_fd >= 0:
            os.close(log_fd)
        if args.rm and not args.detach and not run.undone:
            run.remove_after_run(detached=code is None)
