"""Who may call what, with python-dbusmock's polkitd deciding (shared/API.md).

pyctrd runs with ``--bus system`` on a private bus configured like Debian's
system bus; the callers are root (this process) and nobody (65534, a
subprocess under setpriv). The mock answers CheckAuthorization by action id
alone (SetAllowed) and logs every call, so the tests see exactly what pyctrd
asked: subject, action, details and the interaction flag.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CONTAINER, MANAGER, MANAGER_PATH, PROPERTIES, Client, container_id

from integration.system_bus import (
    Polkitd,
    SystemBus,
    SystemDaemon,
    call_as,
    polkit_system,
)

NOBODY = 65534
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
ERROR = "org.pyctrd1.Error."
ALL_ACTIONS = [
    "org.pyctrd1.container.inspect", "org.pyctrd1.container.attach",
    "org.pyctrd1.container.manage", "org.pyctrd1.container.create",
    "org.pyctrd1.container.mount", "org.pyctrd1.image.manage",
    "org.pyctrd1.container.create-privileged",
]
SLEEPER = ["sleep", "1000"]


@dataclass
class Env:
    bus: SystemBus
    polkit: Polkitd
    daemon: SystemDaemon


@pytest.fixture(scope="module")
def env(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with polkit_system("polkit-mock", tmp_path_factory.mktemp("pyctrd-mock"), busybox_tar,
                       mock=True) as (bus, polkit, daemon):
        yield Env(bus, polkit, daemon)


@pytest.fixture
def polkit(env: Env) -> Iterator[Polkitd]:
    """The mock, allowing nothing and with an empty call log."""
    env.polkit.set_allowed([])
    env.polkit.clear_calls()
    yield env.polkit
    env.polkit.set_allowed([])


@pytest.fixture
async def root(env: Env, client_factory: Any) -> Client:
    return await client_factory(env.bus.address)


def ctr(path: str, member: str, signature: str = "", body: list | None = None,
        **extra: Any) -> dict[str, Any]:
    return {"path": path, "interface": CONTAINER, "member": member,
            "signature": signature, "body": body or [], **extra}


def mgr(member: str, signature: str = "", body: list | None = None,
        **extra: Any) -> dict[str, Any]:
    return {"path": MANAGER_PATH, "interface": MANAGER, "member": member,
            "signature": signature, "body": body or [], **extra}


def nobody(env: Env, *calls: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Make the calls as nobody; (its unique name, the results)."""
    out = call_as(NOBODY, env.bus.address, list(calls))
    assert out["uid"] == NOBODY
    return out["unique_name"], out["results"]


def error_of(result: dict[str, Any]) -> str | None:
    return result.get("error")


# (action, a call as nobody on a configured container at {path}, what it gives
# once authorized). Each is harmless for the container when allowed.
CASES = [
    ("org.pyctrd1.container.manage", lambda p, i: ctr(p, "Kill", "s", ["SIGTERM"]),
     ERROR + "InvalidState"),
    ("org.pyctrd1.container.create", lambda p, i: mgr("RemoveContainer", "sb", ["nosuch", False]),
     ERROR + "NoSuchContainer"),
    ("org.pyctrd1.container.mount", lambda p, i: ctr(p, "Unmount"), None),
    ("org.pyctrd1.image.manage", lambda p, i: {
        "path": i, "interface": "org.pyctrd1.Image", "member": "Remove", "signature": "b",
        "body": [False]}, ERROR + "InUse"),
    ("org.pyctrd1.container.inspect", lambda p, i: ctr(p, "Inspect"), None),
    ("org.pyctrd1.container.attach", lambda p, i: ctr(p, "Attach", "s", [""]),
     ERROR + "InvalidState"),
]


async def exported(root: Client, path: str, member: str) -> bool:
    (xml,) = await root.call(path, "org.freedesktop.DBus.Introspectable", "Introspect")
    return f'<method name="{member}"' in xml


@pytest.mark.parametrize("action,make_call,allowed_outcome", CASES,
                         ids=[c[0].rsplit(".", 2)[-2] + "." + c[0].rsplit(".", 1)[-1]
                              for c in CASES])
