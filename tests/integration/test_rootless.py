"""A user's own pyctrd on their session bus: rootless containers, for real.

A real unprivileged user (useradd, subordinate ids in /etc/subuid), their own
dbus-daemon and `pyctrd --bus session` run as that user; driven with the
user's own `pyctr --user`. The daemon joins a user namespace mapped from the
user's ranges (newuidmap/newgidmap), kept by a pause process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_pid_gone
from support.registry import Registry, build_layered

from integration.rootless_support import SYSTEM_PYTHON, TestUser, UserSession, running_session

pytestmark = pytest.mark.skipif(not Path("/usr/bin/newuidmap").exists(),
                                reason="needs Debian's uidmap (make test installs it)")


@pytest.fixture(scope="module")
def user() -> Iterator[TestUser]:
    u = TestUser("pyctrd-rl1")
    yield u
    u.remove()


@pytest.fixture(scope="module")
def session(user: TestUser, busybox_tar: Path) -> Iterator[UserSession]:
    with running_session(user, busybox_tar) as s:
        yield s


def test_daemon_runs_in_a_user_namespace_of_the_users_ranges(session: UserSession) -> None:
    pid = session.daemon_pid()
    uid_map = Path(f"/proc/{pid}/uid_map").read_text().split()
    assert uid_map[:3] == ["0", str(session.user.uid), "1"]
    assert uid_map[3] == "1" and int(uid_map[5]) >= 65536
    status = Path(f"/proc/{pid}/status").read_text()
    real_uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert real_uid == str(session.user.uid)  # the daemon is not root on the host
    pause = int((session.run_root / "pause.pid").read_text())
    assert os.readlink(f"/proc/{pause}/ns/user") == os.readlink(f"/proc/{pid}/ns/user")
    assert os.readlink(f"/proc/{pause}/ns/mnt") == os.readlink(f"/proc/{pid}/ns/mnt")
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")


def test_image_files_keep_their_owners_shifted_into_the_users_range(
        session: UserSession) -> None:
    out = session.ok("run", "--rm", "--network", "none", "busybox",
                     "sh", "-c", "stat -c '%u:%g' /bin/busybox /etc/passwd; id -u")
    assert out.split() == ["0:0", "0:0", "0"]
    layers = session.root / "layers"
    owners = {p.stat().st_uid for p in layers.rglob("busybox") if p.is_file()}
    assert owners == {session.user.uid}  # root inside is the user outside
    # uid 1 inside is the first subordinate id outside
    out = session.ok("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                     "touch /tmp/f && chown 1:1 /tmp/f && stat -c %u /tmp/f")
    assert out.strip() == "1"


def test_full_lifecycle_exit_codes_and_logs(session: UserSession) -> None:
    session.ok("create", "--name", "life", "--network", "none", "busybox",
               "sh", "-c", "echo to-out; echo to-err >&2; sleep 1000")
    session.ok("start", "life")
    inspect = json.loads(session.ok("inspect", "life"))[0]
    assert inspect["State"]["Status"] == "running" and inspect["State"]["Pid"] > 0
    assert session.ok("exec", "life", "sh", "-c", "echo from-exec; exit 0").strip() == "from-exec"
    done = session.pyctr("exec", "life", "sh", "-c", "exit 5")
    assert done.returncode == 5
    session.ok("stop", "-t", "0", "life")
    assert session.ok("inspect", "--format", "{{.State.ExitCode}}", "life").strip() == "137"
    logs = session.pyctr("logs", "life")
    assert "to-out" in logs.stdout and "to-err" in logs.stderr
    session.ok("start", "life")
    session.ok("kill", "life")
    assert session.ok("wait", "life").strip() == "137"
    session.ok("rm", "life")
    done = session.pyctr("run", "--network", "none", "--rm", "busybox", "sh", "-c", "exit 7")
    assert done.returncode == 7


def test_export_and_commit(session: UserSession) -> None:
    session.ok("run", "--name", "exp", "--network", "none", "busybox",
               "sh", "-c", "echo made-here > /marker; chown 7:7 /marker")
    out_file = session.base / "exp.tar"
    session.ok("export", "-o", str(out_file), "exp")
    with tarfile.open(out_file) as tar:
        member = tar.getmember("./marker") if "./marker" in tar.getnames() \
            else tar.getmember("marker")
        assert (member.uid, member.gid) == (7, 7)
        assert tar.extractfile(member).read() == b"made-here\n"  # type: ignore[union-attr]
    session.ok("commit", "exp", "committed")
    out = session.ok("run", "--rm", "--network", "none", "committed",
                     "sh", "-c", "cat /marker; stat -c %u /marker")
    assert out.split() == ["made-here", "7"]
    session.ok("rm", "exp")
    session.ok("rmi", "committed")


def test_mount_is_inside_the_daemons_mount_namespace(session: UserSession) -> None:
    session.ok("create", "--name", "mnt", "--network", "none", "busybox", "true")
    point = session.ok("mount", "mnt").strip()
    pid = session.daemon_pid()
    with open(f"/proc/{pid}/mountinfo") as f:
        assert any(line.split()[4] == point for line in f)
    with open("/proc/self/mountinfo") as f:  # not the host's
        assert not any(line.split()[4] == point for line in f)
    # the user reaches it as README says
    pause = (session.run_root / "pause.pid").read_text().strip()
    done = session.user.run(["nsenter", "-U", "-m", "-t", pause, "ls", point])
    assert done.returncode == 0 and "bin" in done.stdout.split(), done.stderr
    session.ok("umount", "mnt")
    session.ok("rm", "mnt")


def test_kill9_of_the_daemon_then_restart_readopts_a_running_container(
        session: UserSession) -> None:
    session.ok("run", "-d", "--name", "survivor", "--network", "none", "busybox",
               "sleep", "1000")
    pid = json.loads(session.ok("inspect", "survivor"))[0]["State"]["Pid"]
    session.kill9()
    assert Path(f"/proc/{pid}").exists()  # conmon keeps it running
    session.start()
    assert session.ok("inspect", "--format", "{{.State.Status}} {{.State.Pid}}",
                      "survivor").split() == ["running", str(pid)]
    assert session.ok("exec", "survivor", "echo", "still-here").strip() == "still-here"
    session.ok("stop", "-t", "0", "survivor")
    assert session.ok("wait", "survivor").strip() == "137"
    session.ok("rm", "survivor")


def test_limits_are_not_supported_without_a_delegated_cgroup(session: UserSession) -> None:
    done = session.pyctr("create", "--network", "none", "--memory", "64m", "busybox", "true")
    assert done.returncode != 0 and "memory_limit needs a cgroup" in done.stderr
    done = session.user.run(
        ["gdbus", "call", "--session", "-d", "org.pyctrd1", "-o", "/org/pyctrd1", "-m",
         "org.pyctrd1.Manager.CreateContainer", "busybox", "['true']",
         "{'pids_limit': <uint64 10>, 'network': <'none'>}"], env=session.env())
    assert done.returncode != 0 and "org.pyctrd1.Error.NotSupported" in done.stderr
    assert session.ok("ps", "-aq").strip() == ""
    # without limits, the same works; pausing and stats, which need the cgroup too,
    # are refused on a running container, which keeps running
    session.ok("run", "-d", "--name", "nocg", "--network", "none", "busybox", "sleep", "1000")
    for verb in (["pause"], ["unpause"], ["stats", "--no-stream"]):
        done = session.pyctr(*verb, "nocg")
        assert done.returncode != 0 and "needs a cgroup of the container's own" in done.stderr
    assert session.ok("inspect", "--format", "{{.State.Status}}", "nocg").strip() == "running"
    session.ok("rm", "-f", "-t", "0", "nocg")


def test_a_user_without_subordinate_ids_gets_one_clear_error(
        tmp_path: Path) -> None:
    user = TestUser("pyctrd-rl-noids", subids=False)
    session = UserSession(user, Path(f"/tmp/pyctrd-rootless-{os.getpid()}-{user.name}"))
    try:
        done = user.run(session.daemon_argv(), timeout=30)
        assert done.returncode == 4, (done.returncode, done.stdout, done.stderr)
        assert done.stderr.count("pyctrd:") == 1
        assert "/etc/subuid" in done.stderr and user.name in done.stderr
        assert "Traceback" not in done.stderr
        assert subprocess.run(["pgrep", "-U", str(user.uid)], capture_output=True,
                              check=False).returncode == 1  # no pause process left
        assert not (session.run_root / "pause.pid").exists()
    finally:
        session.close()
        user.remove()


def test_pull_from_a_local_registry(session: UserSession, busybox_tar: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    if not shutil.which("docker-registry") or not shutil.which("umoci"):
        pytest.skip("needs docker-registry and umoci (make deps installs them)")
    layout = build_layered(busybox_tar, tmp_path_factory.mktemp("rl-layered"),
                           [{"etc/second": b"second layer\n"}])
    registry = Registry(tmp_path_factory.mktemp("rl-registry")).start()
    try:
        ref = registry.push(f"oci:{layout}:top", "test/top:v1")
        session.ok("pull", "--tls-verify=false", ref)
        out = session.ok("run", "--rm", "--network", "none", ref,
                         "sh", "-c", "cat /etc/second; stat -c %u /bin/busybox")
        assert out.split() == ["second", "layer", "0"]
        session.ok("rmi", ref)
    finally:
        registry.stop()


def test_two_users_daemons_side_by_side_each_sees_only_its_own(
        session: UserSession, busybox_tar: Path) -> None:
    other_user = TestUser("pyctrd-rl2")
    try:
        with running_session(other_user, busybox_tar, "rl2") as other:
            mine = session.ok("run", "-d", "--name", "same-name", "--network", "none",
                              "busybox", "sleep", "1000").strip()
            theirs = other.ok("run", "-d", "--name", "same-name", "--network", "none",
                              "busybox", "sleep", "1000").strip()
            assert mine != theirs
            assert session.ok("ps", "-aq", "--no-trunc").split() == [mine]
            assert other.ok("ps", "-aq", "--no-trunc").split() == [theirs]
            # separate namespaces, separate ranges
            assert (os.readlink(f"/proc/{session.daemon_pid()}/ns/user")
                    != os.readlink(f"/proc/{other.daemon_pid()}/ns/user"))
            # one user cannot reach the other's daemon, on the bus or on Varlink
            env = {**other.env(), "DBUS_SESSION_BUS_ADDRESS": session.address,
                   "XDG_RUNTIME_DIR": str(session.runtime_dir)}
            code = ("import sys; sys.argv[0] = 'pyctr'; "
                    "from pyctrd.cli.main import main; main()")
            done = other_user.run([str(SYSTEM_PYTHON), "-c", code, "--user", "ps", "-a"],
                                  env=env)
            assert done.returncode != 0 and mine[:12] not in done.stdout
            other.ok("rm", "-f", "-t", "0", "same-name")
            session.ok("rm", "-f", "-t", "0", "same-name")
    finally:
        other_user.remove()


def test_with_the_pause_process_gone_a_restart_joins_a_conmons_namespaces(
        session: UserSession) -> None:
    session.ok("run", "-d", "--name", "orphan", "--network", "none", "busybox", "sleep", "1000")
    pause_file = session.run_root / "pause.pid"
    old_pause = int(pause_file.read_text())
    userns = os.readlink(f"/proc/{old_pause}/ns/user")
    session.kill9()
    os.kill(old_pause, signal.SIGKILL)
    assert wait_pid_gone(old_pause, 10)
    session.start()
    assert "joined a conmon's namespaces" in session.log()
    new_pause = int(pause_file.read_text())
    assert new_pause != old_pause
    assert os.readlink(f"/proc/{new_pause}/ns/user") == userns  # the same namespace
    assert os.readlink(f"/proc/{session.daemon_pid()}/ns/user") == userns
    assert session.ok("exec", "orphan", "echo", "reached").strip() == "reached"
    session.ok("rm", "-f", "-t", "0", "orphan")
