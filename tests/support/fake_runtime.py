"""An in-process OCI runtime, monitor and rootfs storage whose timing a test controls.

For unit tests of the core (no runc, conmon or mounts): ``fake_engine`` builds
an Engine on them with a real Database in a temporary directory.

- ``FakeRuntime``: each call is recorded as a ``Call``. The verbs named in
  ``hold`` block until the test releases the call (``call.release()``) or fails
  it (``call.fail("message")``); the others answer at once. ``await
  runtime.next_call("kill")`` waits for a call to arrive.
- ``FakeMonitor``: ``launch`` creates the container in the fake runtime (held
  too if "launch" is in ``hold``); ``exit(cid, code)`` is conmon exiting with
  the process's exit code, at the moment the test chooses.
- ``FakeStorage``: mounts are entries in ``mounted``.
- ``FakeWorld.inject(verb, exc)``: the next call of ``verb`` (a method of any
  of the three, e.g. "start", "launch", "mount_shm") raises ``exc``, whatever
  it is (OSError(EMFILE), ValueError): for tests of what an unexpected failure
  leaves behind. ``kill_exits``: a SIGKILL makes the fake conmon report exit 137.

Nothing here sleeps: a test waits for the call it expects, not for time.
"""

import asyncio
import itertools
import shutil
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctrd.core.engine import Engine
from pyctrd.core.image import Image
from pyctrd.core.ports import ConmonRequest, Launched
from pyctrd.errors import RuntimeFailed
from pyctrd.layout import Layout
from pyctrd.storage.rootfs import RootfsPaths

IMAGE_ID = "ab" * 32
LAYER_ID = "cd" * 32


@dataclass
class Call:
    """One call to the fake; a held one waits for ``release`` or ``fail``."""

    verb: str
    cid: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    answer: asyncio.Future[Any] | None = None

    @property
    def held(self) -> bool:
        return self.answer is not None and not self.answer.done()

    def release(self, result: Any = None) -> None:
        assert self.answer is not None, f"{self.verb} was not held"
        self.answer.set_result(result)

    def fail(self, message: str = "injected failure") -> None:
        assert self.answer is not None, f"{self.verb} was not held"
        self.answer.set_exception(RuntimeFailed(f"fake {self.verb} failed: {message}"))


class Faults:
    """Exceptions to raise at the next call of a verb, shared by the three fakes."""

    def __init__(self) -> None:
        self.pending: dict[str, list[BaseException]] = {}

    def add(self, verb: str, exc: BaseException) -> None:
        self.pending.setdefault(verb, []).append(exc)

    def raise_if_any(self, verb: str) -> None:
        queued = self.pending.get(verb)
        if queued:
            exc = queued.pop(0)
            if not queued:
                del self.pending[verb]
            raise exc


class _Calls:
    """Calls in arrival order, and waiting for the next one of a verb."""

    def __init__(self, hold: Iterable[str]) -> None:
        self.hold = set(hold)
        self.log: list[Call] = []
        self._seen: dict[str, int] = {}
        self._arrived = asyncio.Condition()

    async def enter(self, call: Call) -> Any:
        if call.verb in self.hold:
            call.answer = asyncio.get_running_loop().create_future()
        self.log.append(call)
        async with self._arrived:
            self._arrived.notify_all()
        if call.answer is not None:
            return await call.answer
        return None

    async def next_call(self, verb: str) -> Call:
        """The next call of ``verb`` not yet returned by next_call (waits for it)."""
        async with self._arrived:
            while True:
                matching = [c for c in self.log if c.verb == verb]
                seen = self._seen.get(verb, 0)
                if len(matching) > seen:
                    self._seen[verb] = seen + 1
                    return matching[seen]
                await self._arrived.wait()

    def of(self, verb: str) -> list[Call]:
        return [c for c in self.log if c.verb == verb]


