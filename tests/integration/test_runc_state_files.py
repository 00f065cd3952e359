"""pyctrd.oci.runcstate against real runc: the status read from runc's files is
`runc state`'s, deleting a stopped container in-process leaves what
`runc delete --force` leaves (no state directory, no cgroup, unknown to runc),
and starting a created one in-process is `runc start` (running, the command
exec'd, no exec fifo), with anything runc would refuse left to runc."""

import asyncio
import errno
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.logging_runc import logging_runc, verbs

from pyctrd.errors import RuntimeFailed
from pyctrd.oci import runcstate
from pyctrd.oci.runtime import OCIRuntime

RUNC = shutil.which("runc") or "/usr/sbin/runc"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runc needs root")


class Runc:
    def __init__(self, base: Path) -> None:
        self.root = base / "runc-root"
        self.bundle = base / "bundle"
        self.ids: list[str] = []
        rootfs = self.bundle / "rootfs" / "bin"
        rootfs.mkdir(parents=True)
        shutil.copy(BUSYBOX, rootfs / "busybox")
        for tool in ("sh", "sleep"):
            (rootfs / tool).symlink_to("busybox")
        self.run("spec", "--bundle", str(self.bundle), root=False)
        config = json.loads((self.bundle / "config.json").read_text())
        config["process"].update(terminal=False, args=["sleep", "1000"])
        (self.bundle / "config.json").write_text(json.dumps(config))

    def run(self, *args: str, root: bool = True, check: bool = True
            ) -> subprocess.CompletedProcess[bytes]:
        argv = [RUNC, f"--root={self.root}", *args] if root else [RUNC, *args]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=30, check=check)

    def create(self, cid: str) -> None:
        self.ids.append(cid)
        # the container's init keeps runc's stdio: pipes would never reach EOF
        subprocess.run([RUNC, f"--root={self.root}", "create", "--bundle", str(self.bundle),
                        cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30, check=True)

    def state(self, cid: str) -> dict[str, Any] | None:
        done = self.run("state", cid, check=False)
        if done.returncode != 0:
            assert b"does not exist" in done.stderr, done.stderr
            return None
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    def cgroup_paths(self, cid: str) -> list[Path]:
        state = json.loads((self.root / cid / "state.json").read_text())
        return [Path(p) for p in state["cgroup_paths"].values()]

    def stop(self, cid: str) -> None:
        pid = self.state(cid)["pid"]  # type: ignore[index]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (self.state(cid) or {}).get("status") != "stopped":
            assert time.monotonic() < deadline, "the container did not stop"
            time.sleep(0.01)

    def cleanup(self) -> None:
        for cid in self.ids:
            self.run("delete", "--force", cid, check=False)


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[Runc]:
    r = Runc(tmp_path)
    try:
        yield r
    finally:
        r.cleanup()


def agree(runc: Runc, cid: str) -> str:
    ours = runcstate.read_state(runc.root, cid)
    theirs = runc.state(cid)
    if theirs is None:
        assert ours is None
        return "absent"
    assert ours is not None
    assert (ours["status"], ours["pid"]) == (theirs["status"], theirs["pid"])
    # the fields read without decoding the whole file are the decoded ones
    brief = runcstate.load_brief(runc.root / cid, runcstate.DELETE_KEYS)
    full = runcstate.load(runc.root / cid)
    assert brief is not None and full is not None
    assert brief == {k: full[k] if k in full else full["config"][k] for k in brief}
    return str(ours["status"])


def test_status_from_files_is_runc_state_in_every_state(runc: Runc) -> None:
    cid = "pyctrd-state-files"
    assert agree(runc, cid) == "absent"
    runc.create(cid)
    assert agree(runc, cid) == "created"
    runc.run("start", cid)
    assert agree(runc, cid) == "running"
    runc.run("pause", cid)
    assert agree(runc, cid) == "paused"
    runc.run("resume", cid)
    assert agree(runc, cid) == "running"
    runc.stop(cid)
    assert agree(runc, cid) == "stopped"


def test_created_container_whose_init_died_is_stopped(runc: Runc) -> None:
    cid = "pyctrd-created-died"
    runc.create(cid)
    runc.stop(cid)
    assert agree(runc, cid) == "stopped"


def test_delete_of_a_stopped_container_equals_runc_delete_force(runc: Runc) -> None:
    by_runc, by_us = "pyctrd-del-runc", "pyctrd-del-us"
    paths: dict[str, list[Path]] = {}
    for cid in (by_runc, by_us):
        runc.create(cid)
        runc.run("start", cid)
        paths[cid] = runc.cgroup_paths(cid)
        # a cgroup made inside the container's (a nested manager does so): removed too
        (paths[cid][0] / "nested").mkdir()
        runc.stop(cid)
        assert all(p.is_dir() for p in paths[cid])

    runc.run("delete", "--force", by_runc)
    assert runcstate.delete_stopped(runc.root, by_us)

    for cid in (by_runc, by_us):
        assert runc.state(cid) is None
        assert not (runc.root / cid).exists()
        assert [p for p in paths[cid] if p.exists()] == []
    assert json.loads(runc.run("list", "--format", "json").stdout or b"null") in (None, [])
    # gone already: absent is fine, as for runc delete --force
    assert runcstate.delete_stopped(runc.root, by_us)


@pytest.mark.parametrize("how", ["created", "running", "paused"])
def test_delete_of_a_live_container_is_left_to_runc(runc: Runc, how: str) -> None:
    cid = f"pyctrd-live-{how}"
    runc.create(cid)
    if how != "created":
        runc.run("start", cid)
    if how == "paused":
        runc.run("pause", cid)
    assert not runcstate.delete_stopped(runc.root, cid)
    assert agree(runc, cid) == how
    assert all(p.is_dir() for p in runc.cgroup_paths(cid))


def test_hooks_or_a_shared_pid_namespace_are_left_to_runc(tmp_path: Path) -> None:
    base = {"init_process_pid": 0, "init_process_start": 0, "cgroup_paths": {},
            "config": {"namespaces": [{"type": "NEWPID", "path": ""}], "Hooks": {}}}
    cases = {
        "plain": (base, True),
        "hooks": ({**base, "config": {**base["config"],
                                     "Hooks": {"poststop": [{"path": "/bin/true"}]}}}, False),
        "hostpid": ({**base, "config": {"namespaces": [], "Hooks": None}}, False),
        "garbled": (None, False),
    }
    for cid, (state, deletable) in cases.items():
        directory = tmp_path / cid
        directory.mkdir()
        (directory / "state.json").write_text(json.dumps(state) if state else "{")
        assert runcstate.delete_stopped(tmp_path, cid) is deletable, cid
        assert directory.exists() is not deletable, cid


def test_brief_reading_is_not_fooled_by_strings_in_the_config(tmp_path: Path) -> None:
    tricky = (',"init_process_pid":99,"init_process_start":1,"cgroup_paths":{},'
              '"Hooks":{"poststop":[{"path":"/x"}]},"namespaces":[]}')
    state = {"id": "x", "init_process_pid": 12, "init_process_start": 345,
             "config": {"labels": [tricky], "mount_label": tricky,
                        "namespaces": [{"type": "NEWPID", "path": ""}],
                        "Hooks": {"poststop": None}},
             "cgroup_paths": {"": "/sys/fs/cgroup/unified/x", "pids": "/sys/fs/cgroup/pids/x"},
             "intel_rdt_path": ""}
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "state.json").write_text(json.dumps(state, separators=(",", ":")))
    assert runcstate.load_brief(tmp_path / "x", runcstate.DELETE_KEYS) == {
        "init_process_pid": 12, "init_process_start": 345,
        "cgroup_paths": state["cgroup_paths"], "intel_rdt_path": "",
        "namespaces": [{"type": "NEWPID", "path": ""}], "Hooks": {"poststop": None}}
    assert runcstate.load_brief(tmp_path / "absent") is None
    # a key it cannot find: the whole file decoded, the same answer
    del state["intel_rdt_path"]
    (tmp_path / "x" / "state.json").write_text(json.dumps(state, indent=1))
    assert runcstate.load_brief(tmp_path / "x", runcstate.DELETE_KEYS)["namespaces"] == [
        {"type": "NEWPID", "path": ""}]


