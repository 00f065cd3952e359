"""pyctr's command line: every verb, flag and help text, and nothing else.

The parser imports no D-Bus code (each verb names its handler as
"module:function", loaded when it runs), so scripts/make-manpage and shell
completion can load it cheaply anywhere.
"""

from __future__ import annotations

import argparse

from pyctrd.cli import flags as podman_flags
from pyctrd.cli import networkflags, registryflags, statsflags, volumeflags

DESCRIPTION = ("Manage pyctrd's containers and images, as podman does, over D-Bus. "
               "Every CONTAINER may be a name, an ID or a unique ID prefix.")
EPILOG = ("Exit status: 125 when pyctrd or the bus fails; run also exits with 126 or 127 "
          "when the container's command cannot be invoked or found, otherwise with the "
          "container's exit code.")


def _handler(parser: argparse.ArgumentParser, handler: str) -> None:
    parser.set_defaults(handler=handler)


def _containers(parser: argparse.ArgumentParser, nargs: str = "*") -> None:
    parser.add_argument("containers", nargs=nargs, metavar="CONTAINER",
                        help="name, ID or unique ID prefix")


def _container_flags(p: argparse.ArgumentParser) -> None:
    """The flags create and run share."""
    p.add_argument("--name", help="the container's name (default: a generated one)")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                   help="set an environment variable; KEY alone copies ours (repeatable)")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside")
    p.add_argument("-u", "--user", metavar="USER[:GROUP]",
                   help="user (name or uid) and optional group to run as")
    p.add_argument("--hostname", help="the container's host name")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE",
                   help="add a label (repeatable)")
    p.add_argument("-v", "--volume", action="append", default=[],
                   metavar="SRC:DST[:OPTIONS]",
                   help="bind-mount host path SRC at DST; OPTIONS such as ro (repeatable)")
    p.add_argument("-m", "--memory", metavar="SIZE",
                   help="memory limit: bytes, or a number with b, k, m or g (512m, 1g)")
    p.add_argument("--cpus", metavar="N", help="CPU limit in CPUs, such as 0.5 or 2")
    p.add_argument("--pids-limit", type=int, metavar="N",
                   help="most processes at once (-1 or 0: no limit)")
    p.add_argument("--network", "--net", metavar="MODE",
                   help="bridge, none, host or a network's name (what the daemon offers)")
    p.add_argument("--read-only", action="store_true",
                   help="mount the root filesystem read-only")
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="security option: no-new-privileges[=true|false] or "
                   "seccomp=unconfined (repeatable)")
    p.add_argument("--privileged", action="store_true",
                   help="all capabilities, the host's devices, no seccomp filter")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                   help="add capabilities, e.g. NET_ADMIN or ALL (repeatable, or "
                   "comma-separated)")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP",
                   help="drop capabilities, e.g. CHOWN or ALL (repeatable, or comma-separated)")
    p.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                   help="a resource limit, e.g. nofile=1024:2048; -1 is unlimited "
                   "(repeatable)")
    p.add_argument("--stop-signal", metavar="SIGNAL",
                   help="signal that stop sends first (default SIGTERM)")
    p.add_argument("--stop-timeout", type=int, metavar="SECONDS",
                   help="seconds stop waits before SIGKILL (default 10)")
    p.add_argument("-t", "--tty", action="store_true", help="give the container a terminal")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="keep the container's stdin open and pass ours to it")
    p.add_argument("--entrypoint", metavar="COMMAND",
                   help="replace the image's entrypoint (a command or a JSON array)")
    podman_flags.add_run_flags(p)
    registryflags.add_pull_flag(p)
    p.add_argument("image", metavar="IMAGE", help="image reference, ID or unique ID prefix")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="command and arguments (default: the image's)")


def _import_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE",
                   help="OCI archive, docker archive or root filesystem tarball; - reads stdin")
    p.add_argument("reference", nargs="?", default="", metavar="REFERENCE",
                   help="name to give the image")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _handler(p, "images:cmd_import")


