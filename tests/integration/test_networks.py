"""Networks with the real netavark and aardvark-dns (issue 15): published ports,
names and aliases, teardown that leaves nothing, the default network, polkit.

Traffic goes only to this machine: 127.0.0.1 and the containers' own bridges.
Each test checks that nothing of its containers' networks is left: no veth,
no nsfs mount, no iptables rule naming their addresses or ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MANAGER, MANAGER_PATH, Client
from dbus_fast.errors import DBusError

from integration.system_bus import (
    Polkitd,
    SystemBus,
    SystemDaemon,
    call_as,
    polkit_system,
)

NETAVARK = Path("/usr/lib/podman/netavark")
NETWORK_IFACE = "org.pyctrd1.Network"
NOBODY = 65534
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
IN_USE = "org.pyctrd1.Error.InUse"
INVALID = "org.pyctrd1.Error.InvalidArgument"
TIMEOUT = 20.0

pytestmark = pytest.mark.skipif(not NETAVARK.exists(),
                                reason="netavark is not installed (make deps)")

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-from-pyctrd > /www/index.html && "
         "exec busybox httpd -f -p 80 -h /www"]


def host_veth(daemon: Any, path: str) -> int:
    """The host end's ifindex of a running container's eth0 (other daemons' containers,
    other tests', may have veths on the same host: only ours are checked)."""
    netns = daemon.run_root / "netns" / path.rsplit("/", 1)[1]
    out = subprocess.run(["nsenter", f"--net={netns}", "ip", "-o", "link", "show", "eth0"],
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"eth0@if(\d+)", out)
    assert found, out
    return int(found.group(1))


def link_exists(ifindex: int) -> bool:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return any(line.split(":")[0] == str(ifindex) for line in out.splitlines())


def nat_rules() -> str:
    return subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True,
                          check=True).stdout


def filter_rules() -> str:
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True,
                          check=True).stdout


def nsfs_mounts(under: Path) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(under))
            and " nsfs " in line]