async def test_each_action_allowed_and_denied_as_polkit_says(
        env: Env, polkit: Polkitd, root: Client, action: str, make_call: Any,
        allowed_outcome: str | None) -> None:
    path = await root.create(SLEEPER)
    spec = make_call(path, env.daemon.image_path)
    if not await exported(root, spec["path"], spec["member"]):
        pytest.skip(f"{spec['member']} is not exported yet")

    polkit.set_allowed([a for a in ALL_ACTIONS if a != action])
    _name, (denied,) = nobody(env, dict(spec))
    assert error_of(denied) == ACCESS_DENIED, denied
    assert action in denied["message"] and "not allowed" in denied["message"]

    polkit.clear_calls()
    polkit.set_allowed([action])
    unique_name, (allowed,) = nobody(env, dict(spec))
    assert error_of(allowed) == allowed_outcome, allowed
    assert await root.state(path) == "configured"

    # What pyctrd asked: the caller's bus name, the action, details that name
    # the container (or image) and the method, and no interaction.
    ((subject, asked, details, flags),) = polkit.check_calls()
    assert subject == ("system-bus-name", {"name": unique_name})
    assert asked == action
    assert details["verb"] == spec["member"]
    if spec["interface"] == CONTAINER:
        assert details["container_id"] == container_id(path)
        assert details["container_name"] == await root.prop(path, "Name")
    elif spec["interface"] == "org.pyctrd1.Image":
        assert details["image_id"] == env.daemon.image_id
    assert flags == 0


async def test_denied_start_leaves_the_container_configured(
        env: Env, polkit: Polkitd, root: Client) -> None:
    path = await root.create(SLEEPER)
    _name, results = nobody(env, ctr(path, "Start"), ctr(path, "Init"))
    assert [error_of(r) for r in results] == [ACCESS_DENIED, ACCESS_DENIED]
    assert await root.state(path) == "configured"
    assert not await root.prop(path, "PID")

    polkit.set_allowed(["org.pyctrd1.container.manage"])
    _name, (started,) = nobody(env, ctr(path, "Start"))
    assert started == {"reply": []}
    assert await root.state(path) == "running"
    await root.ctr(path, "Stop", "u", [0])


async def test_denied_create_adds_no_container(env: Env, polkit: Polkitd, root: Client) -> None:
    (before,) = await root.manager("ListContainers")
    create = mgr("CreateContainer", "sasa{sv}", [
        "busybox", SLEEPER, {"name": {"variant": ["s", "by-nobody"]}}])
    _name, (denied,) = nobody(env, create)
    assert error_of(denied) == ACCESS_DENIED
    assert (await root.manager("ListContainers")) == [before]
    ((_subject, action, details, _flags),) = polkit.check_calls()
    assert action == "org.pyctrd1.container.create"
    assert details == {"verb": "CreateContainer", "image": "busybox",
                       "container_name": "by-nobody"}

    polkit.set_allowed(["org.pyctrd1.container.create"])
    _name, (created,) = nobody(env, create)
    assert "reply" in created, created
    root.created.append(created["reply"][0])  # removed by the root client at the end
    assert await root.prop(created["reply"][0], "Name") == "by-nobody"


@pytest.mark.parametrize("option,value", [
    ("network", {"variant": ["s", "host"]}),
    ("mounts", {"variant": ["a(sss)", [["/", "/host", ""]]]}),
])
async def test_create_reaching_the_host_needs_create_privileged(
        env: Env, polkit: Polkitd, root: Client, option: str, value: Any) -> None:
    (before,) = await root.manager("ListContainers")
    create = mgr("CreateContainer", "sasa{sv}", ["busybox", SLEEPER, {option: value}])
    polkit.set_allowed(["org.pyctrd1.container.create"])
    _name, (denied,) = nobody(env, create)
    assert error_of(denied) == ACCESS_DENIED, denied
    assert "org.pyctrd1.container.create-privileged" in denied["message"]
    assert (await root.manager("ListContainers")) == [before]
    asked = [action for _subject, action, _details, _flags in polkit.check_calls()]
    assert asked == ["org.pyctrd1.container.create", "org.pyctrd1.container.create-privileged"]

    polkit.set_allowed(["org.pyctrd1.container.create",
                        "org.pyctrd1.container.create-privileged"])
    _name, (created,) = nobody(env, create)
    assert "reply" in created, created
    root.created.append(created["reply"][0])