def _images_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="print image IDs only")
    p.add_argument("--no-trunc", action="store_true", help="print full image IDs")
    podman_flags.add_format(p, "images")
    podman_flags.add_filter(p, podman_flags.IMAGE_FILTER_KEYS)
    podman_flags.add_noheading(p)
    p.add_argument("-a", "--all", action="store_true",
                   help="all images (pyctrd keeps no intermediate ones: the same list)")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--sort", default="created", metavar="KEY",
                   choices=["created", "id", "repository", "size", "tag"],
                   help="created (default), id, repository, size or tag")
    p.add_argument("images", nargs="?", metavar="IMAGE", help="only this name")
    _handler(p, "images:cmd_images")


def _rmi_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true",
                   help="remove the containers using the image too")
    p.add_argument("-a", "--all", action="store_true", help="remove all images")
    p.add_argument("-i", "--ignore", action="store_true",
                   help="no error for an image that does not exist")
    podman_flags.refuse(p, ["--no-prune"], "pyctrd keeps no dangling parent images", False)
    p.add_argument("images", nargs="*", metavar="IMAGE", help="reference, ID or ID prefix")
    _handler(p, "images:cmd_rmi")


def build_parser(lazy: bool = True) -> argparse.ArgumentParser:
    """pyctr's parser; ``lazy``: each verb's arguments made when that verb is used
    (flags.PyctrParser), not now. Walking it (the man page) wants them now."""
    podman_flags.PyctrParser.lazy = lazy
    try:
        return _build_parser()
    finally:
        podman_flags.PyctrParser.lazy = False


