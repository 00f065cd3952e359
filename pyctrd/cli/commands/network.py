"""network create/ls/inspect/rm and port, as podman's."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dbus_fast import Variant

from pyctrd.cli.bus import Daemon
from pyctrd.cli.commands import for_each
from pyctrd.cli.errors import CliError
from pyctrd.ops.names import NETWORK_IFACE


def _labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, _sep, value = item.partition("=")
        if not key:
            raise CliError(f'invalid --label "{item}": give KEY=VALUE')
        labels[key] = value
    return labels


async def cmd_network_create(daemon: Daemon, args: argparse.Namespace) -> int:
    options: dict[str, Variant] = {}
    if args.subnet:
        options["subnet"] = Variant("s", args.subnet)
    if args.gateway:
        options["gateway"] = Variant("s", args.gateway)
    if args.internal:
        options["internal"] = Variant("b", True)
    if args.disable_dns:
        options["dns"] = Variant("b", False)
    if args.label:
        options["labels"] = Variant("a{ss}", _labels(args.label))
    await daemon.manager("CreateNetwork", "sa{sv}", [args.name, options])
    print(args.name)
    return 0


async def _network(daemon: Daemon, name: str) -> dict[str, Any]:
    (path,) = await daemon.manager("GetNetwork", "s", [name])
    return await daemon.properties(path, NETWORK_IFACE)


def podman_inspect(props: dict[str, Any]) -> dict[str, Any]:
    """podman network inspect's shape (netavark's network JSON)."""
    return {
        "name": props["Name"], "id": props["Id"], "driver": props["Driver"],
        "subnets": [{"subnet": props["Subnet"], "gateway": props["Gateway"]}],
        "ipv6_enabled": False, "internal": props["Internal"],
        "dns_enabled": props["DNSEnabled"], "labels": props["Labels"],
        "ipam_options": {"driver": "host-local"}, "containers": props["Containers"],
    }


NETWORK_LS_DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Subnet}}"
NETWORK_HEADERS = {"ID": "NETWORK ID"}


def network_item(props: dict[str, Any], no_trunc: bool = True) -> Any:
    """A network as podman's templates see it (netavark's Network fields)."""
    from pyctrd.cli.reports import GoStruct
    inspected = podman_inspect(props)
    return GoStruct("types.Network", {
        "Name": props["Name"], "ID": props["Id"] if no_trunc else props["Id"][:12],
        "Driver": props["Driver"], "Subnet": props["Subnet"],
        "Subnets": [GoStruct("types.Subnet", {"Subnet": s["subnet"], "Gateway": s["gateway"]})
                    for s in inspected["subnets"]],
        "Internal": props["Internal"], "DNSEnabled": props["DNSEnabled"],
        "Labels": props["Labels"], "Containers": props["Containers"],
    }, json_form=inspected)


async def cmd_network_ls(daemon: Daemon, args: argparse.Namespace) -> int:
    from pyctrd.cli.gotemplate import Report
    report = Report(args.format, NETWORK_LS_DEFAULT, NETWORK_HEADERS,
                    json_of=lambda item: item.json_form, noheading=args.noheading)
    (rows,) = await daemon.manager("ListNetworks")
    if args.quiet:
        for _nid, name, _subnet, _path in rows:
            print(name)
        return 0
    items = [network_item(await daemon.properties(path, NETWORK_IFACE), args.no_trunc)
             for _nid, _name, _subnet, path in rows]
    print(report.lines(items), end="")
    return 0


async def cmd_network_inspect(daemon: Daemon, args: argparse.Namespace) -> int:
    from pyctrd.cli.gotemplate import render
    found: list[Any] = []

    async def one(name: str) -> None:
        found.append(network_item(await _network(daemon, name)))

    status = await for_each(args.networks, one, "inspect")
    if args.format and args.format != "json":
        print(render(args.format.rstrip("\n") + "\n", found), end="")
    else:
        print(json.dumps([item.json_form for item in found], indent=4))
    return status


async def cmd_network_rm(daemon: Daemon, args: argparse.Namespace) -> int:
    async def one(name: str) -> None:
        await daemon.manager("RemoveNetwork", "sb", [name, args.force])
        print(name)

    return await for_each(args.networks, one, "rm")


async def cmd_port(daemon: Daemon, args: argparse.Namespace) -> int:
    ref = await daemon.container(args.container)
    props = await daemon.container_properties(ref)
    wanted = args.private or ""
    if wanted and "/" not in wanted:
        wanted += "/tcp"
    for host_ip, host_port, container_port, proto in props.get("Ports", []):
        key = f"{container_port}/{proto}"
        if wanted and key != wanted:
            continue
        print(f"{key} -> {host_ip or '0.0.0.0'}:{host_port}")
    return 0
