"""pyctr's volume verbs on the command line (volume create/ls/inspect/rm/prune/exists),
as podman's; no D-Bus code here (pyctrd.cli.parser's rule)."""

from __future__ import annotations

from typing import Any


def add_volume_verbs(sub: Any) -> None:
    volume = sub.add_parser("volume", help="manage named volumes (create, ls, inspect, rm, "
                            "prune)")
    verbs = volume.add_subparsers(dest="volume_verb", required=True, metavar="COMMAND")

    create = verbs.add_parser("create", help="create a volume; prints its name")
    create.add_argument("-d", "--driver", default="local", choices=("local",),
                        help="local (the only one)")
    create.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("-o", "--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="driver options (the local driver takes none here)")
    create.add_argument("--ignore", action="store_true",
                        help="no error if the volume exists already")
    create.add_argument("name", nargs="?", default="", metavar="NAME",
                        help="default: a generated one")
    create.set_defaults(handler="volume:cmd_volume_create")

    ls = verbs.add_parser("ls", aliases=["list"], help="list volumes")
    ls.add_argument("-q", "--quiet", action="store_true", help="names only")
    ls.add_argument("--format", default="", metavar="FORMAT",
                    help="json, or a Go template ({{.Name}}, {{.Driver}}, {{.Mountpoint}})")
    ls.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="name=, label=KEY[=VALUE], driver=local, dangling=true|false")
    ls.add_argument("-n", "--noheading", action="store_true", help="no header row")
    ls.set_defaults(handler="volume:cmd_volume_ls")

    inspect = verbs.add_parser("inspect", help="print volumes' details as JSON")
    inspect.add_argument("-a", "--all", action="store_true", help="every volume")
    inspect.add_argument("-f", "--format", default="", metavar="FORMAT",
                         help="json, or a Go template")
    inspect.add_argument("volumes", nargs="*", metavar="VOLUME")
    inspect.set_defaults(handler="volume:cmd_volume_inspect")

    rm = verbs.add_parser("rm", aliases=["remove"], help="remove volumes and their data")
    rm.add_argument("-a", "--all", action="store_true", help="every volume")
    rm.add_argument("-f", "--force", action="store_true",
                    help="remove the containers that use it first")
    rm.add_argument("-t", "--time", type=int, default=None, metavar="SECONDS",
                    help="accepted as podman's (containers go at once with --force)")
    rm.add_argument("volumes", nargs="*", metavar="VOLUME")
    rm.set_defaults(handler="volume:cmd_volume_rm")

    prune = verbs.add_parser("prune", help="remove every volume no container uses")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask")
    prune.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                       help="label=KEY[=VALUE], label!=KEY[=VALUE]")
    prune.set_defaults(handler="volume:cmd_volume_prune")

    exists = verbs.add_parser("exists", help="exit 0 if the volume exists, else 1")
    exists.add_argument("name", metavar="VOLUME")
    exists.set_defaults(handler="volume:cmd_volume_exists")
