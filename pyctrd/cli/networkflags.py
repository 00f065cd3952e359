"""pyctr's network verbs on the command line (network create/ls/inspect/rm, port);
no D-Bus code here (pyctrd.cli.parser's rule)."""

from __future__ import annotations

from typing import Any


def add_network_verbs(sub: Any) -> None:
    network = sub.add_parser("network", help="manage networks (create, ls, inspect, rm)")
    verbs = network.add_subparsers(dest="network_verb", required=True, metavar="COMMAND")

    create = verbs.add_parser("create", help="create a bridge network; prints its name")
    create.add_argument("--subnet", metavar="CIDR",
                        help="default: the next free /24 in 10.86.0.0/16")
    create.add_argument("--gateway", metavar="ADDRESS", help="default: the subnet's first")
    create.add_argument("--internal", action="store_true", help="no route out")
    create.add_argument("--disable-dns", action="store_true",
                        help="containers do not resolve each other by name")
    create.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("-d", "--driver", default="bridge", choices=("bridge",),
                        help="bridge (the only one)")
    create.add_argument("name", metavar="NAME")
    create.set_defaults(handler="network:cmd_network_create")

    ls = verbs.add_parser("ls", aliases=["list"], help="list networks")
    ls.add_argument("-q", "--quiet", action="store_true", help="names only")
    ls.add_argument("--format", default="", metavar="FORMAT",
                    help="json or a Go template ({{.Name}}, {{.ID}}, {{.Driver}}, ...)")
    ls.add_argument("--noheading", action="store_true", help="no header row")
    ls.add_argument("--no-trunc", action="store_true", help="full network IDs")
    ls.set_defaults(handler="network:cmd_network_ls")

    inspect = verbs.add_parser("inspect", help="print networks' details as JSON")
    inspect.add_argument("-f", "--format", default="", metavar="FORMAT",
                         help="json (the default) or a Go template per network")
    inspect.add_argument("networks", nargs="+", metavar="NETWORK")
    inspect.set_defaults(handler="network:cmd_network_inspect")

    rm = verbs.add_parser("rm", aliases=["remove"], help="remove networks")
    rm.add_argument("-f", "--force", action="store_true",
                    help="stop the containers on it and take them off it first")
    rm.add_argument("networks", nargs="+", metavar="NETWORK")
    rm.set_defaults(handler="network:cmd_network_rm")

    port = sub.add_parser("port", help="list a container's published ports")
    port.add_argument("container", metavar="CONTAINER")
    port.add_argument("private", nargs="?", metavar="PORT[/PROTO]",
                      help="only this container port")
    port.set_defaults(handler="network:cmd_port")