def _build_parser() -> argparse.ArgumentParser:
    parser = podman_flags.PyctrParser(prog="pyctr", description=DESCRIPTION, epilog=EPILOG)
    bus = parser.add_mutually_exclusive_group()
    bus.add_argument("--address", metavar="ADDRESS",
                     help="D-Bus address of pyctrd's bus (default: the system bus, "
                     "or $DBUS_SYSTEM_BUS_ADDRESS)")
    bus.add_argument("--user", dest="user_bus", action="store_true",
                     help="talk to your own pyctrd on the session bus")
    parser.add_argument("--varlink", metavar="SOCKET",
                        help="pyctrd's Varlink socket, for the verbs that use it (ps); "
                        "empty: D-Bus only (default: the daemon's own socket when the "
                        "bus is the default one)")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    # images
    _import_flags(sub.add_parser("import", help="import an image from an archive",
                                 description="Import an image: an OCI archive, a docker "
                                 "archive or a root filesystem tarball (gzip or zstd too). "
                                 "Prints its ID."))
    image = sub.add_parser("image", help="manage images (import, ls, rm)")
    image_sub = image.add_subparsers(dest="image_verb", required=True, metavar="COMMAND")
    _import_flags(image_sub.add_parser("import", help="import an image from an archive"))
    _images_flags(image_sub.add_parser("ls", aliases=["list"], help="list images"))
    _rmi_flags(image_sub.add_parser("rm", help="remove images"))
    _images_flags(sub.add_parser("images", help="list images"))
    _rmi_flags(sub.add_parser("rmi", help="remove images"))

    # creating and running
    create = sub.add_parser("create", help="create a container; prints its ID")
    create.add_argument("--cidfile", metavar="FILE", help="write the container's ID to FILE")
    _container_flags(create)
    _handler(create, "run:cmd_create")
    run = sub.add_parser(
        "run", help="create and start a container, attached to its output",
        description="Create and start a container. Without -d, print its output and exit "
        "with its exit code; with -it, give it this terminal.")
    run.add_argument("-d", "--detach", action="store_true",
                     help="run in the background and print the container's ID")
    run.add_argument("--rm", action="store_true", help="remove the container once it exits")
    run.add_argument("--cidfile", metavar="FILE", help="write the container's ID to FILE")
    run.add_argument("--detach-keys", default="", metavar="KEYS",
                     help="keys that detach from an -it container (default ctrl-p,ctrl-q)")
    _container_flags(run)
    _handler(run, "run:cmd_run")
    run.set_defaults(varlink_handler="runvarlink:run_over_varlink")

    # listing and looking
    ps = sub.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true", help="all, not only running ones")
    ps.add_argument("-q", "--quiet", action="store_true", help="print container IDs only")
    ps.add_argument("--no-trunc", action="store_true", help="do not shorten IDs and commands")
    podman_flags.add_ps_flags(ps)
    _handler(ps, "info:cmd_ps")
    ps.set_defaults(varlink_handler="ps:ps_over_varlink")
    inspect = sub.add_parser("inspect", help="print containers' (or images') details as JSON")
    podman_flags.add_inspect_flags(inspect)
    inspect.add_argument("names", nargs="*", metavar="NAME", help="container or image")
    _handler(inspect, "info:cmd_inspect")
    logs = sub.add_parser("logs", help="print a container's output")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until it exits")
    logs.add_argument("-t", "--timestamps", action="store_true", help="show each line's time")
    logs.add_argument("--tail", type=int, metavar="N", help="only the last N lines (-1: all)")
    podman_flags.add_logs_flags(logs)
    _containers(logs)
    _handler(logs, "info:cmd_logs")

    # life cycle
    start = sub.add_parser("start", help="start containers")
    start.add_argument("-a", "--attach", action="store_true",
                       help="print its output and exit with its exit code")
    start.add_argument("-i", "--interactive", action="store_true",
                       help="with -a: pass our stdin to it")
    start.add_argument("--detach-keys", default="", metavar="KEYS",
                       help="keys that detach from a terminal (default ctrl-p,ctrl-q)")
    podman_flags.add_all_latest(start, short_all=False)
    start.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE",
                       help="with --all: only containers matching (as ps --filter)")
    start.add_argument("--sig-proxy", default="true", choices=["true", "false"],
                       metavar="BOOL", help="with -a: pass signals on (pyctr always does)")
    _containers(start)
    _handler(start, "run:cmd_start")
    for verb, what in (("stop", "stop containers: the stop signal, then SIGKILL"),
                       ("restart", "stop containers if running, then start them")):
        p = sub.add_parser(verb, help=what)
        p.add_argument("-t", "--time", type=int, metavar="SECONDS",
                       help="seconds to wait before SIGKILL (default: the container's)")
        podman_flags.add_all_latest(p, ignore=verb == "stop", cidfile=verb == "stop")
        if verb == "restart":
            p.add_argument("--running", action="store_true",
                           help="with --all: only the running ones")
        _containers(p)
        _handler(p, f"lifecycle:cmd_{verb}")
    kill = sub.add_parser("kill", help="send a signal to containers")
    kill.add_argument("-s", "--signal", default="SIGKILL", metavar="SIGNAL",
                      help="name or number (default SIGKILL)")
    podman_flags.add_all_latest(kill, cidfile=True)
    _containers(kill)
    _handler(kill, "lifecycle:cmd_kill")
    for verb, what in (("pause", "freeze all processes of containers"),
                       ("unpause", "thaw paused containers"),
                       ("wait", "wait for containers to exit; print their exit codes")):
        p = sub.add_parser(verb, help=what)
        if verb == "wait":
            podman_flags.add_wait_flags(p)
        else:
            podman_flags.add_all_latest(p, cidfile=True)
        _containers(p)
        _handler(p, f"lifecycle:cmd_{verb}")
    rm = sub.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="stop running ones first")
    podman_flags.add_rm_flags(rm)
    _containers(rm)
    _handler(rm, "lifecycle:cmd_rm")

    # storage
    mount = sub.add_parser("mount", help="mount containers' root filesystems; print where "
                           "(without CONTAINER: list mounted ones)")
    podman_flags.add_mount_flags(mount)
    _containers(mount, nargs="*")
    _handler(mount, "lifecycle:cmd_mount")
    unmount = sub.add_parser("unmount", aliases=["umount"], help="undo mount")
    podman_flags.add_all_latest(unmount)
    unmount.add_argument("-f", "--force", action="store_true",
                         help="unmount however often it was mounted")
    _containers(unmount)
    _handler(unmount, "lifecycle:cmd_unmount")
    export = sub.add_parser("export", help="write a container's root filesystem as a tar")
    export.add_argument("-o", "--output", metavar="FILE", help="file to write (default stdout)")
    export.add_argument("container", metavar="CONTAINER", help="name, ID or unique ID prefix")
    _handler(export, "info:cmd_export")
    podman_flags.add_import_flags(sub.choices["import"])

    # streams
    attach = sub.add_parser("attach", help="join a running container's stdio (or terminal)")
    attach.add_argument("--detach-keys", default="", metavar="KEYS",
                        help="keys that detach (default ctrl-p,ctrl-q)")
    attach.add_argument("--no-stdin", action="store_true", help="do not pass our stdin")
    attach.add_argument("-l", "--latest", action="store_true",
                        help="the container created last (instead of naming one)")
    attach.add_argument("--sig-proxy", default="true", choices=["true", "false"],
                        metavar="BOOL", help="pass signals on (pyctr always does)")
    attach.add_argument("container", nargs="?", metavar="CONTAINER",
                        help="name, ID or unique ID prefix")
    _handler(attach, "run:cmd_attach")
    exec_ = sub.add_parser(
        "exec", help="run a command in a running container",
        description="Run COMMAND in a running container. Exit with its exit code (126 "
        "when it cannot be invoked, 127 when it is not found); with -it, give it this "
        "terminal.")
    exec_.add_argument("-i", "--interactive", action="store_true",
                       help="pass our stdin to the command (its end is the command's)")
    exec_.add_argument("-t", "--tty", action="store_true",
                       help="give the command a terminal (with -i: this one)")
    exec_.add_argument("-d", "--detach", action="store_true",
                       help="run in the background and print the exec session's ID")
    exec_.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                       help="set an environment variable; KEY alone copies ours "
                       "(repeatable)")
    exec_.add_argument("-u", "--user", metavar="USER[:GROUP]",
                       help="user (name or uid) and optional group to run as")
    exec_.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside")
    exec_.add_argument("--detach-keys", default="", metavar="KEYS",
                       help="keys that detach from an -it command (default ctrl-p,ctrl-q)")
    exec_.add_argument("container", metavar="CONTAINER", help="name, ID or unique ID prefix")
    exec_.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                       help="the program and its arguments")
    _handler(exec_, "exec:cmd_exec")
    health = sub.add_parser("healthcheck", help="run containers' health checks")
    health_run = health.add_subparsers(dest="health_verb", metavar="VERB", required=True
                                       ).add_parser(
        "run", help="run a container's health check now",
        description="Run CONTAINER's health check now. Print nothing and exit 0 when it "
        "is healthy; print its status and exit 1 otherwise.")
    health_run.add_argument("container", metavar="CONTAINER",
                            help="name, ID or unique ID prefix")
    _handler(health_run, "health:cmd_healthcheck_run")
    events = sub.add_parser("events", help="print containers' and images' events as they "
                            "happen")
    podman_flags.add_events_flags(events)
    _handler(events, "events:cmd_events")

    podman_flags.add_info_verbs(sub)
    registryflags.add_registry_verbs(sub)
    networkflags.add_network_verbs(sub)
    volumeflags.add_volume_verbs(sub)
    statsflags.add_stats_verb(sub)
    # for the shell completion script; not shown in help
    complete = sub.add_parser("__complete")
    complete.add_argument("kind", choices=["containers", "images"])
    _handler(complete, "complete:cmd_complete")
    podman_flags.add_global_flags(parser)
    podman_flags.add_groups(sub)  # last: `pyctr container …` takes every container verb
    return parser
