"""podman's flags on pyctr's parser: the one-line parser, flag families shared by
several verbs (--all/--latest/--ignore/--cidfile, --format/--filter/--noheading),
and flags pyctr knows but refuses, each with its reason.

Standard library only: scripts/make-manpage and completion load the parser
anywhere. Other verbs' modules call these helpers for their own flags.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

EXIT_ENGINE = 125  # as pyctrd.cli.errors (not imported: that pulls in pyctrd.ops)

# Start-up: argparse looks its own words up in gettext's catalogues ~140 times while
# pyctr's ~45 parsers are built (7 ms of a 17 ms build); the answers cannot change
# within one process, so they are kept.
argparse._ = functools.lru_cache(maxsize=None)(argparse._)  # type: ignore[attr-defined]


@functools.cache
def _columns() -> int:
    """shutil.get_terminal_size().columns - 2, as argparse's HelpFormatter takes it
    (shutil itself loads bz2 and lzma: 1.3 ms of every pyctr run)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


class PyctrParser(argparse.ArgumentParser):
    """argparse with podman's manners: a usage error is one line and exit 125.

    Built ``lazy`` (build_parser's default), a parser records its add_argument and
    set_defaults calls and makes them when it is first used (parsing, help): one
    command uses one verb's parser, and building all ~400 arguments cost every
    pyctr command 4 ms. A parser that gets subcommands or groups is made at once,
    so that its arguments keep their order.
    """

    verb_prog = "pyctr"  # the innermost parser that ran: the verb a bad flag was given to
    lazy = False  # set while build_parser builds

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorded: list[tuple[str, tuple[Any, ...], dict[str, Any]]] | None = (
            [] if PyctrParser.lazy else None)

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        recorded = getattr(self, "_recorded", None)  # None too while __init__ runs
        if recorded is None:
            return super().add_argument(*args, **kwargs)
        recorded.append(("add_argument", args, kwargs))
        return None

    def set_defaults(self, **kwargs: Any) -> None:
        recorded = getattr(self, "_recorded", None)
        if recorded is None:
            super().set_defaults(**kwargs)
        else:
            recorded.append(("set_defaults", (), kwargs))

    def make(self) -> None:
        """Make the recorded calls, in their order (once)."""
        recorded = getattr(self, "_recorded", None)  # None too while __init__ runs
        self._recorded = None
        for name, args, kwargs in recorded or ():
            getattr(argparse.ArgumentParser, name)(self, *args, **kwargs)

    def add_subparsers(self, **kwargs: Any) -> Any:
        self.make()
        return super().add_subparsers(**kwargs)

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Any:
        self.make()
        return super().add_argument_group(*args, **kwargs)

    def add_mutually_exclusive_group(self, **kwargs: Any) -> Any:
        self.make()
        return super().add_mutually_exclusive_group(**kwargs)

    def format_usage(self) -> str:
        self.make()
        return super().format_usage()

    def format_help(self) -> str:
        self.make()
        return super().format_help()

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes one per add_argument, each asking the terminal's size (3 ms)
        return self.formatter_class(prog=self.prog, width=_columns())  # type: ignore[call-arg]

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self.make()
        PyctrParser.verb_prog = self.prog
        namespace, extras = super().parse_known_args(args, namespace)
        # podman takes names after flags too (`stop --ignore a -t 0 b`); argparse
        # fills a list positional from one run of words only, leaving "b" over
        if extras and not any(e.startswith("-") for e in extras):
            lists = [a for a in self._actions if not a.option_strings
                     and a.nargs in ("*", "+")]
            if len(lists) == 1 and isinstance(getattr(namespace, lists[0].dest, None), list):
                getattr(namespace, lists[0].dest).extend(extras)
                extras = []
        return namespace, extras

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ENGINE, f"Error: {podman_message(self.verb_prog, message)}\n")


