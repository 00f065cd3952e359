"""Health checks: the container's ``health_cmd`` run inside it on the daemon's
timer, through exec sessions (core/exec.py), as podman's healthcheck.

State machine (the Health property): "" without a check; "starting" from each
start until a check passes; "healthy" after a passing check; "unhealthy"
after ``health_retries`` failed checks in a row. Failures during the
``health_start_period`` after a start do not count while still "starting".
A check that has not exited after ``health_timeout`` seconds is killed and
counts as failed. The last LOG_KEEP results (start, end, exit code, output,
whether it was cut) are kept in the status and shown by Inspect.

An unhealthy container is only reported, not restarted (podman's default
health action "none"). Checks run as tasks on the loop, one at a time per
container: a check never holds the container's lock, and a hung one blocks
nothing but itself. Each check's exec session is removed as soon as its
result is in.
"""

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Any

from pyctrd.core.config import now_us
from pyctrd.core.container import Container
from pyctrd.core.exec import ExecOptions
from pyctrd.core.inspect import rfc3339
from pyctrd.core.listening import EngineListener
from pyctrd.core.state import State
from pyctrd.errors import InvalidArgument, InvalidState, NoSuchContainer, PyctrdError

if TYPE_CHECKING:
    from pyctrd.core.engine import Engine

log = logging.getLogger(__name__)

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
LOG_KEEP = 5  # results kept, as podman
OUTPUT_MAX = 4096  # bytes of a check's output kept
KILL_GRACE = 5.0  # after SIGKILL of a hung check, how long to wait for its exit
TIMED_OUT = -1  # the exit code recorded for a check killed at its timeout


class HealthChecks(EngineListener):
    """Every container's health check timer; an engine listener."""

    def __init__(self, engine: "Engine") -> None:
        self._engine = engine
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._running: dict[str, asyncio.Task[str]] = {}
        self._attached = False

    def attach(self) -> None:
        """After recovery: listen, and check the running containers again."""
        if self._attached:
            return
        self._attached = True
        self._engine.listener.add(self)
        for container in self._engine.containers.values():
            if container.state == State.RUNNING and container.config.health_cmd:
                if not container.status.health:
                    container.update_status(health=STARTING)
                self._schedule(container)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._running.values():
            task.cancel()

    # EngineListener

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        if "state" not in changes or not container.config.health_cmd:
            return
        if container.state == State.RUNNING and "started" in changes:
            # A new run (an unpause keeps its timer and verdict).
            container.update_status(health=STARTING, health_failures=0)
            self._schedule(container)
        elif container.state not in (State.RUNNING, State.PAUSED):
            self._cancel(container)

    def container_removed(self, container: Container) -> None:
        self._cancel(container)

    # RunHealthCheck

    async def run(self, container: Container) -> str:
        """Run the check now (or join the one under way); the Health after it."""
        if container.removed:
            raise NoSuchContainer(f"container {container.name} has been removed")
        if not container.config.health_cmd:
            raise InvalidArgument(f"container {container.name} has no health check; "
                                  "create it with health_cmd")
        if container.state != State.RUNNING:
            raise InvalidState(f"cannot RunHealthCheck container {container.name}: it is "
                               f"{container.state}; a health check needs it running")
        task = self._running.get(container.id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._check(container))
            self._running[container.id] = task
            task.add_done_callback(lambda _: self._running.pop(container.id, None))
        return await asyncio.shield(task)

    # internals

    def _schedule(self, container: Container) -> None:
        self._cancel_timer(container)
        interval = container.config.health_interval
        if interval > 0:
            self._timers[container.id] = asyncio.get_running_loop().call_later(
                interval, self._due, container)

    def _due(self, container: Container) -> None:
        self._timers.pop(container.id, None)
        if container.removed or container.state not in (State.RUNNING, State.PAUSED):
            return
        if container.state == State.RUNNING:
            task = asyncio.get_running_loop().create_task(self.run(container))
            task.add_done_callback(_quiet)
        self._schedule(container)  # paused: skipped, tried again next interval

    def _cancel_timer(self, container: Container) -> None:
        timer = self._timers.pop(container.id, None)
        if timer is not None:
            timer.cancel()

    def _cancel(self, container: Container) -> None:
        self._cancel_timer(container)
        task = self._running.pop(container.id, None)
        if task is not None:
            task.cancel()

    async def _check(self, container: Container) -> str:
        cfg = container.config
        started = now_us()
        execs = self._engine.execs
        try:
            session, stdio = await execs.exec(container, list(cfg.health_cmd), ExecOptions())
        except (InvalidState, NoSuchContainer):
            return container.status.health  # stopped meanwhile: nothing to judge
        except PyctrdError as err:
            self._record(container, started, 1, f"the check could not be run: {err}", False)
            return container.status.health
        output = bytearray()
        cut = False

        async def read() -> None:
            nonlocal cut
            loop = asyncio.get_running_loop()
            stdio.setblocking(False)
            while data := await loop.sock_recv(stdio, 65536):
                room = OUTPUT_MAX - len(output)
                output.extend(data[:room])
                cut = cut or len(data) > room

        reader = asyncio.ensure_future(read())
        try:
            try:
                async with asyncio.timeout(cfg.health_timeout):
                    code = await session.wait()
                    await reader  # the rest of its output (conmon closes it at the exit)
            except TimeoutError:
                code = TIMED_OUT
                with contextlib.suppress(PyctrdError):
                    execs.kill(session, signal.SIGKILL)
                with contextlib.suppress(TimeoutError, PyctrdError):
                    async with asyncio.timeout(KILL_GRACE):
                        await session.wait()
                output.extend(f"\n[pyctrd: killed after health_timeout "
                              f"{cfg.health_timeout} s]".encode())
        except PyctrdError:
            code = session.exit_code if session.exit_code >= 0 else TIMED_OUT
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await reader
            stdio.close()
            with contextlib.suppress(PyctrdError):
                execs.remove(session, force=True)
        if container.removed or container.state not in (State.RUNNING, State.PAUSED):
            return container.status.health  # it stopped: the check says nothing
        self._record(container, started, code, output.decode(errors="replace").strip(), cut)
        return container.status.health

    def _record(self, container: Container, started: int, code: int, output: str,
                cut: bool) -> None:
        cfg, st = container.config, container.status
        entry = {"Start": rfc3339(started), "End": rfc3339(now_us()), "ExitCode": code,
                 "Output": output, "Truncated": cut}
        health, failures = st.health or STARTING, st.health_failures
        if code == 0:
            health, failures = HEALTHY, 0
        elif health == STARTING and (now_us() - st.started) < cfg.health_start_period * 1e6:
            pass  # the start period: failures do not count yet
        else:
            failures += 1
            if failures >= cfg.health_retries:
                health = UNHEALTHY
        changed = health != st.health
        container.update_status(health=health, health_failures=failures,
                                health_log=[*st.health_log, entry][-LOG_KEEP:])
        if changed:
            log.info("container %s is %s (check exited %d)", container.name, health, code)
            events = getattr(self._engine, "events", None)
            if events is not None:
                events.record("container", "health_status", container.id,
                              {"name": container.name, "health_status": health})


def _quiet(task: "asyncio.Task[Any]") -> None:
    """A timer's check: its failure is logged, not raised into the void."""
    if not task.cancelled() and task.exception() is not None:
        err = task.exception()
        if not isinstance(err, PyctrdError):
            log.error("a health check failed: %r", err)
