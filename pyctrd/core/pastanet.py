"""Networking of a user's own daemon (rootless): one pasta per container.

As podman 5's default for rootless containers, the default network mode
("bridge", or "pasta" by name) gives each container its own namespace that a
pasta process (the PastaPort) connects to the host through the daemon's
user's sockets: the container gets a copy of the host's address and routes,
its published ports are bound on the host, its DNS goes to the host's
resolver. There is no bridge between containers, so no user networks, no
joining a named network and no aliases: those are NotSupported here.

As core/networks.py does for netavark, the state is saved before pasta runs
(netns, address, published ports: recovery tears down what a crash left),
and the pasta's pid file under ``pid_dir`` finds it again after a restart.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from pyctrd.core.networks import (
    MODE_BRIDGE,
    MODE_HOST,
    MODE_NONE,
    MODE_PASTA,
    Attachable,
    Attachment,
    PublishedPort,
    free_port,
    hosts_file,
    port_free,
    resolv_conf,
    write_bundle_files,
)
from pyctrd.core.ports import PastaPort
from pyctrd.core.state import ACTIVE, State
from pyctrd.errors import InvalidArgument, NotSupported, RuntimeFailed

log = logging.getLogger(__name__)

WHAT_WORKS = ("a user's own daemon gives each container its own pasta network (the "
              "default) with ports published on the host (-p), or network \"host\" or "
              "\"none\"")
NO_USER_NETWORKS = ("they need a bridge between containers, which only root's daemon "
                    f"can make (netavark); {WHAT_WORKS}")


def rootless_options(options: dict[str, Any]) -> dict[str, Any]:
    """CreateContainer's options for a user's own daemon: the default network is
    pasta; what pasta cannot give is NotSupported, saying what works instead."""
    network = options.get("network", MODE_BRIDGE) or MODE_BRIDGE
    if network in (MODE_NONE, MODE_HOST):
        return options
    if network not in (MODE_BRIDGE, MODE_PASTA):
        raise NotSupported(f"network {network!r}: a user's own daemon has no user "
                           f"networks: {NO_USER_NETWORKS}")
    if options.get("network_aliases"):
        raise NotSupported("network_aliases: a pasta network has no DNS between "
                           f"containers to answer them; {WHAT_WORKS}")
    return {**options, "network": MODE_PASTA}


def refuse_pasta_as_root(network: str) -> None:
    if network == MODE_PASTA:
        raise InvalidArgument("network \"pasta\" is a user's own daemon's network (rootless); "
                              "root's containers use bridge networks: leave network out, "
                              "or name a network, or use \"host\" or \"none\"")


class Revivable(Attachable, Protocol):
    """What of a container a revival reads besides (core.container.Container)."""

    @property
    def lock(self) -> asyncio.Lock: ...

    @property
    def state(self) -> State: ...


class PastaNetworks:
    """Attaching containers to pasta, and the host ports they hold."""

    def __init__(self, netns_dir: Path, pid_dir: Path, port: PastaPort) -> None:
        self.netns_dir = netns_dir
        self.pid_dir = pid_dir
        self.port = port
        self._ports: dict[tuple[str, int, str], str] = {}  # (ip, port, proto) → cid
        self._reviving: set[asyncio.Task[None]] = set()

    def adopt(self, containers: Iterable[Attachable]) -> None:
        """After a restart: the host ports of the containers set up now."""
        for container in containers:
            if container.config.network == MODE_PASTA and container.status.netns:
                for host_ip, host_port, _cport, proto in container.status.published:
                    self._ports[(host_ip, host_port, proto)] = container.id

    def netns_path(self, cid: str) -> Path:
        return self.netns_dir / cid

    def pid_file(self, cid: str) -> Path:
        return self.pid_dir / f"{cid}.pid"

    async def attach(self, container: Attachable, save: Callable[..., None]) -> Attachment:
        """The container's namespace with its pasta running; ``save(**status)``
        records it first. On failure nothing is left."""
        published = self._publish_all(container)
        address, gateway = self.port.host_route()
        netns = self.netns_path(container.id)
        save(netns=str(netns), addresses={MODE_PASTA: address},
             published=[[p.host_ip, p.host_port, p.container_port, p.protocol]
                        for p in published])
        try:
            await self.port.create_netns(netns)
            await self.port.start(netns, [(p.host_ip, p.host_port, p.container_port,
                                           p.protocol) for p in published],
                                  self.pid_file(container.id))
        except BaseException:
            await self._teardown(container.id, netns)
            self._release(container.id, published)
            save(netns="", addresses={}, published=[])
            raise
        etc = write_bundle_files(container.bundle, self._etc_files(container, address,
                                                                   gateway))
        return Attachment(netns, {MODE_PASTA: address}, published, etc)

    async def detach(self, container: Attachable, save: Callable[..., None]) -> None:
        """Stop its pasta and remove its namespace; repeatable."""
        status = container.status
        if not status.netns:
            return
        await self._teardown(container.id, Path(status.netns))
        self._release(container.id, [PublishedPort(*p) for p in status.published])
        save(netns="", addresses={}, published=[])

    def revive(self, containers: Iterable["Revivable"]) -> None:
        """Once recovery is over: a live container whose pasta is gone (killed while
        the daemon was down) gets a new one on its namespace, with its ports."""
        for container in containers:
            if container.config.network == MODE_PASTA and container.status.netns \
                    and container.state in ACTIVE and not self.running(container):
                task = asyncio.ensure_future(self._revive(container))
                self._reviving.add(task)
                task.add_done_callback(self._reviving.discard)

    async def _revive(self, container: "Revivable") -> None:
        async with container.lock:  # as it was when asked, or it has moved on
            status = container.status
            netns = Path(status.netns) if status.netns else None
            if netns is None or container.state not in ACTIVE or self.running(container):
                return
            if not self.port.netns_exists(netns):
                log.warning("container %s: its network namespace is gone; it has no "
                            "network until it is started again", container.name)
                return
            log.warning("container %s: its pasta is gone; starting another", container.name)
            try:
                await self.port.start(netns, [tuple(p) for p in status.published],
                                      self.pid_file(container.id))
            except RuntimeFailed as err:
                log.error("container %s: its network could not be restored: %s",
                          container.name, err)

    def running(self, container: Attachable) -> bool:
        """Its pasta still runs (a restarted daemon asks)."""
        return bool(container.status.netns) and self.port.running(
            self.pid_file(container.id), Path(container.status.netns))

    async def _teardown(self, cid: str, netns: Path) -> None:
        await self.port.stop(self.pid_file(cid), netns)
        await self.port.remove_netns(netns)

    def _publish_all(self, container: Attachable) -> list[PublishedPort]:
        published: list[PublishedPort] = []
        try:
            for port in container.config.ports:
                published.append(self._publish(port, container.id))
        except BaseException:
            self._release(container.id, published)
            raise
        return published

    def _publish(self, port: tuple[str, int, int, str], cid: str) -> PublishedPort:
        host_ip, host_port, container_port, protocol = port
        lowest = self.port.unprivileged_port_start()
        if 0 < host_port < lowest:
            raise RuntimeFailed(
                f"host port {host_port}/{protocol} is below {lowest}, the lowest an "
                "unprivileged user may bind (sysctl net.ipv4.ip_unprivileged_port_start); "
                f"publish a port of {lowest} or more, or have the admin lower it")
        if host_port == 0:
            host_port = free_port(host_ip, protocol)
        taken = any(p == host_port and proto == protocol and (ip == host_ip or "" in (ip, host_ip))
                    for (ip, p, proto) in self._ports)
        if taken or not port_free(host_ip, host_port, protocol):
            raise RuntimeFailed(f"host port {host_ip or '0.0.0.0'}:{host_port}/{protocol} "
                                "is already in use; publish another port or free it")
        self._ports[(host_ip, host_port, protocol)] = cid
        return PublishedPort(host_ip, host_port, container_port, protocol)

    def _release(self, cid: str, published: list[PublishedPort]) -> None:
        for p in published:
            key = (p.host_ip, p.host_port, p.protocol)
            if self._ports.get(key) == cid:
                del self._ports[key]

    def _etc_files(self, container: Attachable, address: str, gateway: str) -> dict[str, str]:
        config = container.config
        # pasta forwards DNS_FORWARD's queries to the host's resolver, a loopback one
        # too; the caller's own servers replace it.
        network_dns = [] if config.dns else [self.port.dns_forward]
        return {
            "/etc/resolv.conf": resolv_conf(config.dns, config.dns_search, network_dns, []),
            # The gateway reaches the host's loopback through pasta.
            "/etc/hosts": hosts_file([config.hostname, container.name],
                                     [address] if address else [],
                                     [tuple(h) for h in config.add_hosts], gateway),
            "/etc/hostname": config.hostname + "\n",
        }
