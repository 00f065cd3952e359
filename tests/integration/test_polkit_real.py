"""The real polkitd decides, with the project's actions and a rules file.

A private bus configured like Debian's system bus, the real polkitd on it
(it reads actions from /usr/share/polkit-1/actions and rules from
/etc/polkit-1/rules.d, so the fixture installs ours there and removes them
after), pyctrd ``--bus system``, and two throwaway users: one in a group the
shipped policy/50-pyctrd.rules.example grants, one outside it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CONTAINER, MANAGER, MANAGER_PATH, REPO, Client
from dbus_fast import Message, MessageType

from integration.system_bus import (
    POLKITD,
    Polkitd,
    SystemBus,
    SystemDaemon,
    call_as,
    polkit_system,
)

ACTIONS_FILE = Path("/usr/share/polkit-1/actions/org.pyctrd1.policy")
RULES_DIR = Path("/etc/polkit-1/rules.d")
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
INTERACTIVE_REQUIRED = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
SLEEPER = ["sleep", "1000"]


@dataclass
class Env:
    bus: SystemBus
    polkit: Polkitd
    daemon: SystemDaemon
    member: str  # in the granted group
    outsider: str  # in no group the rules know
    own_container: str  # the one container name a rule grants the outsider


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[str, str, str]]:
    """(group, member, outsider): made here, deleted after."""
    if not (shutil.which("useradd") and shutil.which("groupadd") and POLKITD.exists()):
        pytest.skip("needs useradd, groupadd and polkitd (/usr/lib/polkit-1/polkitd)")
    tag = f"pyctrdt{os.getpid() % 100000}"
    group, member, outsider = tag, f"{tag}in", f"{tag}out"
    made: list[tuple[str, str]] = []
    try:
        run("groupadd", "--system", group)
        made.append(("groupdel", group))
        for user, extra in ((member, ["--groups", group]), (outsider, [])):
            run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                "--user-group", *extra, user)
            made.append(("userdel", user))
        yield group, member, outsider
    finally:
        for command, name in reversed(made):
            subprocess.run([command, name], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def polkit_files(accounts: tuple[str, str, str]) -> Iterator[str]:
    """Our actions and a rules file in polkitd's directories; the granted container name."""
    group, _member, outsider = accounts
    own_container = f"{outsider}-web"
    example = (REPO / "policy" / "50-pyctrd.rules.example").read_text()
    assert example.count('isInGroup("pyctrd")') == 1
    rules = example.replace('isInGroup("pyctrd")', f'isInGroup("{group}")') + f"""
// the test's own: the outsider may manage one container, picked by its name
polkit.addRule(function(action, subject) {{
    if (action.id == "org.pyctrd1.container.manage" && subject.user == "{outsider}" &&
        action.lookup("container_name") == "{own_container}") {{
        return polkit.Result.YES;
    }}
}});
"""
    rules_file = RULES_DIR / f"10-{group}.rules"
    saved_actions = ACTIONS_FILE.read_bytes() if ACTIONS_FILE.exists() else None
    try:
        shutil.copyfile(REPO / "policy" / "org.pyctrd1.policy", ACTIONS_FILE)
        ACTIONS_FILE.chmod(0o644)
        rules_file.write_text(rules)
        rules_file.chmod(0o644)  # polkitd skips rules it cannot read as its own user
        yield own_container
    finally:
        rules_file.unlink(missing_ok=True)
        if saved_actions is None:
            ACTIONS_FILE.unlink(missing_ok=True)
        else:
            ACTIONS_FILE.write_bytes(saved_actions)


