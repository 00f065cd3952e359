"""CreateContainer's network options, checked at create (values are well typed
already: pyctrd.ops.options): what only a valid address, name or port may be."""

import ipaddress
import re
from typing import Any

from pyctrd.errors import InvalidArgument

PROTOCOLS = ("tcp", "udp")
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,252})$")
PORTS_MAX = 1024
LIST_MAX = 64


def check_network_options(options: dict[str, Any], mode: str) -> dict[str, Any]:
    """The ContainerConfig fields of the network options, checked."""
    ports = [_port(p) for p in options.get("ports", [])]
    if ports and mode not in ("bridge", "pasta"):
        raise InvalidArgument(f"ports can only be published on a bridge or pasta network, not with "
                              f"network {mode!r}")
    if len(ports) > PORTS_MAX:
        raise InvalidArgument(f"at most {PORTS_MAX} published ports")
    dns = [_address("dns", a) for a in options.get("dns", [])]
    dns_search = [_name("dns_search", d) for d in options.get("dns_search", [])]
    add_hosts = [(_name("add_hosts", n), _address("add_hosts", a))
                 for n, a in options.get("add_hosts", [])]
    aliases = [_name("network_aliases", a) for a in options.get("network_aliases", [])]
    for what, items in (("dns", dns), ("dns_search", dns_search), ("add_hosts", add_hosts),
                        ("network_aliases", aliases)):
        if len(items) > LIST_MAX * (16 if what == "add_hosts" else 1):
            raise InvalidArgument(f"{what}: too many entries")
    if aliases and mode != "bridge":
        raise InvalidArgument(f"network_aliases need a bridge network, not network {mode!r}")
    return {"ports": ports, "dns": dns, "dns_search": dns_search, "add_hosts": add_hosts,
            "network_aliases": aliases}


def _port(port: tuple[str, int, int, str]) -> tuple[str, int, int, str]:
    host_ip, host_port, container_port, protocol = port
    if protocol not in PROTOCOLS:
        raise InvalidArgument(f"port protocol {protocol!r}: use 'tcp' or 'udp'")
    if not 1 <= container_port <= 65535 or not 0 <= host_port <= 65535:
        raise InvalidArgument(f"port {host_port}:{container_port}: container ports are "
                              "1..65535, host ports 0 (pick one)..65535")
    if host_ip:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise InvalidArgument(f"port host_ip {host_ip[:100]!r} is not an IPv4 "
                                  "address") from None
    return (host_ip, host_port, container_port, protocol)


def _address(what: str, value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidArgument(f"{what}: {value[:100]!r} is not an IP address") from None


def _name(what: str, value: str) -> str:
    if not _NAME.match(value):
        raise InvalidArgument(f"{what}: {value[:100]!r} is not a valid name (letters, "
                              "digits, '-', '_' and '.')")
    return value