class FakeRuntime:
    """core.ports.OCIRuntimePort: keeps each container's runtime status."""

    name = "fake-runc"
    path = "/usr/bin/fake-runc"

    def __init__(self, hold: Iterable[str] = (), faults: Faults | None = None) -> None:
        self.calls = _Calls(hold)
        self.faults = faults or Faults()
        self.status: dict[str, str] = {}  # cid → created, running, paused, stopped
        self.on_kill: Callable[[str, int], None] | None = None

    async def next_call(self, verb: str) -> Call:
        return await self.calls.next_call(verb)

    def signals(self, cid: str) -> list[int]:
        """Every signal sent to ``cid``, in order."""
        return [c.args[0] for c in self.calls.of("kill") if c.cid == cid]

    async def _call(self, verb: str, cid: str, *args: Any, **kwargs: Any) -> Any:
        self.faults.raise_if_any(verb)
        if cid not in self.status and verb not in ("delete", "state"):
            raise RuntimeFailed(f"fake {verb}: container {cid} does not exist")
        return await self.calls.enter(Call(verb, cid, args, kwargs))

    async def start(self, cid: str) -> None:
        await self._call("start", cid)
        self.status[cid] = "running"

    async def kill(self, cid: str, signal: int, *, all_processes: bool = False) -> None:
        await self._call("kill", cid, signal, all_processes=all_processes)
        if self.on_kill is not None:
            self.on_kill(cid, signal)

    async def pause(self, cid: str) -> None:
        await self._call("pause", cid)
        self.status[cid] = "paused"

    async def resume(self, cid: str) -> None:
        await self._call("resume", cid)
        self.status[cid] = "running"

    async def delete(self, cid: str) -> None:
        await self._call("delete", cid)
        self.status.pop(cid, None)

    async def state(self, cid: str) -> dict[str, Any] | None:
        await self._call("state", cid)
        status = self.status.get(cid)
        return None if status is None else {"id": cid, "status": status}


class _Watch:
    def __init__(self, on_exit: Callable[[], None]) -> None:
        self.on_exit: Callable[[], None] | None = on_exit

    def cancel(self) -> bool:
        armed = self.on_exit is not None
        self.on_exit = None
        return armed


class FakeMonitor:
    """core.ports.MonitorPort: a conmon per container, exiting when the test says."""

    def __init__(self, runtime: FakeRuntime, hold: Iterable[str] = ()) -> None:
        self.runtime = runtime
        self.faults = runtime.faults
        self.calls = _Calls(hold)
        self.requests: dict[str, ConmonRequest] = {}
        self.conmon_pids: dict[str, int] = {}  # cid → its live conmon
        self.exits: dict[Path, tuple[int, int]] = {}  # exit file → (code, finished µs)
        self.oom: set[Path] = set()  # bundles of OOM-killed containers
        self._watches: dict[int, _Watch] = {}
        self._pids = itertools.count(1000)

    async def launch(self, request: ConmonRequest) -> Launched:
        self.faults.raise_if_any("launch")
        await self.calls.enter(Call("launch", request.cid))
        self.requests[request.cid] = request
        self.runtime.status[request.cid] = "created"
        conmon_pid, pid = next(self._pids), next(self._pids)
        self.conmon_pids[request.cid] = conmon_pid
        return Launched(pid=pid, conmon_pid=conmon_pid)

    def exit(self, cid: str, code: int, *, finished: int = 0, oom: bool = False) -> None:
        """conmon saw the process exit with ``code``, wrote the exit file and exited."""
        request = self.requests[cid]
        conmon_pid = self.conmon_pids.pop(cid)
        self.runtime.status[cid] = "stopped"
        self.exits[request.exit_dir / cid] = (code, finished)
        if oom:
            self.oom.add(request.bundle)
        watch = self._watches.pop(conmon_pid, None)
        if watch is not None and watch.on_exit is not None:
            on_exit, watch.on_exit = watch.on_exit, None
            on_exit()

    def daemon_stopped(self) -> None:
        """The daemon is gone, and its exit watches with it (conmon lives on)."""
        self._watches.clear()

    def is_alive(self, conmon_pid: int) -> bool:
        return conmon_pid in self.conmon_pids.values()

    def watch_exit(self, conmon_pid: int, on_exit: Callable[[], None]) -> _Watch:
        watch = _Watch(on_exit)
        if self.is_alive(conmon_pid):
            self._watches[conmon_pid] = watch
        else:  # gone already: the real watch fires from the loop at once
            def fire() -> None:
                if watch.on_exit is not None:
                    callback, watch.on_exit = watch.on_exit, None
                    callback()
            asyncio.get_running_loop().call_soon(fire)
        return watch

    def read_exit(self, exit_file: Path) -> tuple[int, int] | None:
        return self.exits.get(exit_file)

    def oom_killed(self, bundle: Path) -> bool:
        return bundle in self.oom

    def clear_exit(self, exit_file: Path, bundle: Path) -> None:
        self.faults.raise_if_any("clear_exit")
        self.exits.pop(exit_file, None)
        self.oom.discard(bundle)


