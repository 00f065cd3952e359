"""Networks: the catalogue (the default ``pyctrd`` and user bridges), address
leases, published host ports, and each container's attachment through the
NetworkPort (netavark).

Like podman with netavark, pyctrd does the IPAM itself: a container's
addresses are chosen here, saved in its status before netavark is asked
(durable first: a crash leaves a record that recovery tears down), and
handed to netavark as static IPs. Network definitions are JSON files under
the state root, as podman keeps /etc/containers/networks; the default
network is not stored and cannot be removed.
"""

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyctrd.core.config import now_us
from pyctrd.core.ports import NetworkPort
from pyctrd.errors import Exists, InvalidArgument, NoSuchNetwork, RuntimeFailed

log = logging.getLogger(__name__)

DEFAULT_NAME = "pyctrd"
DEFAULT_SUBNET = "10.87.0.0/16"  # not podman's 10.88.0.0/16: both can run on one host
DEFAULT_BRIDGE = "pyctrd0"
AUTO_POOL = ipaddress.IPv4Network("10.86.0.0/16")  # user networks' automatic /24s
MODE_BRIDGE, MODE_NONE, MODE_HOST = "bridge", "none", "host"
MODE_PASTA = "pasta"  # a user's own daemon's default (core/pastanet.py)
DNS_DOMAIN = "dns.podman"  # what aardvark-dns answers under, as podman's
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
RANDOM_FROM = 1024  # subnets with more hosts hand out addresses from a random place
_RESOLV_CONF = Path("/etc/resolv.conf")


@dataclass
class Network:
    id: str
    name: str
    subnet: str
    gateway: str
    interface: str  # the bridge
    internal: bool = False
    dns_enabled: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    created: int = 0
    driver: str = "bridge"
    # Not stored: the IDs of the containers on it (from their status), kept by Networks.
    members: set[str] = field(default_factory=set, compare=False)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_NAME

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        del record["members"]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Network":
        return cls(**{k: v for k, v in record.items() if k != "members"})

    def netavark_info(self) -> dict[str, Any]:
        """netavark's network definition (podman's network JSON)."""
        return {
            "name": self.name, "id": self.id, "driver": self.driver,
            "network_interface": self.interface,
            "subnets": [{"subnet": self.subnet, "gateway": self.gateway}],
            "ipv6_enabled": False, "internal": self.internal,
            "dns_enabled": self.dns_enabled, "ipam_options": {"driver": "host-local"},
        }


def default_network() -> Network:
    subnet = ipaddress.ip_network(DEFAULT_SUBNET)
    return Network(id=hashlib.sha256(DEFAULT_NAME.encode()).hexdigest(), name=DEFAULT_NAME,
                   subnet=DEFAULT_SUBNET, gateway=str(subnet.network_address + 1),
                   interface=DEFAULT_BRIDGE, dns_enabled=False)


@dataclass(frozen=True)
class PublishedPort:
    host_ip: str
    host_port: int
    container_port: int
    protocol: str


@dataclass
class Attachment:
    """What a container's Init needs from its network: the namespace for the spec,
    the files to bind-mount, and the status to save."""

    netns: Path
    addresses: dict[str, str]
    published: list[PublishedPort]
    etc_files: dict[str, Path]  # destination in the container → file in the bundle