def podman_message(prog: str, message: str) -> str:
    """argparse's words → podman's, one line."""
    if message.startswith("unrecognized arguments: "):
        words = message.removeprefix("unrecognized arguments: ").split()
        flags = [w for w in words if w.startswith("-")]
        if flags:
            flag = flags[0].split("=")[0]
            reason = refusal(prog, flag)
            if reason:
                return f"{flag}: {reason}"
            return f"unknown flag: {flag} (see `{prog} --help`)"
        return f"{prog} takes no arguments {' '.join(words)} (see `{prog} --help`)"
    if message.startswith("argument COMMAND: invalid choice: "):
        word = message.split("'")[1] if "'" in message else message
        return f"unrecognized command `{prog} {word}` (see `{prog} --help`)"
    if message.startswith("the following arguments are required: "):
        what = message.removeprefix("the following arguments are required: ")
        if what.startswith("COMMAND"):
            return f"missing command (see `{prog} --help`)"
        return f"{prog} needs {what} (see `{prog} --help`)"
    if message.startswith("argument "):
        # "argument -t/--time: invalid int value: 'x'"
        # → 'invalid argument "x" for "-t, --time" flag'
        head, _, rest = message.removeprefix("argument ").partition(": ")
        flag = head.replace("/", ", ")
        if rest.startswith("invalid ") and " value: " in rest:
            value = rest.split(" value: ", 1)[1].strip("'")
            return f'invalid argument "{value}" for "{flag}" flag'
        if rest == "expected one argument":
            return f"flag needs an argument: {head.split('/')[-1]}"
        return f"{flag}: {rest}"
    return message


def refusal(prog: str, flag: str) -> str:
    """Why pyctr refuses podman's ``flag`` on the verb ``prog`` ("" if it is unknown)."""
    for where in (prog, "pyctr"):
        for names, reason in REFUSED.get(where, []):
            if flag in names:
                return reason
    return ""