class FakeStorage:
    """core.ports.RootfsPort: mounts are entries in ``mounted``."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.mounted: set[Path] = set()
        self.faults = faults or Faults()

    def mount_rootfs(self, paths: RootfsPaths) -> Path:
        self.faults.raise_if_any("mount_rootfs")
        paths.merged.mkdir(parents=True, exist_ok=True)
        self.mounted.add(paths.merged)
        return paths.merged

    def unmount_rootfs(self, paths: RootfsPaths) -> None:
        self.faults.raise_if_any("unmount_rootfs")
        self.mounted.discard(paths.merged)

    def mount_shm(self, paths: RootfsPaths) -> None:
        self.faults.raise_if_any("mount_shm")
        self.mounted.add(paths.shm_dir)

    def unmount_shm(self, paths: RootfsPaths) -> None:
        self.faults.raise_if_any("unmount_shm")
        self.mounted.discard(paths.shm_dir)

    def destroy(self, paths: RootfsPaths) -> None:
        self.faults.raise_if_any("destroy")
        self.mounted -= {paths.merged, paths.shm_dir}
        shutil.rmtree(paths.container_dir, ignore_errors=True)

    def mounted_paths(self) -> set[str]:
        self.faults.raise_if_any("mounted_paths")
        return {str(p) for p in self.mounted}


@dataclass
class FakeWorld:
    runtime: FakeRuntime
    monitor: FakeMonitor
    storage: FakeStorage

    @classmethod
    def create(cls, hold: Iterable[str] = (), *, kill_exits: bool = False) -> "FakeWorld":
        """``hold``: the verbs a test releases by hand (start, kill, pause, resume,
        delete, state, launch). ``kill_exits``: SIGKILL ends the process (exit 137,
        reported from the loop right after)."""
        held = set(hold)
        faults = Faults()
        runtime = FakeRuntime(held - {"launch"}, faults)
        world = cls(runtime, FakeMonitor(runtime, held & {"launch"}), FakeStorage(faults))
        if kill_exits:
            runtime.on_kill = world._exit_on_sigkill
        return world

    def inject(self, verb: str, exc: BaseException) -> None:
        """The next call of ``verb`` raises ``exc``."""
        self.runtime.faults.add(verb, exc)

    def _exit_on_sigkill(self, cid: str, sig: int) -> None:
        if sig == KILL and cid in self.monitor.conmon_pids:
            asyncio.get_running_loop().call_soon(self._exit_if_live, cid)

    def _exit_if_live(self, cid: str) -> None:
        if cid in self.monitor.conmon_pids:
            self.monitor.exit(cid, 128 + KILL)


def fake_engine(tmp_path: Path, world: FakeWorld) -> Engine:
    """A loaded, recovered-from-nothing Engine on ``world`` with the image "busybox"."""
    layout = Layout(tmp_path / "root", tmp_path / "run")
    engine = Engine(layout, world.runtime, world.monitor, storage=world.storage)
    image = Image(id=IMAGE_ID, reference="busybox:latest", digest=f"sha256:{IMAGE_ID}",
                  size=0, created=0, layers=[LAYER_ID], cmd=["sh"], blobs=[""])
    engine.store.add_image(image.id, image.to_record())
    engine.load()
    return engine


TERM, KILL = int(signal.SIGTERM), int(signal.SIGKILL)
