"""A user's own daemon's networks (core/pastanet.py) on a fake PastaPort: the
default is pasta, what pasta cannot do is NotSupported, and a failed start, a
privileged or taken port leave nothing. The real pasta is in
tests/integration/test_rootless_network.py."""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from support.fake_runtime import IMAGE_ID, LAYER_ID, FakeWorld

from pyctrd.core.engine import Engine
from pyctrd.core.image import Image
from pyctrd.core.networks import free_port
from pyctrd.core.state import State
from pyctrd.errors import InvalidArgument, NotSupported, RuntimeFailed
from pyctrd.layout import Layout
from pyctrd.network.pasta import arguments
from unit.test_networks import FakeNetwork


class FakePasta:
    """Namespaces and pasta processes in memory (by namespace path)."""

    dns_forward = "169.254.1.1"

    def __init__(self) -> None:
        self.netns: set[Path] = set()
        self.running_for: dict[Path, list[tuple[str, int, int, str]]] = {}
        self.fail_start: str | None = None

    async def create_netns(self, path: Path) -> None:
        self.netns.add(path)

    async def remove_netns(self, path: Path) -> None:
        self.netns.discard(path)

    def netns_exists(self, path: Path) -> bool:
        return path in self.netns

    def unprivileged_port_start(self) -> int:
        return 1024

    def host_route(self) -> tuple[str, str]:
        return "192.0.2.2", "192.0.2.1"

    async def start(self, netns_path: Path, ports: Iterable[tuple[str, int, int, str]],
                    pid_file: Path) -> int:
        assert netns_path in self.netns
        if self.fail_start:
            message, self.fail_start = self.fail_start, None
            raise RuntimeFailed(f"pasta failed: {message}")
        self.running_for[netns_path] = list(ports)
        return 4242

    def running(self, pid_file: Path, netns_path: Path) -> bool:
        return netns_path in self.running_for

    async def stop(self, pid_file: Path, netns_path: Path) -> None:
        self.running_for.pop(netns_path, None)


def make_engine(tmp_path: Path, world: FakeWorld, **kwargs: Any) -> Engine:
    layout = Layout(tmp_path / "root", tmp_path / "run")
    engine = Engine(layout, world.runtime, world.monitor, storage=world.storage,
                    **kwargs)
    image = Image(id=IMAGE_ID, reference="busybox:latest", digest=f"sha256:{IMAGE_ID}",
                  size=0, created=0, layers=[LAYER_ID], cmd=["sh"], blobs=[""])
    engine.store.add_image(image.id, image.to_record())
    engine.load()
    return engine


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld.create(kill_exits=True)


@pytest.fixture
def pasta() -> FakePasta:
    return FakePasta()


@pytest.fixture
async def engine(tmp_path: Path, world: FakeWorld, pasta: FakePasta) -> Engine:
    eng = make_engine(tmp_path, world, rootless=True, pasta=pasta)
    await eng.recover()
    return eng


async def test_the_default_network_is_pasta_set_up_and_torn_down(
        engine: Engine, pasta: FakePasta) -> None:
    c = engine.create_container("busybox", ["sleep", "1"], {
        "ports": [("127.0.0.1", 0, 80, "tcp"), ("", 0, 53, "udp")],
        "add_hosts": [("db", "10.9.9.9")]})
    assert (c.config.network, c.status.networks) == ("pasta", ["pasta"])
    await c.start()
    netns = Path(c.status.netns)
    published = pasta.running_for[netns]
    assert published[0][:1] == ("127.0.0.1",) and published[0][1] >= 1024
    assert published[1][0::2] == ("", 53) and published[1][3] == "udp"
    assert [tuple(p) for p in c.status.published] == published
    assert c.status.addresses == {"pasta": "192.0.2.2"}
    servers = [line for line in (c.bundle / "resolv.conf").read_text().splitlines()
               if line.startswith("nameserver")]
    assert servers[0] == "nameserver 169.254.1.1"  # pasta's forwarder first
    hosts = (c.bundle / "hosts").read_text()
    assert "192.0.2.1\thost.containers.internal" in hosts and "10.9.9.9\tdb" in hosts
    await c.stop(0)
    assert c.state == State.EXITED
    assert not pasta.netns and not pasta.running_for
    assert (c.status.netns, c.status.addresses, c.status.published) == ("", {}, [])