class _Refused(argparse.Action):
    """A podman flag pyctr knows but cannot honour: one line naming it, exit 125."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.exit(EXIT_ENGINE, f"Error: {option_string}: {self.help_reason}\n")

    help_reason = ""


def refuse(p: argparse.ArgumentParser, names: Sequence[str], reason: str,
           takes_value: bool = True, parsed: bool = False) -> None:
    """Register podman's flag ``names`` so that using it says why pyctr cannot.

    Usually only recorded: argparse finds the flag unknown and the one-line error
    names the reason (no argparse action to build, so start-up stays quick). A
    ``parsed`` one is a real argument: for the global flags whose value would
    otherwise be taken for the verb."""
    if parsed:
        action = p.add_argument(*names, nargs=None if takes_value else 0, action=_Refused,
                                help=argparse.SUPPRESS, metavar="VALUE",
                                dest="refused_" + names[-1].lstrip("-"),
                                default=argparse.SUPPRESS)
        action.help_reason = reason  # type: ignore[attr-defined]
    entry = (tuple(names), reason)
    if entry not in REFUSED.setdefault(p.prog, []):
        REFUSED[p.prog].append(entry)


# prog → the refused flags and reasons (for README's table and the tests)
REFUSED: dict[str, list[tuple[tuple[str, ...], str]]] = {}


def is_tty_stdout() -> bool:
    return sys.stdout.isatty()


# -- families


def add_all_latest(p: argparse.ArgumentParser, what: str = "containers", *, all_: bool = True,
                   latest: bool = True, ignore: bool = False, cidfile: bool = False,
                   short_all: bool = True) -> None:
    if all_:
        p.add_argument(*(["-a"] if short_all else []), "--all", action="store_true",
                       help=f"all {what}")
    if latest:
        p.add_argument("-l", "--latest", action="store_true",
                       help="the container created last (instead of naming one)")
    if ignore:
        p.add_argument("-i", "--ignore", action="store_true",
                       help="no error for a container that does not exist")
    if cidfile:
        p.add_argument("--cidfile", action="append", default=[], metavar="FILE",
                       help="read the container's ID from FILE (repeatable)")


def add_format(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--format", default="", metavar="FORMAT",
                   help=f"json, or a Go template over {what}' fields, such as "
                   "'{{.ID}} {{.Names}}' or 'table {{.ID}}\\t{{.Status}}'")


def add_filter(p: argparse.ArgumentParser, keys: Sequence[str]) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help=f"only those matching (repeatable; keys: {', '.join(keys)})")


def add_noheading(p: argparse.ArgumentParser) -> None:
    p.add_argument("--noheading", "-n", action="store_true", help="no header row")


# -- create and run

# podman run/create flags pyctr cannot honour, and why. A flag whose CreateContainer
# option exists in the daemon's schema is not here (see options.py ADAPTIVE).
RUN_REFUSED: list[tuple[tuple[str, ...], str, bool]] = [
    (("--pod",), "pyctrd has no pods", True),
    (("--pod-id-file",), "pyctrd has no pods", True),
    (("--userns",), "pyctrd's system daemon runs containers without user namespaces", True),
    (("--uidmap",), "pyctrd's system daemon runs containers without user namespaces", True),
    (("--gidmap",), "pyctrd's system daemon runs containers without user namespaces", True),
    (("--subuidname",), "pyctrd's system daemon runs containers without user namespaces",
     True),
    (("--subgidname",), "pyctrd's system daemon runs containers without user namespaces",
     True),
    (("--ipc",), "pyctrd gives each container its own IPC namespace", True),
    (("--pid",), "pyctrd gives each container its own PID namespace", True),
    (("--uts",), "pyctrd gives each container its own UTS namespace", True),
    (("--cgroupns",), "pyctrd gives each container its own cgroup namespace", True),
    (("--cgroup-parent",), "pyctrd places every container's cgroup itself", True),
    (("--cgroups",), "pyctrd always makes a cgroup per container", True),
    (("--device",), "pyctrd passes no host devices (--privileged gives them all)", True),
    (("--device-cgroup-rule",), "pyctrd passes no host devices", True),
    (("--gpus",), "pyctrd passes no GPUs", True),
    (("--platform", "--arch", "--os", "--variant"),
     "pyctrd's create uses the stored image as it is", True),
    (("--systemd",), "pyctrd does not set up systemd inside containers", True),
    (("--init",), "pyctrd runs no init process in containers", False),
    (("--init-path",), "pyctrd runs no init process in containers", True),
    (("--tmpfs",), "pyctrd mounts no tmpfs at a container's request yet", True),
    (("--volumes-from",), "pyctr does not copy another container's mounts; give its "
     "volumes with -v NAME:/path", True),
    (("--log-opt",), "pyctrd keeps every container's log in its own k8s-file log", True),
    (("--tz",), "pyctrd does not set a container's time zone; mount /etc/localtime with -v",
     True),
    (("--timeout",), "pyctrd has no run-time limit for containers", True),
    (("--cpu-shares", "-c"), "pyctrd sets CPU limits with --cpus only", True),
    (("--cpu-period",), "pyctrd sets CPU limits with --cpus only", True),
    (("--cpu-quota",), "pyctrd sets CPU limits with --cpus only", True),
    (("--cpu-rt-period",), "pyctrd sets CPU limits with --cpus only", True),
    (("--cpu-rt-runtime",), "pyctrd sets CPU limits with --cpus only", True),
    (("--cpuset-cpus",), "pyctrd sets CPU limits with --cpus only", True),
    (("--cpuset-mems",), "pyctrd sets CPU limits with --cpus only", True),
    (("--memory-reservation",), "pyctrd sets memory limits with --memory only", True),
    (("--memory-swap",), "pyctrd sets memory limits with --memory only", True),
    (("--memory-swappiness",), "pyctrd sets memory limits with --memory only", True),
    (("--kernel-memory",), "pyctrd sets memory limits with --memory only", True),
    (("--oom-kill-disable",), "pyctrd does not change the kernel's OOM killer", False),
    (("--oom-score-adj",), "pyctrd does not change the kernel's OOM killer", True),
    (("--shm-size",), "pyctrd does not size /dev/shm", True),
    (("--sysctl",), "pyctrd sets no sysctls", True),
    (("--blkio-weight",), "pyctrd sets no block I/O limits", True),
    (("--blkio-weight-device",), "pyctrd sets no block I/O limits", True),
    (("--device-read-bps",), "pyctrd sets no block I/O limits", True),
    (("--device-write-bps",), "pyctrd sets no block I/O limits", True),
    (("--device-read-iops",), "pyctrd sets no block I/O limits", True),
    (("--device-write-iops",), "pyctrd sets no block I/O limits", True),
    (("--group-add",), "pyctrd takes the groups of -u USER[:GROUP] only", True),
    (("--annotation",), "pyctr does not pass annotations yet (the D-Bus option "
     "`annotations` does)", True),
    (("--env-file",), "pyctr takes -e only", True),
    (("--env-host",), "pyctr takes -e only", False),
    (("--label-file",), "pyctr takes -l only", True),
    (("--secret",), "pyctrd has no secrets", True),
    (("--image-volume",), "pyctrd always gives an image's VOLUME paths anonymous "
     "volumes", True),
    (("--rootfs",), "pyctrd runs images only", False),
    (("--personality",), "pyctrd sets no execution domain", True),
    (("--preserve-fds",), "the bus passes no descriptors to a container's command", True),
    (("--sdnotify",), "pyctrd does not relay sd_notify", True),
    (("--seccomp-policy",), "pyctrd takes seccomp through --security-opt", True),
    (("--chrootdirs",), "pyctrd has no chroot directories", True),
    (("--passwd-entry",), "pyctrd does not edit /etc/passwd", True),
    (("--hostuser",), "pyctrd does not edit /etc/passwd", True),
    (("--no-hosts",), "pyctrd writes no /etc/hosts to leave out", False),
    (("--requires",), "pyctrd has no container dependencies", True),
    (("--workdir-create",), "pyctrd has no such option", False),
    (("--health-on-failure",), "pyctrd has no health actions", True),
    (("--health-startup-cmd",), "pyctrd has no startup health checks", True),
    (("--conmon-pidfile",), "pyctrd keeps conmon's PID itself", True),
    (("--decryption-key",), "pyctrd stores no encrypted images", True),
    (("--attach", "-a"), "pyctr's run is attached to stdout and stderr (and stdin with -i) "
     "always, or detached with -d", True),
    (("--sig-proxy",), "pyctr's run always passes signals on", True),
    (("--expose",), "pyctrd publishes ports with -p only", True),
    (("--publish-all", "-P"), "pyctrd publishes ports with -p only", False),
    (("--mac-address",), "pyctrd does not set MAC addresses", True),
    (("--ip", "--ip6"), "pyctrd assigns addresses itself", True),
]

CONTAINER_FILTER_KEYS = ("id", "name", "label", "label!", "exited", "status", "ancestor",
                         "before", "since", "until", "network", "health", "restart-policy")
IMAGE_FILTER_KEYS = ("reference", "before", "since", "dangling", "label", "label!", "id",
                     "until", "readonly", "containers")
EVENT_FILTER_KEYS = ("container", "event", "status", "image", "type", "label", "network")

# run/create flags whose CreateContainer option the daemon may or may not have yet
# (options.py sends them if its schema has the option, and refuses them otherwise)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """podman's run/create flags beyond the core ones in parser.py."""
    p.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
                   help="publish a container port on the host (repeatable)")
    p.add_argument("--dns", action="append", default=[], metavar="ADDRESS",
                   help="a nameserver for the container (repeatable)")
    p.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN",
                   help="a search domain (repeatable)")
    p.add_argument("--add-host", action="append", default=[], metavar="NAME:IP",
                   help="an extra /etc/hosts line (repeatable)")
    p.add_argument("--network-alias", action="append", default=[], metavar="ALIAS",
                   help="another name on the network (repeatable)")
    p.add_argument("--restart", metavar="POLICY",
                   help="no, on-failure[:N], always or unless-stopped")
    p.add_argument("--health-cmd", metavar="COMMAND",
                   help="health check command (a shell line or a JSON array)")
    p.add_argument("--health-interval", metavar="DURATION",
                   help="time between checks, such as 30s (disable: no checks by timer)")
    p.add_argument("--health-timeout", metavar="DURATION", help="time a check may take")
    p.add_argument("--health-retries", type=int, metavar="N",
                   help="failures before unhealthy")
    p.add_argument("--health-start-period", metavar="DURATION",
                   help="time after start during which failures do not count")
    p.add_argument("--no-healthcheck", action="store_true", help="no health check")
    p.add_argument("--mount", action="append", default=[], metavar="type=bind,src=S,dst=D",
                   help="a bind mount, as -v (type=bind only; readonly/ro as an option)")
    p.add_argument("--log-driver", metavar="DRIVER",
                   help="k8s-file (pyctrd's one log driver; others are refused)")
    p.add_argument("--replace", action="store_true",
                   help="remove a container of the same --name first")
    for names, reason, takes_value in RUN_REFUSED:
        refuse(p, names, reason, takes_value)
    refuse(p, ["--dns-option", "--dns-opt"], "pyctrd writes nameservers and search "
           "domains only", True)
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no pull progress")


