"""ListContainersPaged (D-Bus) and ListPaged (Varlink): every container once, a
page at a time, by ID; properties and states chosen; bad arguments refused."""

from typing import Any

from conftest import CONTAINER, ERROR, Client, Daemon, container_id
from dbus_fast import Variant

from integration.test_varlink import CONTAINER as VARLINK_CONTAINER
from integration.test_varlink import cli, socket_of

COUNT = 23


async def page_all(bus: Client, **options: Any) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    after = ""
    for _ in range(100):
        opts = {k: v for k, v in options.items()}
        if after:
            opts["after"] = Variant("s", after)
        page, after = await bus.manager("ListContainersPaged", "a{sv}", [opts])
        assert list(page) == sorted(page, key=container_id)
        found.extend((path, {k: v.value for k, v in ifaces[CONTAINER].items()})
                     for path, ifaces in page.items())
        if not after:
            return found
    raise AssertionError("paging did not end")


async def test_pages_list_every_container_once_by_id(daemon: Daemon, bus: Client) -> None:
    paths = [await bus.create(["true"], name=f"paged-{i}") for i in range(COUNT)]
    running = await bus.run(["sleep", "1000"], name="paged-running")
    ours = set(paths) | {running}

    listed = await page_all(bus, limit=Variant("u", 7))
    mine = [(p, props) for p, props in listed if p in ours]
    assert [p for p, _ in listed] == sorted((p for p, _ in listed),
                                            key=lambda p: container_id(p))
    assert {p for p, _ in mine} == ours and len(mine) == len(ours)
    (listed_running,) = [props for p, props in mine if p == running]
    assert listed_running == await bus.get_all(running, CONTAINER)
    # each page is GetManagedObjects' reply for its containers
    (managed,) = await bus.call("/org/pyctrd1", "org.freedesktop.DBus.ObjectManager",
                                "GetManagedObjects")
    page, _ = await bus.manager("ListContainersPaged", "a{sv}", [
        {"after": Variant("s", container_id(running)[:-1]), "limit": Variant("u", 1)}])
    assert page == {running: managed[running]}

    # what ps -a asks: a few properties; what ps asks: running ones only
    few = await page_all(bus, properties=Variant("as", ["Name", "State"]),
                         states=Variant("as", ["running"]))
    assert (running, {"Name": "paged-running", "State": "running"}) in few
    assert not ours - {running} & {p for p, _ in few}

    # one page: next is "" (all of them fit)
    page, after = await bus.manager("ListContainersPaged", "a{sv}", [{}])
    assert after == "" or len(page) == 500

    # Varlink: the same containers, the same order
    sock = socket_of(daemon)
    varlinked: list[str] = []
    after = ""
    for _ in range(100):
        params: dict[str, Any] = {"limit": 9}
        if after:
            params["after"] = after
        reply = cli(sock, f"{VARLINK_CONTAINER}.ListPaged", params).reply
        varlinked += [info["id"] for info in reply["containers"]]
        after = reply["next"]
        if not after:
            break
    assert varlinked == [container_id(p) for p, _ in listed]


async def test_bad_paging_arguments_are_invalid_argument(bus: Client) -> None:
    for options in ({"limit": Variant("u", 5001)}, {"limit": Variant("i", 5)},
                    {"page": Variant("u", 1)}, {"properties": Variant("as", ["Nope"])},
                    {"states": Variant("as", ["sleeping"])}):
        err = await bus.fails(bus.manager("ListContainersPaged", "a{sv}", [options]))
        assert err.type == ERROR + "InvalidArgument", (options, err.text)