async def test_the_callers_dns_replaces_the_forwarder(engine: Engine) -> None:
    c = engine.create_container("busybox", ["sleep", "1"], {"dns": ["10.1.1.1"]})
    await c.start()
    resolv = (c.bundle / "resolv.conf").read_text()
    assert "nameserver 10.1.1.1" in resolv and "169.254.1.1" not in resolv
    await c.stop(0)


async def test_what_pasta_cannot_do_is_not_supported(engine: Engine) -> None:
    with pytest.raises(NotSupported, match="pasta"):
        engine.create_network("mine", {})
    with pytest.raises(NotSupported, match="user networks"):
        engine.lookup_network("mine")
    with pytest.raises(NotSupported, match="user networks"):
        engine.create_container("busybox", ["true"], {"network": "mine"})
    with pytest.raises(NotSupported, match="network_aliases"):
        engine.create_container("busybox", ["true"], {"network_aliases": ["www"]})
    assert not engine.containers
    for mode in ("none", "host"):
        assert engine.create_container("busybox", ["true"], {"network": mode}) \
            .config.network == mode


async def test_root_refuses_pasta(tmp_path: Path, world: FakeWorld) -> None:
    engine = make_engine(tmp_path, world, network=FakeNetwork())
    await engine.recover()
    with pytest.raises(InvalidArgument, match="user's own daemon"):
        engine.create_container("busybox", ["true"], {"network": "pasta"})
    with pytest.raises(InvalidArgument, match="network mode"):
        engine.create_network("pasta", {})


async def test_a_failed_pasta_leaves_nothing_and_frees_its_ports(
        engine: Engine, pasta: FakePasta) -> None:
    port = free_port("", "tcp")
    c = engine.create_container("busybox", ["sleep", "1"], {"ports": [("", port, 80, "tcp")]})
    pasta.fail_start = "Failed to bind any port"
    with pytest.raises(RuntimeFailed, match="Failed to bind"):
        await c.start()
    assert c.state == State.CONFIGURED
    assert not pasta.netns and not pasta.running_for
    assert (c.status.netns, c.status.published) == ("", [])
    await c.start()  # the port was released
    assert pasta.running_for
    await c.stop(0)


async def test_privileged_and_taken_ports_are_clear_errors(
        engine: Engine, pasta: FakePasta) -> None:
    low = engine.create_container("busybox", ["sleep", "1"], {"ports": [("", 80, 80, "tcp")]})
    with pytest.raises(RuntimeFailed, match="ip_unprivileged_port_start"):
        await low.start()
    port = free_port("", "tcp")
    a = engine.create_container("busybox", ["sleep", "1"], {"ports": [("", port, 80, "tcp")]})
    b = engine.create_container("busybox", ["sleep", "1"],
                                {"ports": [("127.0.0.1", port, 80, "tcp")]})
    await a.start()
    with pytest.raises(RuntimeFailed, match="already in use"):
        await b.start()
    assert len(pasta.running_for) == 1 and len(pasta.netns) == 1
    await a.stop(0)
    await b.start()  # free again
    await b.stop(0)
    assert not pasta.netns


def test_pasta_forwards_only_the_published_ports() -> None:
    argv = arguments(Path("/run/ns/x"), [("127.0.0.1", 8081, 80, "tcp"), ("", 8080, 80, "tcp"),
                                         ("", 5353, 53, "udp")], Path("/run/p.pid"))
    assert argv[argv.index("-t") + 1] == "127.0.0.1/8081:80,8080:80"
    assert argv[argv.index("-u") + 1] == "5353:53"
    assert argv[argv.index("-T") + 1] == argv[argv.index("-U") + 1] == "none"
    assert argv[argv.index("--netns") + 1] == "/run/ns/x"
    bare = arguments(Path("/run/ns/y"), [], Path("/run/q.pid"))
    assert bare[bare.index("-t") + 1] == bare[bare.index("-u") + 1] == "none"
