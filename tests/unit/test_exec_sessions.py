"""core/exec.py's session state machine with a fake conmon: exits, retention,
the container's end, re-adoption after a restart, podman's 126/127."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pyctrd.core import exec as core_exec
from pyctrd.core.exec import EXITED, RUNNING, ExecOptions, ExecSessions, StopsSessions
from pyctrd.core.state import State
from pyctrd.errors import InvalidArgument, InvalidState, LimitsExceeded, RuntimeFailed
from pyctrd.oci.execmon import ExecLaunched, ExecRequest
from pyctrd.ops import exec as exec_ops
from pyctrd.ops.streams import StreamLimits, StreamOwner


class FakeWatch:
    def __init__(self, monitor: FakeMonitor, pid: int, on_exit: Callable[[], None]) -> None:
        self.monitor, self.pid, self.on_exit = monitor, pid, on_exit
        monitor.watches[pid] = self

    def cancel(self) -> bool:
        return self.monitor.watches.pop(self.pid, None) is not None


class FakeMonitor:
    """conmon in exec mode, whose processes end when a test says so."""

    def __init__(self) -> None:
        self.next_pid = 1000
        self.alive: set[int] = set()
        self.watches: dict[int, FakeWatch] = {}
        self.failure = ""
        self.signals: list[tuple[int, int]] = []
        self.resized: list[tuple[int, int]] = []
        self.peers: list[socket.socket] = []

    def watch(self, pid: int, on_exit: Callable[[], None]) -> FakeWatch:
        return FakeWatch(self, pid, on_exit)

    async def launch(self, request: ExecRequest) -> ExecLaunched:
        self.next_pid += 2
        conmon = self.next_pid
        (request.directory / "conmon").write_text(str(conmon))
        if self.failure:
            return ExecLaunched(0, conmon, None, failure=self.failure)
        self.alive.add(conmon)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.peers.append(theirs)
        return ExecLaunched(conmon + 1, conmon, ours)

    def exit(self, conmon: int, code: int, directory: Path) -> None:
        """The process exits: conmon writes the code and goes."""
        (directory / "exit").write_text(str(code))
        self.alive.discard(conmon)
        if (watch := self.watches.pop(conmon, None)) is not None:
            watch.on_exit()

    def is_alive(self, conmon_pid: int) -> bool:
        return conmon_pid in self.alive

    def read_exit(self, directory: Path) -> int | None:
        try:
            return int((directory / "exit").read_text())
        except FileNotFoundError:
            return None

    def resize(self, directory: Path, rows: int, cols: int) -> None:
        self.resized.append((rows, cols))

    def signal(self, pid: int, conmon_pid: int, sig: int) -> bool:
        self.signals.append((pid, sig))
        return conmon_pid in self.alive

    def kill_conmon(self, directory: Path) -> None:
        pass


def container(tmp_path: Path, state: State = State.RUNNING) -> Any:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "config.json").write_text(json.dumps({"process": {
        "args": ["sleep"], "env": ["PATH=/bin", "A=1"], "cwd": "/", "terminal": False,
        "user": {"uid": 0, "gid": 0}}}))
    return SimpleNamespace(id="c" * 64, name="web", state=state, removed=False, bundle=bundle,
                           status=SimpleNamespace(mountpoint=""), paths=SimpleNamespace(
                               lower=[]))


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, Any]] = []

    def exec_added(self, session: Any) -> None:
        self.events.append(("added", session.number, None))

    def exec_changed(self, session: Any, changes: list[str]) -> None:
        self.events.append(("changed", session.number, session.exit_code))

    def exec_removed(self, session: Any) -> None:
        self.events.append(("removed", session.number, None))


@pytest.fixture
def world(tmp_path: Path) -> tuple[FakeMonitor, ExecSessions, Recorder]:
    monitor = FakeMonitor()
    execs = ExecSessions(monitor, tmp_path / "sockets", monitor.watch)
    recorder = Recorder()
    execs.add_listener(recorder)
    return monitor, execs, recorder


async def test_runs_then_exits_with_conmons_code(world: Any, tmp_path: Path) -> None:
    monitor, execs, recorder = world
    ctr = container(tmp_path)
    session, stdio = await execs.exec(ctr, ["sh"], ExecOptions(env=["A=2", "B=3"]))
    stdio.close()
    assert session.state == RUNNING and session.pid > 0 and session.number == 1
    saved = json.loads((session.directory / "session.json").read_text())
    assert saved["command"] == ["sh"] and saved["conmon_pid"] == session.record.conmon_pid
    monitor.exit(session.record.conmon_pid, 3, session.directory)
    assert await session.wait() == 3
    assert session.state == EXITED and session.pid == 0 and session.finished > 0
    assert recorder.events == [("added", 1, None), ("changed", 1, 3)]


async def test_process_spec_takes_the_options(world: Any, tmp_path: Path) -> None:
    _monitor, execs, _recorder = world
    ctr = container(tmp_path)
    process = execs._process(ctr, ["id"], ExecOptions(
        terminal=True, env=["A=2", "B=3"], workdir="/tmp", user="7:8"))
    assert process["args"] == ["id"] and process["terminal"] is True
    assert process["env"] == ["PATH=/bin", "A=2", "B=3", "TERM=xterm"]
    assert process["cwd"] == "/tmp" and process["user"] == {"uid": 7, "gid": 8}
    for bad in (ExecOptions(workdir="tmp"), ExecOptions(env=["=x"]), ExecOptions(env=["X"])):
        with pytest.raises(InvalidArgument):
            execs._process(ctr, ["id"], bad)


@pytest.mark.parametrize("message,code", [
    ('level=error msg="exec failed: exec: \\"nope\\": executable file not found in $PATH"',
     127),
    ('level=error msg="exec failed: exec: \\"/etc\\": permission denied"', 126),
])
async def test_command_that_cannot_run_exits_126_or_127(world: Any, tmp_path: Path,
                                                        message: str, code: int) -> None:
    monitor, execs, _recorder = world
    monitor.failure = message
    session, stdio = await execs.exec(container(tmp_path), ["nope"], ExecOptions())
    try:
        stdio.settimeout(5)
        assert b"exec failed" in stdio.recv(4096)
    finally:
        stdio.close()
    assert session.state == EXITED and await session.wait() == code


async def test_other_runtime_failures_are_errors(world: Any, tmp_path: Path) -> None:
    monitor, execs, _recorder = world
    monitor.failure = 'level=error msg="cgroup is frozen"'
    with pytest.raises(RuntimeFailed, match="cgroup is frozen"):
        await execs.exec(container(tmp_path), ["x"], ExecOptions())
    assert execs.sessions() == []
    assert not list((tmp_path / "bundle" / "exec").iterdir())


@pytest.mark.parametrize("state", [State.PAUSED, State.EXITED, State.CREATED])
async def test_only_a_running_container(world: Any, tmp_path: Path, state: State) -> None:
    _monitor, execs, recorder = world
    with pytest.raises(InvalidState, match=str(state)):
        await execs.exec(container(tmp_path, state), ["true"], ExecOptions())
    assert recorder.events == []


async def test_kill_resize_remove(world: Any, tmp_path: Path) -> None:
    monitor, execs, recorder = world
    session, stdio = await execs.exec(container(tmp_path), ["sh"], ExecOptions(terminal=True))
    stdio.close()
    execs.resize(session, 24, 80)
    assert monitor.resized == [(24, 80)]
    with pytest.raises(InvalidArgument):
        execs.resize(session, 0, 80)
    with pytest.raises(InvalidState):
        execs.remove(session, force=False)
    execs.kill(session, 15)
    assert monitor.signals == [(session.record.pid, 15)]
    monitor.exit(session.record.conmon_pid, 143, session.directory)
    with pytest.raises(InvalidState):
        execs.kill(session, 15)
    execs.remove(session, force=False)
    assert session.removed and not session.directory.exists()
    assert recorder.events[-1] == ("removed", 1, None)


async def test_exited_sessions_go_after_retention(world: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_exec, "RETENTION", 0.05)
    monitor, execs, _recorder = world
    session, stdio = await execs.exec(container(tmp_path), ["true"], ExecOptions())
    stdio.close()
    monitor.exit(session.record.conmon_pid, 0, session.directory)
    assert execs.sessions() == [session]
    async with asyncio.timeout(5):
        while execs.sessions():
            await asyncio.sleep(0.01)
    assert session.removed


async def test_container_stop_ends_and_removes_sessions(world: Any, tmp_path: Path) -> None:
    monitor, execs, recorder = world
    ctr = container(tmp_path)
    session, stdio = await execs.exec(ctr, ["sleep"], ExecOptions())
    stdio.close()
    waiter = asyncio.ensure_future(session.wait())
    ctr.state = State.EXITED
    StopsSessions(execs).container_changed(ctr, {"state": State.EXITED})
    await asyncio.sleep(0)
    monitor.exit(session.record.conmon_pid, 137, session.directory)  # the pid ns died
    assert await waiter == 137
    async with asyncio.timeout(5):
        while execs.sessions():
            await asyncio.sleep(0.01)
    assert [e[0] for e in recorder.events] == ["added", "changed", "removed"]
    # other engine events are none of its business
    StopsSessions(execs).image_added(object())


async def test_recovery_readopts_live_and_records_finished(world: Any, tmp_path: Path
                                                           ) -> None:
    monitor, execs, _recorder = world
    ctr = container(tmp_path)
    live, stdio = await execs.exec(ctr, ["sleep"], ExecOptions())
    stdio.close()
    done, stdio = await execs.exec(ctr, ["true"], ExecOptions())
    stdio.close()
    # the daemon goes away; one process exits meanwhile
    (done.directory / "exit").write_text("7")
    monitor.alive.discard(done.record.conmon_pid)
    monitor.watches.clear()
    (ctr.bundle / "exec" / "9").mkdir()  # a launch cut short: no session.json

    restarted = ExecSessions(monitor, tmp_path / "sockets", monitor.watch)
    restarted.recover([ctr])
    by_number = {s.number: s for s in restarted.sessions()}
    assert set(by_number) == {1, 2}
    assert by_number[1].state == RUNNING and by_number[1].id == live.id
    assert by_number[2].state == EXITED and by_number[2].exit_code == 7
    assert not (ctr.bundle / "exec" / "9").exists()
    monitor.exit(live.record.conmon_pid, 0, live.directory)
    assert await by_number[1].wait() == 0


async def test_recovery_forgets_sessions_of_stopped_containers(world: Any, tmp_path: Path
                                                               ) -> None:
    monitor, execs, _recorder = world
    ctr = container(tmp_path)
    _session, stdio = await execs.exec(ctr, ["sleep"], ExecOptions())
    stdio.close()
    ctr.state = State.EXITED
    restarted = ExecSessions(monitor, tmp_path / "sockets", monitor.watch)
    restarted.recover([ctr])
    assert restarted.sessions() == [] and not (ctr.bundle / "exec").exists()


async def test_exec_streams_count_against_the_callers_cap(world: Any, tmp_path: Path) -> None:
    _monitor, execs, _recorder = world
    limits = StreamLimits(per_uid=2)
    operations: Any = SimpleNamespace(streams=limits, engine=SimpleNamespace(execs=execs))
    owner = StreamOwner(1000, "dbus::1.7")
    ctr = container(tmp_path)
    fds = [(await exec_ops.exec_in(operations, ctr, ["sh"], ExecOptions(), owner))[1]
           for _ in range(2)]
    with pytest.raises(LimitsExceeded):
        await exec_ops.exec_in(operations, ctr, ["sh"], ExecOptions(), owner)
    root = StreamOwner(0, "dbus::1.8")  # root has no cap
    _session, fd = await exec_ops.exec_in(operations, ctr, ["sh"], ExecOptions(), root)
    fds.append(fd)
    assert limits.running(1000) == 2
    limits.close_connection("dbus::1.7")  # the caller left the bus: its relays end
    async with asyncio.timeout(5):
        while limits.running(1000):
            await asyncio.sleep(0.01)
    for fd in fds:
        socket.socket(fileno=fd).close()
