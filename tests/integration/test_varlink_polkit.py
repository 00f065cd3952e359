"""Who may call what over Varlink: a system daemon, dbusmock's polkitd deciding.

pyctrd runs with --bus system on a private system-like bus (its socket then
mode 0666, every mutating method behind polkit); callers are root (this
process) and nobody (65534, `python -m varlink.cli` under setpriv). The mock
decides by action id and logs what it was asked: the unix-process subject
(pid, start time, uid), the action and the details.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.system_bus import (
    Polkitd,
    SystemBus,
    SystemDaemon,
    polkit_system,
)
from integration.test_varlink import CONTAINER, IMAGE, CliStream, Result, cli

NOBODY = 65534
AS_NOBODY = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
MANAGE = "org.pyctrd1.container.manage"
CREATE = "org.pyctrd1.container.create"
IMAGE_MANAGE = "org.pyctrd1.image.manage"


@dataclass
class Env:
    bus: SystemBus
    polkit: Polkitd
    daemon: SystemDaemon

    @property
    def sock(self) -> Path:
        return self.daemon.run_root / "io.pyctrd"


@pytest.fixture(scope="module")
def env(busybox_tar: Path) -> Iterator[Env]:
    # The daemon's state in the bus's world-traversable directory (None), not under
    # pytest's 0700 tmp_path: nobody must reach the socket.
    with polkit_system("varlink", None, busybox_tar, mock=True) as (
            bus, polkit, daemon):
        yield Env(bus, polkit, daemon)


@pytest.fixture
def polkit(env: Env) -> Iterator[Polkitd]:
    """The mock, allowing nothing, with an empty call log."""
    env.polkit.set_allowed([])
    env.polkit.clear_calls()
    yield env.polkit
    env.polkit.set_allowed([])


@pytest.fixture
def container(env: Env) -> Iterator[str]:
    """A configured container made by root; removed afterwards."""
    cid = cli(env.sock, f"{CONTAINER}.Create", {
        "image": "busybox", "command": ["sleep", "1000"]}).reply["id"]
    yield str(cid)
    cli(env.sock, f"{CONTAINER}.Remove", {"name": cid, "force": True})


def nobody(env: Env, method: str, params: dict[str, Any] | None = None) -> Result:
    return cli(env.sock, method, params, prefix=AS_NOBODY)


def state(env: Env, cid: str) -> str:
    return str(cli(env.sock, f"{CONTAINER}.Get", {"name": cid}).reply["container"]["state"])


def test_the_socket_is_open_to_all_and_its_directory_only_traversable(env: Env) -> None:
    st = env.sock.lstat()
    assert stat.S_IMODE(st.st_mode) == 0o666 and st.st_uid == 0
    mode = stat.S_IMODE(env.sock.parent.stat().st_mode)
    assert mode & 0o001 and not mode & 0o006  # others may pass, not list or write


def test_denied_start_changes_nothing(env: Env, polkit: Polkitd, container: str) -> None:
    polkit.set_allowed(["org.pyctrd1.container.inspect", CREATE])
    denied = nobody(env, f"{CONTAINER}.Start", {"name": container})
    assert denied.error_name() == "AccessDenied"
    params = denied.error["parameters"]  # type: ignore[index]
    assert params["action"] == MANAGE
    assert "not allowed" in params["message"] and MANAGE in params["message"]
    assert state(env, container) == "configured"

    # What pyctrd asked: a unix-process subject for the caller, as on D-Bus otherwise.
    ((subject, action, details, flags),) = polkit.check_calls()
    kind, fields = subject
    assert kind == "unix-process"
    assert fields["uid"] == NOBODY and fields["pid"] > 0 and fields["start-time"] > 0
    assert action == MANAGE and flags == 0
    assert details == {"verb": "Start", "container_id": container,
                       "container_name": cli(env.sock, f"{CONTAINER}.Get", {
                           "name": container}).reply["container"]["name"]}


def test_allowed_start_runs(env: Env, polkit: Polkitd, container: str) -> None:
    polkit.set_allowed([MANAGE])
    assert nobody(env, f"{CONTAINER}.Start", {"name": container}).ok()
    assert state(env, container) == "running"
    assert nobody(env, f"{CONTAINER}.Stop", {"name": container, "timeout": 0}).ok()
    assert state(env, container) == "exited"


def test_each_guarded_method_asks_for_its_dbus_action(
        env: Env, polkit: Polkitd, container: str) -> None:
    cases = [
        (f"{CONTAINER}.Create", {"image": "busybox", "command": ["true"],
                                 "options": {"name": "by-nobody"}}, CREATE),
        (f"{CONTAINER}.Remove", {"name": container}, CREATE),
        (f"{CONTAINER}.Kill", {"name": container, "signal": "TERM"}, MANAGE),
        (f"{CONTAINER}.Mount", {"name": container}, "org.pyctrd1.container.mount"),
        (f"{CONTAINER}.Inspect", {"name": container}, "org.pyctrd1.container.inspect"),
        (f"{IMAGE}.Remove", {"reference": "busybox"}, IMAGE_MANAGE),
    ]
    for method, params, action in cases:
        polkit.clear_calls()
        result = nobody(env, method, params)
        assert result.error_name() == "AccessDenied", (method, result)
        assert [c[1] for c in polkit.check_calls()] == [action], method
    assert state(env, container) == "configured"
    names = [c["name"] for c in cli(env.sock, f"{CONTAINER}.List").reply["containers"]]
    assert "by-nobody" not in names


def test_details_are_those_dbus_sends(env: Env, polkit: Polkitd) -> None:
    """Image.Remove is D-Bus RemoveImage (action, details, untagging); Create names
    the image as given and the new container's name."""
    busybox = cli(env.sock, f"{IMAGE}.Get", {"reference": "busybox"}).reply["image"]
    assert nobody(env, f"{IMAGE}.Remove", {"reference": "busybox"}).error_name() == \
        "AccessDenied"
    assert nobody(env, f"{CONTAINER}.Create", {
        "image": "busybox", "command": ["true"],
        "options": {"name": "by-nobody", "stop_timeout": 2}}).error_name() == "AccessDenied"
    sent = [(action, details) for _subject, action, details, _flags in polkit.check_calls()]
    assert sent == [
        (IMAGE_MANAGE, {"verb": "RemoveImage", "image_id": busybox["id"],
                        "image_reference": busybox["reference"]}),
        (CREATE, {"verb": "CreateContainer", "image": "busybox",
                  "container_name": "by-nobody"}),
    ]