def add_ps_flags(ps: argparse.ArgumentParser) -> None:
    add_format(ps, "containers")
    add_filter(ps, CONTAINER_FILTER_KEYS)
    ps.add_argument("--noheading", action="store_true", help="no header row")
    ps.add_argument("-n", "--last", type=int, default=-1, metavar="N",
                    help="the N containers created last (all states)")
    ps.add_argument("-l", "--latest", action="store_true",
                    help="the container created last (all states)")
    ps.add_argument("--sort", default="created", metavar="KEY",
                    choices=["command", "created", "id", "image", "names", "runningfor",
                             "status"],
                    help="command, created (default), id, image, names, runningfor, status")
    ps.add_argument("--external", action="store_true",
                    help="also containers made by other tools (pyctrd has none)")
    ps.add_argument("--sync", action="store_true",
                    help="sync with the runtime first (pyctrd's state always is)")
    refuse(ps, ["-s", "--size"], "pyctrd does not measure containers' disk use", False)
    refuse(ps, ["-p", "--pod"], "pyctrd has no pods", False)
    refuse(ps, ["--ns"], "pyctrd does not list namespaces", False)
    refuse(ps, ["-w", "--watch"], "use `pyctr events` to follow changes", True)


def add_inspect_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default="", metavar="FORMAT",
                   help="json (default) or a Go template, such as '{{.State.Status}}'")
    p.add_argument("-t", "--type", default="all", metavar="TYPE",
                   choices=["all", "container", "image"],
                   help="container, image or all (the default)")
    p.add_argument("-l", "--latest", action="store_true",
                   help="the container created last (instead of naming one)")
    refuse(p, ["-s", "--size"], "pyctrd does not measure containers' disk use", False)