@pytest.fixture(scope="module")
def env(accounts: tuple[str, str, str], polkit_files: str, busybox_tar: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    _group, member, outsider = accounts
    with polkit_system("polkit-real", tmp_path_factory.mktemp("pyctrd-polkit"), busybox_tar,
                       mock=False) as (bus, polkit, daemon):
        yield Env(bus, polkit, daemon, member, outsider, polkit_files)


@pytest.fixture
async def root(env: Env, client_factory: Any) -> Client:
    return await client_factory(env.bus.address)


def start(path: str, interactive: bool = False) -> dict[str, Any]:
    return {"path": path, "interface": CONTAINER, "member": "Start",
            "interactive": interactive}


def as_user(env: Env, user: str, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    out = call_as(user, env.bus.address, list(calls))
    assert out["uid"] == pwd.getpwnam(user).pw_uid
    return list(out["results"])


def test_accounts_are_as_the_rules_expect(env: Env) -> None:
    group = grp.getgrnam(env.member.removesuffix("in"))
    assert env.member in group.gr_mem and env.outsider not in group.gr_mem


async def test_a_member_of_the_granted_group_may_start(env: Env, root: Client) -> None:
    path = await root.create(SLEEPER)
    (result,) = as_user(env, env.member, start(path))
    assert result == {"reply": []}
    assert await root.state(path) == "running"
    await root.ctr(path, "Stop", "u", [0])


async def test_anyone_else_is_refused_and_nothing_changes(env: Env, root: Client) -> None:
    path = await root.create(SLEEPER)
    (before,) = await root.manager("ListContainers")
    create = {"path": MANAGER_PATH, "interface": MANAGER, "member": "CreateContainer",
              "signature": "sasa{sv}", "body": ["busybox", SLEEPER, {}], "interactive": True}
    # The policy's default for a caller outside any session is auth_admin: with
    # interaction allowed polkit finds no agent to ask and says no; without,
    # pyctrd says authentication would be needed.
    results = as_user(env, env.outsider, start(path, interactive=True), start(path), create)
    assert [r.get("error") for r in results] == [ACCESS_DENIED, INTERACTIVE_REQUIRED,
                                                 ACCESS_DENIED], results
    assert "org.pyctrd1.container.manage" in results[0]["message"]
    assert await root.state(path) == "configured"
    assert (await root.manager("ListContainers")) == [before]


async def test_rules_can_grant_by_container_name(env: Env, root: Client) -> None:
    own = await root.create(SLEEPER, name=env.own_container)
    other = await root.create(SLEEPER, name=f"{env.own_container}2")
    results = as_user(env, env.outsider, start(own, interactive=True),
                      start(other, interactive=True))
    assert [r.get("error") for r in results] == [None, ACCESS_DENIED], results
    assert [await root.state(own), await root.state(other)] == ["running", "configured"]
    await root.ctr(own, "Stop", "u", [0])


async def test_without_polkitd_only_root_is_allowed(env: Env, root: Client) -> None:
    path = await root.create(SLEEPER)
    env.polkit.stop()
    try:
        (result,) = as_user(env, env.member, start(path, interactive=True))
        assert result.get("error") == ACCESS_DENIED, result
        assert "polkit answered org.freedesktop.DBus.Error.ServiceUnknown" in result["message"]
        assert await root.state(path) == "configured"
        await root.ctr(path, "Start")  # root needs no polkit
        assert await root.state(path) == "running"
        await root.ctr(path, "Stop", "u", [0])
    finally:
        env.polkit.start()
    (result,) = as_user(env, env.member, start(path))
    assert result == {"reply": []}
    await root.ctr(path, "Stop", "u", [0])


@pytest.mark.parametrize("escape", [
    {"seccomp": {"variant": ["s", "unconfined"]}},
    {"privileged": {"variant": ["b", True]}},
    {"cap_add": {"variant": ["as", ["SYS_ADMIN"]]}},
    {"mounts": {"variant": ["a(sss)", [["/", "/host", ""]]]}},
], ids=["seccomp", "privileged", "cap_add", "mounts"])
async def test_the_example_grants_confined_creates_only(
        env: Env, root: Client, escape: dict[str, Any]) -> None:
    """Issue 13: the shipped rules make a member able to create containers, but
    not root-equivalent ones (create-privileged stays auth_admin)."""
    (before,) = await root.manager("ListContainers")
    confined, escaping = ({"path": MANAGER_PATH, "interface": MANAGER,
                           "member": "CreateContainer", "signature": "sasa{sv}",
                           "body": ["busybox", SLEEPER, options]}
                          for options in ({}, escape))
    denied, created = as_user(env, env.member, escaping, confined)
    assert denied.get("error") == INTERACTIVE_REQUIRED, denied
    assert "org.pyctrd1.container.create-privileged" in denied["message"]
    assert "reply" in created, created
    root.created.append(created["reply"][0])
    (after,) = await root.manager("ListContainers")
    assert len(after) == len(before) + 1


GERMAN = "de_DE.UTF-8"
CATALOGUE = Path("/usr/share/locale/de/LC_MESSAGES/pyctrd.mo")


@pytest.fixture
def german() -> Iterator[None]:
    """The German catalogue installed as make install installs it, and the
    locale a German desktop has (generated here if the host lacks it)."""
    if "de_DE.utf8" not in subprocess.run(["locale", "-a"], capture_output=True,
                                          text=True, check=True).stdout.split():
        run("localedef", "-i", "de_DE", "-f", "UTF-8", GERMAN)
    had = CATALOGUE.exists()
    if not had:
        CATALOGUE.parent.mkdir(parents=True, exist_ok=True)
        run("msgfmt", str(REPO / "po" / "de.po"), "-o", str(CATALOGUE))
    yield
    if not had:
        CATALOGUE.unlink()


async def test_polkitd_describes_the_actions_in_german(env: Env, german: None,
                                                     root: Client) -> None:
    # What an authentication agent shows a German user: it asks polkitd for the
    # actions in its locale (pkaction itself always asks in C), and polkitd looks
    # the installed policy's strings up in the pyctrd gettext domain.
    reply = await root.bus.call(Message(
        destination="org.freedesktop.PolicyKit1",
        path="/org/freedesktop/PolicyKit1/Authority",
        interface="org.freedesktop.PolicyKit1.Authority", member="EnumerateActions",
        signature="s", body=[GERMAN]))
    assert reply is not None and reply.message_type is MessageType.METHOD_RETURN, reply
    described = {action[0]: (action[1], action[2]) for action in reply.body[0]}
    assert described["org.pyctrd1.container.manage"] == (
        "Container starten, stoppen und ihnen Signale senden",
        "Legitimierung ist erforderlich, um Container zu starten, zu stoppen, anzuhalten "
        "oder ihnen Signale zu senden.")
    ours = [a for a in described if a.startswith("org.pyctrd1.")]
    assert len(ours) >= 10
    for action in ours:  # every action is translated, none falls back to English
        assert not described[action][1].startswith("Authentication"), action