async def test_root_is_allowed_without_asking_polkit(
        env: Env, polkit: Polkitd, root: Client) -> None:
    path = await root.run(SLEEPER)  # CreateContainer, Start
    assert await root.state(path) == "running"
    await root.ctr(path, "Pause")
    await root.ctr(path, "Unpause")
    await root.ctr(path, "Stop", "u", [0])
    await root.ctr(path, "Remove", "b", [False])
    root.created.remove(path)
    assert polkit.check_calls() == []


async def test_reading_is_open_to_everyone(env: Env, polkit: Polkitd, root: Client) -> None:
    path = await root.create(SLEEPER, name="readable")
    props = {"path": path, "interface": PROPERTIES}
    _name, results = nobody(
        env,
        {**props, "member": "Get", "signature": "ss", "body": [CONTAINER, "State"]},
        {**props, "member": "GetAll", "signature": "s", "body": [CONTAINER]},
        {"path": MANAGER_PATH, "interface": "org.freedesktop.DBus.ObjectManager",
         "member": "GetManagedObjects"},
        {"path": path, "interface": "org.freedesktop.DBus.Introspectable",
         "member": "Introspect"},
        mgr("ListContainers"), mgr("ListImages"),
        mgr("GetContainer", "s", ["readable"]), mgr("GetImage", "s", ["busybox"]),
    )
    assert all("reply" in r for r in results), results
    state, all_props, objects, _xml, listed, images, found, image = (r["reply"] for r in results)
    assert state == ["configured"]
    assert all_props[0]["Name"] == "readable"
    assert path in objects[0] and env.daemon.image_path in objects[0]
    assert path in [c[4] for c in listed[0]]
    assert env.daemon.image_id in [i[0] for i in images[0]]
    assert found == [path] and image == [env.daemon.image_path]
    assert polkit.check_calls() == []


async def test_interactive_flag_is_passed_to_polkit(
        env: Env, polkit: Polkitd, root: Client) -> None:
    path = await root.create(SLEEPER)
    nobody(env, ctr(path, "Start", interactive=True), ctr(path, "Start"))
    flags = [f for _subject, _action, _details, f in polkit.check_calls()]
    assert flags == [1, 0]  # CHECK_AUTHORIZATION_FLAGS_ALLOW_USER_INTERACTION
    assert await root.state(path) == "configured"


def test_only_root_may_own_the_name(env: Env) -> None:
    # dbus/org.pyctrd1.conf, loaded by a bus configured like Debian's system
    # bus: root's daemon owns org.pyctrd1 (the fixture); nobody may not.
    _name, (result,) = nobody(env, {
        "destination": "org.freedesktop.DBus", "path": "/org/freedesktop/DBus",
        "interface": "org.freedesktop.DBus", "member": "RequestName", "signature": "su",
        "body": ["org.pyctrd1", 0]})
    assert error_of(result) == ACCESS_DENIED, result


async def test_manager_details_name_the_resolved_target(
        env: Env, polkit: Polkitd, root: Client) -> None:
    # The same details as the object's own method would send (pyctrd.ops.details):
    # a rule keyed on container_id or image_id sees them whichever way it is called.
    path = await root.create(SLEEPER, name="named-target")
    _name, results = nobody(env, mgr("RemoveContainer", "sb", ["named-target", False]),
                            mgr("RemoveImage", "sb", ["busybox", False]))
    assert [error_of(r) for r in results] == [ACCESS_DENIED, ACCESS_DENIED]
    (container, image) = [details for _s, _a, details, _f in polkit.check_calls()]
    assert container == {"verb": "RemoveContainer", "container_id": container_id(path),
                         "container_name": "named-target"}
    assert image == {"verb": "RemoveImage", "image_id": env.daemon.image_id,
                     "image_reference": "busybox"}
    assert await root.state(path) == "configured"


async def test_a_removed_path_is_unknown_object_for_everyone(
        env: Env, polkit: Polkitd, root: Client) -> None:
    path = await root.create(SLEEPER)
    await root.ctr(path, "Remove", "b", [False])
    root.created.remove(path)
    _name, (result,) = nobody(env, ctr(path, "Start"))
    assert error_of(result) == "org.freedesktop.DBus.Error.UnknownObject"
    assert polkit.check_calls() == []