def add_logs_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="TIME",
                   help="only lines since TIME (a timestamp, Unix seconds or a duration "
                   "such as 10m)")
    p.add_argument("--until", metavar="TIME", help="only lines before TIME (as --since)")
    p.add_argument("-n", "--names", action="store_true",
                   help="prefix each line with its container's name")
    p.add_argument("-l", "--latest", action="store_true",
                   help="the container created last (instead of naming one)")
    refuse(p, ["--color"], "pyctr does not colour output", False)


def add_wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--condition", action="append", default=[], metavar="STATE",
                   help="wait until one of these states: stopped/exited (the default), "
                   "running, paused, created")
    p.add_argument("-i", "--interval", default="250ms", metavar="DURATION",
                   help="how often to look at other conditions (default 250ms)")
    p.add_argument("--ignore", action="store_true",
                   help="print -1 for a container that does not exist")
    p.add_argument("-l", "--latest", action="store_true",
                   help="the container created last (instead of naming one)")


def add_rm_flags(p: argparse.ArgumentParser) -> None:
    add_all_latest(p, ignore=True, cidfile=True)
    p.add_argument("-t", "--time", type=int, metavar="SECONDS",
                   help="with --force: seconds to wait before SIGKILL (default: the "
                   "container's)")
    p.add_argument("-v", "--volumes", action="store_true",
                   help="remove its anonymous volumes (pyctrd removes them with the "
                   "container anyway)")
    refuse(p, ["--depend"], "pyctrd has no container dependencies", False)