def aardvark_pids(daemon: Any) -> list[int]:
    """This daemon's aardvark-dns (its config dir is under the daemon's run root)."""
    out = subprocess.run(["pgrep", "-f", f"aardvark-dns --config {daemon.run_root}/"],
                         capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


async def wait_until(check: Any, what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.05)


async def wait_for_prop(client: Client, path: str, name: str, value: Any,
                        timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while await client.prop(path, name) != value:
        assert time.monotonic() < deadline, f"{name} did not become {value!r}"
        await asyncio.sleep(0.02)


def http_get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
        return str(reply.read().decode())


async def fetch(port: int, timeout: float = TIMEOUT) -> str:
    """GET / from 127.0.0.1:port, retried until httpd listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncio.to_thread(http_get, port)
        except OSError:
            assert time.monotonic() < deadline, f"nothing answered on port {port}"
            await asyncio.sleep(0.05)


def assert_nothing_left(daemon: Any, links: list[int], addresses: list[str],
                        ports: list[int]) -> None:
    left = [i for i in links if link_exists(i)]
    assert not left, f"veths left: {left}"
    assert not nsfs_mounts(daemon.run_root), nsfs_mounts(daemon.run_root)
    netns_dir = daemon.run_root / "netns"
    assert not netns_dir.exists() or not os.listdir(netns_dir), os.listdir(netns_dir)
    rules = nat_rules() + filter_rules()
    for address in addresses:
        assert not re.search(rf"\b{re.escape(address)}\b", rules), (address, rules)
    for port in ports:
        assert f"--dport {port} " not in rules + " ", (port, rules)


async def log_text(client: Client, path: str) -> str:
    return Path(await client.prop(path, "LogPath")).read_text()


@pytest.fixture
async def network(bus: Client) -> Any:
    """A user network with DNS; removed (force) at the end."""
    made: list[str] = []

    async def make(name: str, **options: Any) -> str:
        (path,) = await bus.manager("CreateNetwork", "sa{sv}",
                                    [name, {k: _variant(v) for k, v in options.items()}])
        made.append(name)
        return str(path)

    yield make
    for name in made:
        with contextlib.suppress(DBusError):  # removed by the test itself
            await bus.manager("RemoveNetwork", "sb", [name, True])


def _variant(value: Any) -> Any:
    from dbus_fast import Variant
    if isinstance(value, bool):
        return Variant("b", value)
    if isinstance(value, str):
        return Variant("s", value)
    return Variant("a{ss}", value)


async def test_published_port_answers_from_the_host(bus: Client, daemon: Any) -> None:
    path = await bus.create(HTTPD, network="bridge",
                            ports=[("127.0.0.1", 0, 80, "tcp")])
    assert await bus.prop(path, "Networks") == ["pyctrd"]
    assert await bus.prop(path, "IPAddress") == ""
    rec = await bus.recorder()
    await bus.ctr(path, "Start")
    address = await bus.prop(path, "IPAddress")
    assert address.startswith("10.87."), address
    # announced with their values
    await rec.wait_property(path, "IPAddress", address)
    published = [[list(p) for p in change["Ports"]] for change in rec.changes(path)
                 if "Ports" in change]
    assert published == [[["127.0.0.1", (await bus.prop(path, "Ports"))[0][1], 80, "tcp"]]]
    link = host_veth(daemon, path)
    (published,) = await bus.prop(path, "Ports")
    host_ip, host_port, container_port, proto = published
    assert (host_ip, container_port, proto) == ("127.0.0.1", 80, "tcp")
    assert host_port > 0  # picked for the 0 asked
    assert "hello-from-pyctrd" in await fetch(host_port)
    # the generated files, bind-mounted
    merged = Path(await bus.prop(path, "Mountpoint"))
    assert merged.exists()
    (hosts,) = [m for m in _spec_mounts(daemon, path) if m["destination"] == "/etc/hosts"]
    assert address in Path(hosts["source"]).read_text()
    await bus.ctr(path, "Stop", "u", [0])
    assert await bus.prop(path, "IPAddress") == ""
    await rec.wait_property(path, "IPAddress", "")
    # (other daemons on this host share the default network's subnet: its addresses
    # are not checked in the rules, its published port is)
    assert_nothing_left(daemon, [link], [], [host_port])
    await bus.ctr(path, "Remove", "b", [True])
    bus.created.remove(path)
    assert_nothing_left(daemon, [link], [], [host_port])


def _spec_mounts(daemon: Any, path: str) -> list[dict[str, Any]]:
    import json
    cid = path.rsplit("/", 1)[1]
    spec = json.loads((daemon.run_root / "containers" / cid / "config.json").read_text())
    namespaces = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
    assert namespaces["network"] == str(daemon.run_root / "netns" / cid)
    return list(spec["mounts"])


async def test_names_and_aliases_resolve_on_a_dns_network(bus: Client, daemon: Any,
                                                          network: Any) -> None:
    await network("pyctrd-test-dns")
    server = await bus.run(["sleep", "1000"], name="pyctrd-alpha",
                           network="pyctrd-test-dns", network_aliases=["web"])
    server_ip = await bus.prop(server, "IPAddress")
    assert server_ip
    links = [host_veth(daemon, server)]
    probe = await bus.run(["sh", "-c", "cat /etc/resolv.conf; nslookup pyctrd-alpha; "
                           "nslookup web; ping -c1 -W2 pyctrd-alpha >/dev/null "
                           "&& echo reached"],
                          network="pyctrd-test-dns")
    probe_ip = await bus.prop(probe, "IPAddress")
    with contextlib.suppress(subprocess.CalledProcessError):  # it may have exited already
        links.append(host_veth(daemon, probe))
    (code,) = await bus.ctr(probe, "Wait")
    text = await log_text(bus, probe)
    assert text.count(server_ip) >= 2, text  # by name and by alias
    assert "search dns.podman" in text, text
    assert aardvark_pids(daemon), "aardvark-dns should run while DNS containers do"
    # in use: refused unless forced, and then nothing is left
    (npath,) = await bus.manager("GetNetwork", "s", ["pyctrd-test-dns"])
    (members,) = await bus.call(npath, "org.freedesktop.DBus.Properties", "Get", "ss",
                                [NETWORK_IFACE, "Containers"])
    assert {server.rsplit("/", 1)[1], probe.rsplit("/", 1)[1]} == set(members.value)
    with pytest.raises(DBusError) as refused:
        await bus.manager("RemoveNetwork", "sb", ["pyctrd-test-dns", False])
    assert refused.value.type == IN_USE
    await bus.manager("RemoveNetwork", "sb", ["pyctrd-test-dns", True])
    assert await bus.prop(server, "State") == "exited"
    assert await bus.prop(server, "Networks") == []
    await wait_until(lambda: not aardvark_pids(daemon), "aardvark-dns to stop")
    assert_nothing_left(daemon, links, [server_ip, probe_ip], [])
    del code


async def test_default_network_reaches_another_by_ip(bus: Client, daemon: Any) -> None:
    server = await bus.run(HTTPD, network="bridge")
    server_ip = await bus.prop(server, "IPAddress")
    links = [host_veth(daemon, server)]
    client = await bus.run(["sh", "-c", f"busybox timeout 10 wget -q -O - http://{server_ip}/"
                            " || (sleep 0.5; busybox timeout 10 wget -q -O - "
                            f"http://{server_ip}/)"], network="bridge")
    (code,) = await bus.ctr(client, "Wait")
    assert code == 0 and "hello-from-pyctrd" in await log_text(bus, client)
    await bus.ctr(server, "Stop", "u", [0])
    # the client's network goes right after its exit (cleaned up off the caller's path)
    await wait_for_prop(bus, client, "IPAddress", "")
    assert_nothing_left(daemon, links, [], [])


async def test_taken_host_port_fails_start_and_leaves_nothing(bus: Client,
                                                              daemon: Any) -> None:
    import socket
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        path = await bus.create(["sleep", "1000"], network="bridge",
                                ports=[("127.0.0.1", port, 80, "tcp")])
        with pytest.raises(Exception, match="already in use"):
            await bus.ctr(path, "Start")
    assert await bus.prop(path, "State") in ("configured", "exited")
    assert_nothing_left(daemon, [], [], [port])


async def test_a_port_below_1024_on_a_given_address(bus: Client, daemon: Any) -> None:
    import socket
    port = 0
    for candidate in range(990, 1000):  # one nothing listens on now
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port = candidate
            break
    assert port, "no free port in 990..999"
    path = await bus.run(HTTPD, network="bridge", ports=[("127.0.0.1", port, 80, "tcp")])
    assert "hello-from-pyctrd" in await fetch(port)
    await bus.ctr(path, "Stop", "u", [0])
    assert_nothing_left(daemon, [], [], [port])


async def test_internal_network_has_no_route_out(bus: Client, network: Any) -> None:
    await network("pyctrd-test-internal", internal=True)
    path = await bus.run(["sh", "-c", "cat /proc/net/route"],
                         network="pyctrd-test-internal")
    await bus.ctr(path, "Wait")
    routes = [line.split() for line in (await log_text(bus, path)).splitlines()
              if "eth0" in line]
    assert routes, "no route at all on eth0"
    # /proc/net/route's Destination 00000000 is the default route
    assert not any(r[r.index("eth0") + 1] == "00000000" for r in routes), routes


async def test_default_network_cannot_be_removed(bus: Client) -> None:
    networks = await bus.manager("ListNetworks")
    assert ["pyctrd", "10.87.0.0/16"] in [list(row[1:3]) for row in networks[0]]
    with pytest.raises(Exception, match="cannot be removed"):
        await bus.manager("RemoveNetwork", "sb", ["pyctrd", True])
    (path,) = await bus.manager("GetNetwork", "s", ["pyctrd"])
    (objects,) = await bus.call("/org/pyctrd1", "org.freedesktop.DBus.ObjectManager",
                                "GetManagedObjects")
    props = {k: v.value for k, v in objects[path][NETWORK_IFACE].items()}
    assert (props["Name"], props["Subnet"], props["Gateway"], props["DNSEnabled"]) == (
        "pyctrd", "10.87.0.0/16", "10.87.0.1", False)


async def test_overlapping_subnet_is_invalid(bus: Client, network: Any) -> None:
    with pytest.raises(Exception, match="overlaps"):
        await network("pyctrd-test-overlap", subnet="10.87.5.0/24")


# -- polkit: org.pyctrd1.network.manage


@pytest.fixture(scope="module")
def polkit_env(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[SystemBus, Polkitd, SystemDaemon]]:
    with polkit_system("networks", tmp_path_factory.mktemp("pyctrd-net"), busybox_tar,
                       mock=True) as env:
        yield env


async def test_unprivileged_caller_cannot_manage_networks(
        polkit_env: tuple[SystemBus, Polkitd, SystemDaemon]) -> None:
    bus, polkit, _daemon = polkit_env
    create = {"path": MANAGER_PATH, "interface": MANAGER, "member": "CreateNetwork",
              "signature": "sa{sv}", "body": ["pyctrd-test-denied", {}]}
    remove = {"path": MANAGER_PATH, "interface": MANAGER, "member": "RemoveNetwork",
              "signature": "sb", "body": ["pyctrd", False]}
    listing = {"path": MANAGER_PATH, "interface": MANAGER, "member": "ListNetworks",
               "signature": "", "body": []}
    polkit.set_allowed([])
    denied, denied_rm, listed = call_as(NOBODY, bus.address, [create, remove, listing])[
        "results"]
    assert denied.get("error") == ACCESS_DENIED, denied
    assert denied_rm.get("error") == ACCESS_DENIED, denied_rm
    assert "reply" in listed, listed  # reading is open to anyone


# -- pyctr: network create/ls/inspect/rm, run -p, port


def test_pyctr_network_verbs_and_published_port(daemon: Any) -> None:
    import json

    from integration.cli_support import ok, pyctr
    address = daemon.bus_address
    name = "pyctrd-test-cli"
    try:
        assert ok(address, "network", "create", name).strip() == name
        assert name in ok(address, "network", "ls", "-q").split()
        (shown,) = json.loads(ok(address, "network", "inspect", name))
        assert shown["name"] == name and shown["dns_enabled"] is True
        assert shown["subnets"][0]["subnet"].startswith("10.86.")
        cid = ok(address, "run", "-d", "--network", name, "--network-alias", "www",
                 "--add-host", "db:10.9.8.7", "--dns", "10.1.1.1", "-p", "127.0.0.1::80",
                 "busybox", *HTTPD).strip()
        try:
            line = ok(address, "port", cid).strip()
            found = re.fullmatch(r"80/tcp -> 127\.0\.0\.1:(\d+)", line)
            assert found, line
            assert "hello-from-pyctrd" in asyncio.run(fetch(int(found.group(1))))
            used = pyctr(address, "network", "rm", name)
            assert used.returncode != 0 and "used by" in used.stderr, used.stderr
        finally:
            ok(address, "rm", "-f", cid)
        ok(address, "network", "rm", name)
        assert name not in ok(address, "network", "ls", "-q").split()
    finally:
        pyctr(address, "network", "rm", "-f", name)


def test_pyctr_network_ls_and_inspect_take_podman_templates(daemon: Any) -> None:
    import json

    from integration.cli_support import ok
    address = daemon.bus_address
    listed = ok(address, "network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Subnet}}")
    assert "pyctrd bridge 10.87.0.0/16" in listed.splitlines()
    table = ok(address, "network", "ls").splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SUBNET"]
    assert any(line.split()[1:] == ["pyctrd", "bridge", "10.87.0.0/16"] for line in table)
    assert ok(address, "network", "ls", "--noheading", "--format",
              "table {{.Name}}").split() == [line.split()[0] for line in
                                            ok(address, "network", "ls", "--format",
                                               "{{.Name}}").splitlines()]
    (shown,) = json.loads(ok(address, "network", "ls", "--format", "json"))[:1] or [{}]
    assert {"name", "id", "driver", "subnets"} <= set(shown)
    assert ok(address, "network", "inspect", "-f",
              "{{.Name}} {{(index .Subnets 0).Gateway}}", "pyctrd").strip() == \
        "pyctrd 10.87.0.1"


# -- a daemon crash: the network stays, and is re-adopted


async def test_kill9_keeps_the_published_port_then_stop_cleans_up(
        fresh_daemon: Any, client_factory: Any) -> None:
    d = fresh_daemon()
    client = first = await client_factory(d.bus_address)
    path = await client.run(HTTPD, network="bridge", ports=[("127.0.0.1", 0, 80, "tcp")])
    (_ip, port, _cport, _proto), = await client.prop(path, "Ports")
    link = host_veth(d, path)
    assert "hello-from-pyctrd" in await fetch(port)
    d.kill9()
    assert "hello-from-pyctrd" in await fetch(port), "the network died with the daemon"
    d.start()
    client = await client_factory(d.bus_address)
    assert await client.prop(path, "State") == "running"
    assert (await client.prop(path, "Ports"))[0][1] == port
    assert "hello-from-pyctrd" in await fetch(port)
    await client.ctr(path, "Stop", "u", [0])
    assert_nothing_left(d, [link], [], [port])
    # started again, it gets its network afresh
    await client.ctr(path, "Start")
    (_ip, port2, _cport, _proto), = await client.prop(path, "Ports")
    assert "hello-from-pyctrd" in await fetch(port2)
    await client.ctr(path, "Remove", "b", [True])
    first.created.remove(path)
    assert_nothing_left(d, [], [], [port2])


# -- Varlink: io.pyctrd.Network, the same operations


def test_varlink_network_create_get_list_remove(daemon: Any) -> None:
    from integration.test_varlink import REPO, cli, socket_of
    sock = socket_of(daemon)
    iface = "io.pyctrd.Network"
    live = cli(sock, "org.varlink.service.GetInterfaceDescription",
               {"interface": iface}).reply["description"]
    assert live == (REPO / "varlink" / f"{iface}.varlink").read_text()
    made = cli(sock, f"{iface}.Create", {"name": "pyctrd-test-vl",
                                         "options": {"internal": True}}).reply["network"]
    try:
        assert made["internal"] is True and made["dns_enabled"] is True
        got = cli(sock, f"{iface}.Get", {"name": made["id"][:12]}).reply["network"]
        assert got["name"] == "pyctrd-test-vl"
        names = [n["name"] for n in cli(sock, f"{iface}.List").reply["networks"]]
        assert {"pyctrd", "pyctrd-test-vl"} <= set(names)
        refused = cli(sock, f"{iface}.Remove", {"name": "pyctrd"})
        assert refused.error is not None and refused.error["error"] == f"{iface}.InvalidArgument"
        overlap = cli(sock, f"{iface}.Create", {"name": "pyctrd-test-vl2",
                                                "options": {"subnet": made["subnet"]}})
        assert overlap.error is not None and overlap.error["error"] == f"{iface}.InvalidArgument"
    finally:
        cli(sock, f"{iface}.Remove", {"name": "pyctrd-test-vl", "force": True})
    missing = cli(sock, f"{iface}.Get", {"name": "pyctrd-test-vl"})
    assert missing.error is not None and missing.error["error"] == f"{iface}.NoSuchNetwork"