class Attachable(Protocol):
    """What of a container its network attachment reads (core.container.Container)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> Any: ...

    @property
    def status(self) -> Any: ...

    @property
    def bundle(self) -> Path: ...


class NetworkListener(Protocol):
    def network_added(self, network: Network) -> None: ...
    def network_removed(self, network: Network) -> None: ...
    def network_changed(self, network: Network, fields: list[str]) -> None: ...


class Networks:
    """Every network, the address and port leases, and attaching containers."""

    def __init__(self, directory: Path, netns_dir: Path, port: NetworkPort) -> None:
        self.directory = directory
        self.netns_dir = netns_dir
        self.port = port
        self._listeners: list[NetworkListener] = []
        self.networks: dict[str, Network] = {}
        self._names: dict[str, str] = {}
        # network name → address → container id; (ip, port, proto) → container id
        self._leases: dict[str, dict[str, str]] = {}
        self._ports: dict[tuple[str, int, str], str] = {}
        # netavark edits shared state (bridges, iptables chains, aardvark's files):
        # one call at a time, and leases are taken under the same lock.
        self._lock = asyncio.Lock()

    def add_listener(self, listener: NetworkListener) -> None:
        self._listeners.append(listener)

    def _emit(self, event: str, *args: Any) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, event)(*args)
            except Exception:
                log.exception("a network listener failed on %s", event)

    # catalogue

    def load(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._add(default_network())
        for path in sorted(self.directory.glob("*.json")):
            try:
                network = Network.from_record(json.loads(path.read_text()))
            except Exception:
                log.exception("network file %s cannot be read; skipped", path)
                continue
            self._add(network)

    def adopt(self, containers: Iterable[Attachable]) -> None:
        """After recovery: the leases and members of the containers attached now."""
        for container in containers:
            for name in container.status.networks:
                if name in self._names:
                    self.networks[self._names[name]].members.add(container.id)
            if not container.status.netns:
                continue
            for name, address in container.status.addresses.items():
                self._leases.setdefault(name, {})[address] = container.id
            for host_ip, host_port, _cport, proto in container.status.published:
                self._ports[(host_ip, host_port, proto)] = container.id

    def _add(self, network: Network) -> None:
        self.networks[network.id] = network
        self._names[network.name] = network.id

    def lookup(self, name_or_id: str) -> Network:
        nid = self._names.get(name_or_id)
        if nid is None and name_or_id in self.networks:
            nid = name_or_id
        if nid is None and len(name_or_id) >= 3:
            matches = [i for i in self.networks if i.startswith(name_or_id)]
            if len(matches) == 1:
                nid = matches[0]
        if nid is None:
            raise NoSuchNetwork(f"no network has the name or ID {name_or_id!r}; list the "
                                "networks to see which exist")
        return self.networks[nid]

    def resolve_mode(self, network: str) -> tuple[str, list[str]]:
        """CreateContainer's ``network`` → (mode, network names)."""
        if network in (MODE_NONE, MODE_HOST):
            return network, []
        if network in (MODE_BRIDGE, ""):
            return MODE_BRIDGE, [DEFAULT_NAME]
        return MODE_BRIDGE, [self.lookup(network).name]

    def create(self, name: str, options: dict[str, Any]) -> Network:
        if not NAME_RE.match(name):
            raise InvalidArgument(f"invalid network name {name!r}: use letters, digits, "
                                  "'_', '.' and '-', starting with a letter or digit")
        if name in (MODE_BRIDGE, MODE_NONE, MODE_HOST, MODE_PASTA):
            raise InvalidArgument(f"{name!r} is a network mode, not a name a network may "
                                  "have; choose another name")
        if name in self._names:
            raise Exists(f"a network named {name!r} exists already; choose another name")
        subnet = self._subnet(options.get("subnet", ""))
        gateway = self._gateway(subnet, options.get("gateway", ""))
        network = Network(id=secrets.token_hex(32), name=name, subnet=str(subnet),
                          gateway=str(gateway), interface=self._bridge_name(),
                          internal=bool(options.get("internal", False)),
                          dns_enabled=bool(options.get("dns", True)),
                          labels=dict(options.get("labels", {})), created=now_us())
        path = self.directory / f"{network.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(network.to_record()))
        os.replace(tmp, path)
        self._add(network)
        self._emit("network_added", network)
        return network

    def users(self, network: Network) -> set[str]:
        return set(network.members)

    def delete(self, network: Network) -> None:
        """Forget ``network`` (the caller has detached its containers)."""
        if network.is_default:
            raise InvalidArgument(f"the default network {DEFAULT_NAME!r} cannot be removed")
        with contextlib.suppress(FileNotFoundError):
            (self.directory / f"{network.id}.json").unlink()
        self.networks.pop(network.id, None)
        self._names.pop(network.name, None)
        self._leases.pop(network.name, None)
        self._emit("network_removed", network)

    def joined(self, cid: str, names: Iterable[str]) -> None:
        """A container now lists ``names`` (at create)."""
        for name in names:
            self._members_change(name, cid, True)

    def left(self, cid: str, names: Iterable[str]) -> None:
        for name in names:
            self._members_change(name, cid, False)

    def _members_change(self, name: str, cid: str, joining: bool) -> None:
        nid = self._names.get(name)
        if nid is None:
            return
        network = self.networks[nid]
        if joining:
            network.members.add(cid)
        else:
            network.members.discard(cid)
        self._emit("network_changed", network, ["members"])

    def _subnet(self, given: str) -> ipaddress.IPv4Network:
        taken = [ipaddress.IPv4Network(n.subnet) for n in self.networks.values()]
        if given:
            try:
                subnet = ipaddress.IPv4Network(given)
            except ValueError as err:
                raise InvalidArgument(f"subnet {given!r} is not an IPv4 CIDR: {err}") from None
            if subnet.prefixlen > 30:
                raise InvalidArgument(f"subnet {given!r}: an IPv4 network of /30 or "
                                      "larger is needed")
            clash = [str(t) for t in taken if t.overlaps(subnet)]
            if clash:
                raise InvalidArgument(f"subnet {given} overlaps the network with subnet "
                                      f"{clash[0]}; choose another")
            return subnet
        taken += host_routes()
        for candidate in AUTO_POOL.subnets(new_prefix=24):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
        raise InvalidArgument(f"no free /24 is left in {AUTO_POOL}; pass a subnet")

    @staticmethod
    def _gateway(subnet: ipaddress.IPv4Network, given: str) -> ipaddress.IPv4Address:
        if not given:
            return subnet.network_address + 1
        try:
            gateway = ipaddress.IPv4Address(given)
        except ValueError as err:
            raise InvalidArgument(f"gateway {given!r}: {err}") from None
        if gateway not in subnet or gateway in (subnet.network_address,
                                                subnet.broadcast_address):
            raise InvalidArgument(f"gateway {given} is not a host address of {subnet}")
        return gateway

    def _bridge_name(self) -> str:
        used = {n.interface for n in self.networks.values()}
        for number in range(1, 10_000):
            name = f"{DEFAULT_BRIDGE[:-1]}{number}"
            if name not in used and not Path("/sys/class/net", name).exists():
                return name
        raise InvalidArgument("no free bridge name is left")

    # attaching containers

    def netns_path(self, cid: str) -> Path:
        return self.netns_dir / cid

    async def attach(self, container: Attachable,
                     save: Callable[..., None]) -> Attachment:
        """Make the container's namespace and network; ``save(**status)`` records the
        leases before netavark runs. On failure nothing is left."""
        networks = [self.lookup(name) for name in container.status.networks]
        netns = self.netns_path(container.id)
        async with self._lock:
            addresses = {n.name: self._lease(n, container.id) for n in networks}
            try:
                published = [self._publish(p, container.id)
                             for p in container.config.ports]
            except BaseException:
                self._release(container.id, addresses, [])
                raise
            save(netns=str(netns), addresses=addresses,
                 published=[[p.host_ip, p.host_port, p.container_port, p.protocol]
                            for p in published])
            try:
                await self.port.create_netns(netns)
                answer = await self.port.setup(netns, self._request(
                    container, networks, addresses, published))
            except BaseException:
                await self._teardown(container, networks, addresses, published, netns)
                self._release(container.id, addresses, published)
                save(netns="", addresses={}, published=[])
                raise
        etc = write_etc_files(container, networks, addresses, answer)
        return Attachment(netns, addresses, published, etc)

    async def detach(self, container: Attachable, save: Callable[..., None]) -> None:
        """Undo attach (after the exit, a failed Init, or at removal); repeatable."""
        status = container.status
        if not status.netns:
            return
        netns = Path(status.netns)
        networks = [self.networks[self._names[name]] for name in status.addresses
                    if name in self._names]
        published = [PublishedPort(*p) for p in status.published]
        async with self._lock:
            await self._teardown(container, networks, dict(status.addresses), published,
                                 netns)
            self._release(container.id, dict(status.addresses), published)
        save(netns="", addresses={}, published=[])

    async def _teardown(self, container: Attachable, networks: list[Network],
                        addresses: dict[str, str], published: list[PublishedPort],
                        netns: Path) -> None:
        if networks and self.port.netns_exists(netns):
            try:
                await self.port.teardown(netns, self._request(container, networks,
                                                              addresses, published))
            except RuntimeFailed as err:
                # Half set up, or torn down already: what remains goes with the namespace.
                log.warning("container %s: netavark teardown: %s", container.name, err)
        await self.port.remove_netns(netns)

    def _request(self, container: Attachable, networks: list[Network],
                 addresses: dict[str, str], published: list[PublishedPort]) -> dict[str, Any]:
        config = container.config
        aliases = [config.hostname, *config.network_aliases]
        return {
            "container_id": container.id,
            "container_name": container.name,
            "port_mappings": [{"host_ip": p.host_ip, "container_port": p.container_port,
                               "host_port": p.host_port, "range": 1, "protocol": p.protocol}
                              for p in published],
            "networks": {n.name: {"static_ips": [addresses[n.name]],
                                  "interface_name": f"eth{i}",
                                  "aliases": [container.name, *aliases]}
                         for i, n in enumerate(networks)},
            "network_info": {n.name: n.netavark_info() for n in networks},
        }

    def _lease(self, network: Network, cid: str) -> str:
        subnet = ipaddress.IPv4Network(network.subnet)
        leases = self._leases.setdefault(network.name, {})
        first, size = int(subnet.network_address) + 1, subnet.num_addresses - 2
        # A large subnet (the default network's /16) is shared by every daemon on the
        # host (tests run several): scanning from a random place makes two of them
        # handing out one address unlikely. A small one is scanned from its start.
        start = secrets.randbelow(size) if size > RANDOM_FROM else 0
        for offset in range(size):
            address = str(ipaddress.IPv4Address(first + (start + offset) % size))
            if address != network.gateway and address not in leases:
                leases[address] = cid
                return address
        raise RuntimeFailed(f"network {network.name} ({network.subnet}) has no free "
                            "address left; stop a container on it or use another network")

    def _publish(self, port: tuple[str, int, int, str], cid: str) -> PublishedPort:
        host_ip, host_port, container_port, protocol = port
        if host_port == 0:
            host_port = free_port(host_ip, protocol)
        key = (host_ip, host_port, protocol)
        owner = self._ports.get(key) or self._ports.get(("", host_port, protocol))
        if owner is None and host_ip == "":
            owner = next((c for (_ip, p, proto), c in self._ports.items()
                          if p == host_port and proto == protocol), None)
        if owner is not None or not port_free(host_ip, host_port, protocol):
            raise RuntimeFailed(f"host port {host_ip or '0.0.0.0'}:{host_port}/{protocol} "
                                "is already in use; publish another port or free it")
        self._ports[key] = cid
        return PublishedPort(host_ip, host_port, container_port, protocol)

    def _release(self, cid: str, addresses: dict[str, str],
                 published: list[PublishedPort]) -> None:
        for name, address in addresses.items():
            if self._leases.get(name, {}).get(address) == cid:
                del self._leases[name][address]
        for p in published:
            key = (p.host_ip, p.host_port, p.protocol)
            if self._ports.get(key) == cid:
                del self._ports[key]


