"""Networks in the core (core/networks.py) on a fake NetworkPort: leases, ports,
teardown on every path, the catalogue's rules. The real netavark is in
tests/integration/test_networks.py."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from support.fake_runtime import IMAGE_ID, LAYER_ID, FakeWorld

from pyctrd.core.engine import Engine
from pyctrd.core.image import Image
from pyctrd.core.networks import DEFAULT_NAME
from pyctrd.core.state import State
from pyctrd.errors import Exists, InUse, InvalidArgument, NoSuchNetwork, RuntimeFailed
from pyctrd.layout import Layout


class FakeNetwork:
    """netavark and namespaces in memory: namespaces are paths in ``netns``,
    set-ups are requests in ``configured`` (by container id)."""

    def __init__(self) -> None:
        self.netns: set[Path] = set()
        self.configured: dict[str, dict[str, Any]] = {}
        self.fail_setup: str | None = None
        self.calls: list[str] = []

    async def create_netns(self, path: Path) -> None:
        self.calls.append("create_netns")
        self.netns.add(path)

    async def remove_netns(self, path: Path) -> None:
        self.calls.append("remove_netns")
        self.netns.discard(path)

    def netns_exists(self, path: Path) -> bool:
        return path in self.netns

    async def setup(self, netns_path: Path, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("setup")
        assert netns_path in self.netns
        json.dumps(request)  # what netavark reads
        if self.fail_setup:
            message, self.fail_setup = self.fail_setup, None
            raise RuntimeFailed(f"netavark setup failed: {message}")
        self.configured[request["container_id"]] = request
        return {name: {"dns_server_ips": [info["subnets"][0]["gateway"]],
                       "dns_search_domains": ["dns.podman"]}
                for name, info in request["network_info"].items() if info["dns_enabled"]}

    async def teardown(self, netns_path: Path, request: dict[str, Any]) -> None:
        self.calls.append("teardown")
        self.configured.pop(request["container_id"], None)


def make_engine(tmp_path: Path, world: FakeWorld, network: FakeNetwork) -> Engine:
    layout = Layout(tmp_path / "root", tmp_path / "run")
    engine = Engine(layout, world.runtime, world.monitor, storage=world.storage,
                    network=network)
    image = Image(id=IMAGE_ID, reference="busybox:latest", digest=f"sha256:{IMAGE_ID}",
                  size=0, created=0, layers=[LAYER_ID], cmd=["sh"], blobs=[""])
    engine.store.add_image(image.id, image.to_record())
    engine.load()
    return engine


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld.create(kill_exits=True)


@pytest.fixture
async def engine(tmp_path: Path, world: FakeWorld) -> Engine:
    eng = make_engine(tmp_path, world, FakeNetwork())
    await eng.recover()
    return eng


def fake(engine: Engine) -> FakeNetwork:
    assert engine.networks is not None
    port = engine.networks.port
    assert isinstance(port, FakeNetwork)
    return port


async def test_start_sets_up_and_stop_tears_down(engine: Engine) -> None:
    c = engine.create_container("busybox", ["sleep", "1"], {
        "name": "web", "ports": [("127.0.0.1", 0, 80, "tcp")], "network_aliases": ["www"],
        "add_hosts": [("db", "10.9.9.9")], "dns": ["10.1.1.1"]})
    assert c.status.networks == [DEFAULT_NAME]
    await c.start()
    net = fake(engine)
    request = net.configured[c.id]
    assert request["networks"][DEFAULT_NAME]["static_ips"] == [c.status.addresses[DEFAULT_NAME]]
    assert "www" in request["networks"][DEFAULT_NAME]["aliases"]
    (mapping,) = request["port_mappings"]
    assert mapping["host_port"] > 0 and c.status.published[0][1] == mapping["host_port"]
    spec = json.loads((c.bundle / "config.json").read_text())
    netns = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}["network"]
    assert netns == c.status.netns and Path(netns) in net.netns
    mounted = {m["destination"]: m["source"] for m in spec["mounts"]}
    assert "10.9.9.9\tdb" in Path(mounted["/etc/hosts"]).read_text()
    assert "nameserver 10.1.1.1" in Path(mounted["/etc/resolv.conf"]).read_text()
    assert Path(mounted["/etc/hostname"]).read_text() == c.config.hostname + "\n"
    await c.stop(0)
    assert c.state == State.EXITED
    assert not net.configured and not net.netns
    assert (c.status.netns, c.status.addresses, c.status.published) == ("", {}, [])


async def test_addresses_are_never_shared_and_are_released(engine: Engine) -> None:
    engine.create_network("small", {"subnet": "10.99.0.0/24"})
    a = engine.create_container("busybox", ["sleep", "1"], {"network": "small"})
    b = engine.create_container("busybox", ["sleep", "1"], {"network": "small"})
    await a.start()
    await b.start()
    assert (a.status.addresses["small"], b.status.addresses["small"]) == (
        "10.99.0.2", "10.99.0.3")  # a small subnet is handed out from its start
    await a.stop(0)
    c = engine.create_container("busybox", ["sleep", "1"], {"network": "small"})
    await c.start()
    assert c.status.addresses["small"] == "10.99.0.2"  # released, then given again
    await engine.remove_container(b, force=True)
    await engine.remove_container(c, force=True)
    assert not fake(engine).netns
    # the default network's /16: from a random place, never twice
    many = [engine.create_container("busybox", ["sleep", "1"], {}) for _ in range(20)]
    for one in many:
        await one.start()
    addresses = {one.status.addresses[DEFAULT_NAME] for one in many}
    assert len(addresses) == 20 and "10.87.0.1" not in addresses


async def test_full_subnet_is_a_clear_error(engine: Engine) -> None:
    engine.create_network("tiny", {"subnet": "10.99.0.0/30"})  # one host besides gateway
    a = engine.create_container("busybox", ["sleep", "1"], {"network": "tiny"})
    b = engine.create_container("busybox", ["sleep", "1"], {"network": "tiny"})
    await a.start()
    with pytest.raises(RuntimeFailed, match="no free address"):
        await b.start()
    assert b.state == State.CONFIGURED and b.status.netns == ""
    assert len(fake(engine).netns) == 1  # a's only


async def test_failed_setup_leaves_nothing(engine: Engine) -> None:
    c = engine.create_container("busybox", ["sleep", "1"], {"ports": [("", 0, 80, "tcp")]})
    fake(engine).fail_setup = "boom"
    with pytest.raises(RuntimeFailed, match="boom"):
        await c.start()
    net = fake(engine)
    assert not net.netns and not net.configured
    assert (c.status.netns, c.status.addresses, c.status.published) == ("", {}, [])
    await c.start()  # and it works the next time
    assert c.state == State.RUNNING


async def test_failed_launch_tears_the_network_down(engine: Engine, world: FakeWorld) -> None:
    c = engine.create_container("busybox", ["sleep", "1"], {})
    world.inject("launch", RuntimeFailed("runc create failed"))
    with pytest.raises(RuntimeFailed):
        await c.start()
    assert not fake(engine).netns and c.status.netns == ""


async def test_exit_tears_down(engine: Engine, world: FakeWorld) -> None:
    c = engine.create_container("busybox", ["sleep", "1"], {})
    await c.start()
    world.monitor.exit(c.id, 0)
    for _ in range(500):  # the cleanup task (unmounts in a worker thread) runs soon
        if not c.status.netns:
            break
        await asyncio.sleep(0.01)
    assert c.status.netns == "" and not fake(engine).netns


async def test_catalogue_rules(engine: Engine) -> None:
    one = engine.create_network("one", {})
    two = engine.create_network("two", {})
    assert one.subnet != two.subnet and one.subnet.startswith("10.86.")
    assert one.interface != two.interface != "pyctrd0"
    with pytest.raises(Exists):
        engine.create_network("one", {})
    with pytest.raises(InvalidArgument, match="overlaps"):
        engine.create_network("three", {"subnet": "10.87.1.0/24"})
    with pytest.raises(InvalidArgument, match="gateway"):
        engine.create_network("four", {"subnet": "10.50.0.0/24", "gateway": "10.51.0.1"})
    with pytest.raises(InvalidArgument, match="cannot be removed"):
        await engine.remove_network(engine.lookup_network(DEFAULT_NAME), True)
    with pytest.raises(NoSuchNetwork):
        engine.create_container("busybox", ["true"], {"network": "nosuch"})
    c = engine.create_container("busybox", ["sleep", "1"], {"network": "one"})
    assert one.members == {c.id}
    await c.start()
    with pytest.raises(InUse):
        await engine.remove_network(one, False)
    await engine.remove_network(one, True)
    assert c.state == State.EXITED and c.status.networks == []
    assert not fake(engine).netns
    with pytest.raises(NoSuchNetwork):
        engine.lookup_network("one")
    # stored: a new engine on the same root knows "two" (and the default) only
    assert sorted(n.name for n in engine.networks.networks.values()) == [  # type: ignore[union-attr]
        DEFAULT_NAME, "two"]


async def test_restart_keeps_a_running_containers_leases(tmp_path: Path,
                                                         world: FakeWorld) -> None:
    net = FakeNetwork()
    engine = make_engine(tmp_path, world, net)
    await engine.recover()
    c = engine.create_container("busybox", ["sleep", "1"], {"ports": [("", 0, 80, "tcp")]})
    await c.start()
    address, port = c.status.addresses[DEFAULT_NAME], c.status.published[0][1]
    engine.close()
    again = make_engine(tmp_path, world, net)  # the daemon restarted, conmon kept it
    await again.recover()
    same = again.containers[c.id]
    assert same.state == State.RUNNING and same.status.addresses[DEFAULT_NAME] == address
    other = again.create_container("busybox", ["sleep", "1"], {})
    await other.start()
    assert other.status.addresses[DEFAULT_NAME] != address
    taken = again.create_container("busybox", ["sleep", "1"],
                                   {"ports": [("", port, 80, "tcp")]})
    with pytest.raises(RuntimeFailed, match="already in use"):
        await taken.start()


async def test_a_reboot_releases_leases_and_start_sets_up_afresh(
        tmp_path: Path, world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyctrd.core import engine as engine_mod
    net = FakeNetwork()
    engine = make_engine(tmp_path, world, net)
    await engine.recover()
    c = engine.create_container("busybox", ["sleep", "1"], {"ports": [("", 0, 80, "tcp")]})
    await c.start()
    engine.close()
    world.monitor.daemon_stopped()
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("another-boot\n")
    monkeypatch.setattr(engine_mod, "BOOT_ID_PATH", boot_id)
    world.storage.mounted.clear()  # a reboot unmounts everything, namespaces too
    net.netns.clear()
    net.configured.clear()
    again = make_engine(tmp_path, world, net)
    await again.recover()
    c2 = again.containers[c.id]
    assert c2.state == State.EXITED
    assert (c2.status.netns, c2.status.addresses, c2.status.published) == ("", {}, [])
    assert c2.status.networks == [DEFAULT_NAME]
    await c2.start()
    assert c2.status.netns and net.configured[c2.id]
