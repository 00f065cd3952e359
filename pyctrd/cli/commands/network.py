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


async def cmd_network_ls(daemon: Daemon, args: argparse.Namespace) -> int:
    (rows,) = await daemon.manager("ListNetworks")
    if args.quiet:
        for _nid, name, _subnet, _path in rows:
            print(name)
        return 0
    if args.format == "json":
        found = [podman_inspect(await daemon.properties(path, NETWORK_IFACE))
                 for _nid, _name, _subnet, path in rows]
        print(json.dumps(found, indent=4))
        return 0
    if args.format:
        raise CliError(f'--format "{args.format}": pyctr network ls knows json only')
    print(f"{'NETWORK ID':<14}{'NAME':<24}{'DRIVER':<10}SUBNET")
    for nid, name, subnet, _path in rows:
        print(f"{nid[:12]:<14}{name:<24}{'bridge':<10}{subnet}")
    return 0


async def cmd_network_inspect(daemon: Daemon, args: argparse.Namespace) -> int:
    found: list[dict[str, Any]] = []

    async def one(name: str) -> None:
        found.append(podman_inspect(await _network(daemon, name)))

    status = await for_each(args.networks, one, "inspect")
    print(json.dumps(found, indent=4))
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