def test_root_is_allowed_without_asking_polkit(env: Env, polkit: Polkitd,
                                               container: str) -> None:
    assert cli(env.sock, f"{CONTAINER}.Start", {"name": container}).ok()
    assert cli(env.sock, f"{CONTAINER}.Stop", {"name": container, "timeout": 0}).ok()
    assert cli(env.sock, f"{CONTAINER}.Inspect", {"name": container}).reply["info"]["id"] \
        == container
    assert polkit.check_calls() == []


def test_reading_is_open_to_everyone(env: Env, polkit: Polkitd, container: str) -> None:
    assert container in [c["id"] for c in
                         nobody(env, f"{CONTAINER}.List").reply["containers"]]
    assert nobody(env, f"{CONTAINER}.Get", {"name": container}).reply["container"]["id"] \
        == container
    assert nobody(env, f"{IMAGE}.List").reply["images"]
    assert nobody(env, "org.varlink.service.GetInfo").reply["vendor"] == "pyctrd"
    watch = CliStream(env.sock, f"{CONTAINER}.Watch", prefix=AS_NOBODY)
    try:
        assert watch.next()["event"]["kind"] == "ready"
    finally:
        watch.close()
    assert polkit.check_calls() == []


def test_polkit_down_denies_all_but_root(env: Env, polkit: Polkitd, container: str) -> None:
    polkit.set_allowed([MANAGE])
    polkit.stop()
    try:
        denied = nobody(env, f"{CONTAINER}.Start", {"name": container})
        assert denied.error_name() == "AccessDenied"
        assert "polkit" in denied.error["parameters"]["message"]  # type: ignore[index]
        assert state(env, container) == "configured"
        assert cli(env.sock, f"{CONTAINER}.Start", {"name": container}).ok()  # root
        cli(env.sock, f"{CONTAINER}.Stop", {"name": container, "timeout": 0})
    finally:
        polkit.start()