def host_routes() -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes (/proc/net/route), which a new subnet must not shadow."""
    routes: list[ipaddress.IPv4Network] = []
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return routes
    for line in lines:
        parts = line.split()
        if len(parts) < 8:
            continue
        dest = int(parts[1], 16).to_bytes(4, "little")
        mask = int(parts[7], 16).to_bytes(4, "little")
        if mask == b"\0\0\0\0":
            continue  # the default route covers everything; it is no collision
        with contextlib.suppress(ValueError):
            routes.append(ipaddress.IPv4Network(
                f"{socket.inet_ntoa(dest)}/{socket.inet_ntoa(mask)}", strict=False))
    return routes


def _socket_type(protocol: str) -> int:
    return socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM


def free_port(host_ip: str, protocol: str) -> int:
    """A port the kernel says is free now (podman's way for host_port 0)."""
    with socket.socket(socket.AF_INET, _socket_type(protocol)) as sock:
        sock.bind((host_ip, 0))
        return int(sock.getsockname()[1])


def port_free(host_ip: str, host_port: int, protocol: str) -> bool:
    with socket.socket(socket.AF_INET, _socket_type(protocol)) as sock:
        try:
            sock.bind((host_ip, host_port))
        except OSError:
            return False
    return True


def host_nameservers() -> tuple[list[str], list[str]]:
    """(nameservers, search domains) of the host's resolv.conf; loopback resolvers
    are left out (unreachable from a container's own namespace)."""
    servers: list[str] = []
    search: list[str] = []
    try:
        text = _RESOLV_CONF.read_text()
    except OSError:
        return servers, search
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            with contextlib.suppress(ValueError):
                if not ipaddress.ip_address(parts[1]).is_loopback:
                    servers.append(parts[1])
        elif parts and parts[0] == "search":
            search = parts[1:]
    return servers, search


def resolv_conf(dns: list[str], dns_search: list[str], network_dns: list[str],
                network_search: list[str]) -> str:
    """The container's /etc/resolv.conf: the network's DNS (aardvark-dns) first,
    then the caller's or the host's nameservers."""
    host_servers, host_search = host_nameservers()
    servers = [*network_dns, *(dns or host_servers)]
    search = [*network_search, *(dns_search or host_search)]
    lines = []
    if search:
        lines.append("search " + " ".join(dict.fromkeys(search)))
    lines += [f"nameserver {s}" for s in dict.fromkeys(servers)]
    return "\n".join(lines) + "\n"


def hosts_file(names: list[str], addresses: list[str], add_hosts: list[tuple[str, str]],
               gateway: str) -> str:
    lines = ["127.0.0.1\tlocalhost localhost.localdomain",
             "::1\tlocalhost localhost.localdomain"]
    lines += [f"{address}\t{name}" for name, address in add_hosts]
    for address in addresses:
        lines.append(f"{address}\t{' '.join(dict.fromkeys(names))}")
    if gateway:
        lines.append(f"{gateway}\thost.containers.internal")
    return "\n".join(lines) + "\n"


def write_etc_files(container: Attachable, networks: list[Network],
                    addresses: dict[str, str], answer: dict[str, Any]) -> dict[str, Path]:
    """/etc/resolv.conf, /etc/hosts and /etc/hostname in the bundle, to bind-mount."""
    config = container.config
    network_dns: list[str] = []
    network_search: list[str] = []
    for network in networks:
        info = answer.get(network.name) or {}
        if network.dns_enabled:
            network_dns += info.get("dns_server_ips") or [network.gateway]
            network_search += info.get("dns_search_domains") or [DNS_DOMAIN]
    files = {
        "/etc/resolv.conf": resolv_conf(config.dns, config.dns_search, network_dns,
                                        network_search),
        "/etc/hosts": hosts_file([config.hostname, container.name],
                                 list(addresses.values()),
                                 [tuple(h) for h in config.add_hosts],
                                 networks[0].gateway if networks else ""),
        "/etc/hostname": config.hostname + "\n",
    }
    return write_bundle_files(container.bundle, files)


def write_bundle_files(bundle: Path, files: dict[str, str]) -> dict[str, Path]:
    """Each text as a file in the bundle (for the spec to bind-mount at its key)."""
    written = {}
    for destination, text in files.items():
        path = bundle / os.path.basename(destination)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        written[destination] = path
    return written