def add_mount_flags(p: argparse.ArgumentParser) -> None:
    add_all_latest(p)
    p.add_argument("--format", default="", metavar="FORMAT", choices=["", "json"],
                   help="json, or (the default) ID and mount point per line")
    p.add_argument("--no-trunc", "--notruncate", dest="no_trunc", action="store_true",
                   help="full container IDs")


def add_import_flags(p: argparse.ArgumentParser) -> None:
    for names, reason in ((["-c", "--change"], "pyctrd's import keeps the archive's "
                           "configuration as it is"),
                          (["-m", "--message"], "pyctrd's images keep no history"),
                          (["--os"], "pyctrd's import keeps the archive's platform"),
                          (["--arch"], "pyctrd's import keeps the archive's platform"),
                          (["--variant"], "pyctrd's import keeps the archive's platform")):
        refuse(p, names, reason, True)


def add_events_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="", metavar="FORMAT",
                   help="json, or a Go template over the events' fields (.Time, .Type, "
                   ".Status, .ID, .Name, .Image, .Attributes)")
    add_filter(p, EVENT_FILTER_KEYS)
    p.add_argument("--since", metavar="TIME",
                   help="events since TIME (needs pyctrd's event history)")
    p.add_argument("--until", metavar="TIME",
                   help="events until TIME (needs pyctrd's event history)")
    p.add_argument("--stream", default="true", metavar="BOOL", choices=["true", "false"],
                   help="false: print the history and exit (needs pyctrd's event history)")
    p.add_argument("--no-trunc", default="true", metavar="BOOL", choices=["true", "false"],
                   help="false: short IDs")


def add_global_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--noout", action="store_true", help="print nothing on stdout")
    parser.add_argument("--log-level", default="warn", metavar="LEVEL",
                        choices=["trace", "debug", "info", "warn", "warning", "error",
                                 "fatal", "panic"],
                        help="accepted for podman's scripts (pyctr logs nothing of its own)")
    parser.add_argument("-v", "--version", action=_Version, nargs=0,
                        help="print pyctr's version and exit")
    for names, reason in ((["--connection", "-c"], "pyctr chooses pyctrd with --address or "
                           "--user"),
                          (["--url", "--host", "-H"], "pyctr chooses pyctrd with --address "
                           "or --user"),
                          (["--identity"], "pyctr talks to pyctrd over D-Bus, not ssh"),
                          (["--root"], "pyctrd's configuration chooses its store"),
                          (["--runroot"], "pyctrd's configuration chooses its run root"),
                          (["--storage-driver"], "pyctrd uses overlay"),
                          (["--storage-opt"], "pyctrd's configuration sets its storage"),
                          (["--runtime"], "pyctrd's configuration chooses its runtime"),
                          (["--cgroup-manager"], "pyctrd manages cgroups itself"),
                          (["--events-backend"], "pyctrd's events come over the bus"),
                          (["--network-backend"], "pyctrd uses netavark"),
                          (["--tmpdir"], "pyctrd's configuration chooses its paths"),
                          (["--module"], "pyctr reads no containers.conf modules")):
        refuse(parser, names, reason, True, parsed=True)
    for names, reason in ((["--remote", "-r"], "pyctr always talks to pyctrd remotely, "
                           "over D-Bus"),
                          (["--syslog"], "pyctr logs nothing of its own")):
        refuse(parser, names, reason, False)