def test_start_in_process_equals_runc_start(runc: Runc, tmp_path: Path) -> None:
    by_runc, by_us = "pyctrd-start-runc", "pyctrd-start-us"
    wrapper, calls = logging_runc(tmp_path / "wrapped")
    runtime = OCIRuntime(str(wrapper), runc.root)
    pids = {}
    for cid in (by_runc, by_us):
        runc.create(cid)
        pids[cid] = runc.state(cid)["pid"]  # type: ignore[index]
    runc.run("start", by_runc)
    asyncio.run(runtime.start(by_us))
    assert verbs(calls) == []  # no runc start for it

    for cid in (by_runc, by_us):
        assert agree(runc, cid) == "running"
        assert runc.state(cid)["pid"] == pids[cid]  # type: ignore[index]
        assert not (runc.root / cid / runcstate.EXEC_FIFO).exists()
        # the init has exec'd the command
        deadline = time.monotonic() + 10
        while b"sleep" not in Path(f"/proc/{pids[cid]}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the command never ran"
            time.sleep(0.01)


def test_a_start_runc_would_refuse_is_left_to_runc(runc: Runc, tmp_path: Path) -> None:
    wrapper, calls = logging_runc(tmp_path / "wrapped")
    runtime = OCIRuntime(str(wrapper), runc.root)
    running, dead = "pyctrd-start-twice", "pyctrd-start-dead"
    runc.create(running)
    asyncio.run(runtime.start(running))
    with pytest.raises(RuntimeFailed, match="running"):
        asyncio.run(runtime.start(running))
    runc.create(dead)
    runc.stop(dead)  # killed before it was started
    with pytest.raises(RuntimeFailed):
        asyncio.run(runtime.start(dead))
    with pytest.raises(RuntimeFailed, match="does not exist"):
        asyncio.run(runtime.start("pyctrd-start-absent"))
    assert verbs(calls) == ["start", "start", "start"]
    assert agree(runc, running) == "running"


def test_without_pidfds_runc_starts_it(runc: Runc, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """No pidfd for the init (EMFILE, say): the fifo is not touched and runc starts
    the container, as before."""
    wrapper, calls = logging_runc(tmp_path / "wrapped")
    cid = "pyctrd-start-no-pidfd"
    runc.create(cid)

    class NoPidfds:  # runcstate's os, without pidfds
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        @staticmethod
        def pidfd_open(pid: int, flags: int = 0) -> int:
            raise OSError(errno.EMFILE, "pidfd_open")

    monkeypatch.setattr(runcstate, "os", NoPidfds())
    asyncio.run(OCIRuntime(str(wrapper), runc.root).start(cid))
    assert verbs(calls) == ["start"]
    assert agree(runc, cid) == "running"
