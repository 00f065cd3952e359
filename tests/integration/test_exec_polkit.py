"""Exec and ExecSession methods under polkit (the dbusmock polkitd): an
unprivileged caller without a grant is refused and nothing changes; with one,
the details name the container and the command."""

from __future__ import annotations

from conftest import Client, container_id

from integration.system_bus import Polkitd
from integration.test_exec import exec_in, managed_sessions, session_call
from integration.test_polkit_mock import (  # noqa: F401 (fixtures)
    ACCESS_DENIED,
    SLEEPER,
    Env,
    ctr,
    env,
    error_of,
    nobody,
    polkit,
    root,
)

EXEC = "org.pyctrd1.container.exec"
EXEC_SESSION = "org.pyctrd1.ExecSession"


def exec_call(path: str, command: list[str]) -> dict:
    return ctr(path, "Exec", "asa{sv}", [command, {}])


async def test_exec_refused_without_grant_state_unchanged(
        env: Env, polkit: Polkitd, root: Client) -> None:  # noqa: F811 (fixtures)
    path = await root.run(SLEEPER)
    before = await managed_sessions(root)
    polkit.set_allowed(["org.pyctrd1.container.manage", "org.pyctrd1.container.attach"])
    _name, (denied,) = nobody(env, exec_call(path, ["touch", "/by-nobody"]))
    assert error_of(denied) == ACCESS_DENIED, denied
    assert EXEC in denied["message"]
    assert await managed_sessions(root) == before
    assert await root.state(path) == "running"
    ((_subject, action, details, _flags),) = polkit.check_calls()
    assert action == EXEC
    assert details == {"verb": "Exec", "container_id": container_id(path),
                       "container_name": await root.prop(path, "Name"),
                       "command": "touch /by-nobody"}
    # nothing ran: the file is not there
    session, sock = await exec_in(root, path, ["test", "-e", "/by-nobody"])
    sock.close()
    assert await session_call(root, session, "Wait") == [1]


async def test_exec_allowed_and_session_methods_guarded(
        env: Env, polkit: Polkitd, root: Client) -> None:  # noqa: F811 (fixtures)
    path = await root.run(SLEEPER)
    polkit.set_allowed([EXEC])
    _name, (allowed,) = nobody(env, exec_call(path, ["sleep", "1000"]))
    assert "reply" in allowed, allowed
    session = allowed["reply"][0]
    assert allowed["reply"][1] == "fd"
    assert await root.get_property(session, EXEC_SESSION, "State") == "running"
    polkit.set_allowed([])
    polkit.clear_calls()
    kill = {"path": session, "interface": EXEC_SESSION, "member": "Kill", "signature": "s",
            "body": ["KILL"]}
    _name, (denied,) = nobody(env, kill)
    assert error_of(denied) == ACCESS_DENIED
    ((_subject, action, details, _flags),) = polkit.check_calls()
    assert action == EXEC and details["verb"] == "Kill"
    assert details["command"] == "sleep 1000"
    assert await root.get_property(session, EXEC_SESSION, "State") == "running"
    polkit.set_allowed([EXEC])
    _name, (killed,) = nobody(env, kill)
    assert killed == {"reply": []}
    assert await session_call(root, session, "Wait") == [137]