class _Version(argparse.Action):
    """--version, reading the package metadata only when asked (it costs 20 ms)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.exit(0, f"pyctr version {_version()}\n")


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("pyctrd")
    except Exception:  # run from a checkout without metadata
        return "0.1.0"


def add_info_verbs(sub: Any) -> None:
    """info, version and `system info|df`."""
    info_help = "show pyctrd's and the host's facts"
    for verb_sub, name in ((sub, "info"),):
        info = verb_sub.add_parser(name, help=info_help)
        _info_flags(info)
    version = sub.add_parser("version", help="show pyctr's and pyctrd's versions")
    add_format(version, "the versions")
    version.set_defaults(handler="system:cmd_version")
    system = sub.add_parser("system", help="pyctrd as a whole (info, df)")
    system_sub = system.add_subparsers(dest="system_verb", required=True, metavar="COMMAND")
    _info_flags(system_sub.add_parser("info", help=info_help))
    df = system_sub.add_parser("df", help="show the disk space images and containers use")
    add_format(df, "the rows")
    df.add_argument("-v", "--verbose", action="store_true", help="one row per image and "
                    "container")
    df.set_defaults(handler="system:cmd_df")


def _info_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default="", metavar="FORMAT",
                   help="json, or a Go template such as '{{.Host.Hostname}}' (default: "
                   "YAML-like text)")
    p.add_argument("-D", "--debug", action="store_true", help="(podman: more) the same")
    p.set_defaults(handler="system:cmd_info")


# podman's `container` group: these verbs, under the same names (and aliases)
CONTAINER_VERBS = ("attach", "create", "exec", "export", "kill", "logs", "mount", "pause",
                   "port", "restart", "rm", "run", "start", "stats", "stop", "top",
                   "unmount", "umount", "unpause", "wait", "commit", "healthcheck")
IMAGE_VERBS = ("pull", "push", "save", "tag", "untag", "history")


def add_groups(sub: Any) -> None:
    """`pyctr container …` and `pyctr image …` as podman's: the same parsers as the
    top-level verbs (whatever verbs exist when the parser is built), plus the
    group-only verbs (ls, inspect, exists)."""
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    container = sub.add_parser("container", help="manage containers (every container verb)")
    group = container.add_subparsers(dest="container_verb", required=True,
                                     metavar="COMMAND")
    for verb in CONTAINER_VERBS:
        if verb in sub.choices:
            _share(group, verb, sub.choices[verb], helps.get(verb, ""))
    for alias in ("ps", "ls", "list"):
        _share(group, alias, sub.choices["ps"], helps["ps"])
    inspect = group.add_parser("inspect", help="print containers' details")
    add_inspect_flags(inspect)
    inspect.add_argument("names", nargs="*", metavar="NAME", help="container")
    inspect.set_defaults(handler="info:cmd_inspect", type="container")
    exists = group.add_parser("exists", help="exit 0 if the container exists, else 1")
    exists.add_argument("name", metavar="CONTAINER")
    exists.set_defaults(handler="system:cmd_container_exists")

    image_group = None
    for action in sub.choices["image"]._actions:
        if isinstance(action, argparse._SubParsersAction):
            image_group = action
    assert image_group is not None
    for verb in IMAGE_VERBS:
        if verb in sub.choices and verb not in image_group.choices:
            _share(image_group, verb, sub.choices[verb], helps.get(verb, ""))
    if "inspect" not in image_group.choices:
        inspect = image_group.add_parser("inspect", help="print images' details")
        add_inspect_flags(inspect)
        inspect.add_argument("names", nargs="*", metavar="NAME", help="image")
        inspect.set_defaults(handler="info:cmd_inspect", type="image")
    if "exists" not in image_group.choices:
        exists = image_group.add_parser("exists", help="exit 0 if the image exists, else 1")
        exists.add_argument("name", metavar="IMAGE")
        exists.set_defaults(handler="system:cmd_image_exists")


def _share(group: Any, name: str, parser: argparse.ArgumentParser, help_text: str) -> None:
    """Make ``parser`` (a top-level verb's) a verb of ``group`` too."""
    listed = parser in group._name_parser_map.values()
    group._name_parser_map[name] = parser
    if listed and name not in ("ps", "ls", "list"):  # an alias (umount): no line of its own
        return
    group._choices_actions.append(
        argparse._SubParsersAction._ChoicesPseudoAction(name, (), help_text))
