"""What happens after a container exits: restart policies and auto-remove.

The supervisor listens to the engine like a front end does. When a container
exits it decides, as podman and docker do:

- ``on-failure`` restarts after a non-zero exit, up to ``restart_retries``
  restarts (0: no limit); ``always`` and ``unless-stopped`` after any exit;
  an exit caused by a caller's Stop or Kill (``stopped_by_user``) is not a
  failure and restarts nothing.
- Between restarts it backs off: 100 ms, doubling to at most 1 minute; a run
  of 10 s or more resets the back-off. The container stays ``exited``
  meanwhile, with the time the restart is due saved in its status
  (``restart_at``), so that a daemon killed during the back-off carries on
  after its restart (``begin``); a caller's Start or Remove cancels it, and
  so does a caller's Stop (``cancel``).
- ``auto_remove``: once exited the container is removed, after its exit code
  went to waiting callers and out in PropertiesChanged (those happen as the
  exit is recorded; the removal runs later on the loop).

On a new boot (``attach(new_boot=True)``) containers with ``always``, and
``unless-stopped`` ones a caller had not stopped, are started again in the
background once the daemon serves (``begin``, called after the bus name is
taken). Every decision reads only the saved config and status, so making it
again after a crash gives the same answer: nothing is lost.
"""

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from pyctrd.core.config import now_us
from pyctrd.core.container import Container
from pyctrd.core.exitoptions import ALWAYS, NO, ON_FAILURE, UNLESS_STOPPED
from pyctrd.core.listening import EngineListener
from pyctrd.core.state import State
from pyctrd.errors import InvalidState, NoSuchContainer

if TYPE_CHECKING:
    from pyctrd.core.engine import Engine

log = logging.getLogger(__name__)

BACKOFF_MIN = 0.1  # seconds before the first restart
BACKOFF_MAX = 60.0
BACKOFF_RESET = 10.0  # a run at least this long starts the back-off afresh
BOOT_PARALLELISM = 4  # containers started at once after a reboot
BOOT_STARTS = "boot_starts"  # meta key: IDs still to start after the reboot


def should_restart(config: Any, status: Any) -> bool:
    """After an exit: does the policy restart the container?"""
    policy = config.restart_policy
    if policy == NO or status.stopped_by_user:
        return False
    if policy == ON_FAILURE:
        return status.exit_code != 0 and (
            config.restart_retries == 0 or status.restart_count < config.restart_retries)
    return policy in (ALWAYS, UNLESS_STOPPED)


def starts_at_boot(config: Any, status: Any) -> bool:
    """On a new boot: is the container started again?"""
    return config.restart_policy == ALWAYS or (
        config.restart_policy == UNLESS_STOPPED and not status.stopped_by_user)


def backoff(streak: int) -> float:
    """Seconds before the restart that follows ``streak`` quick restarts in a row."""
    return min(BACKOFF_MIN * 2 ** min(streak, 32), BACKOFF_MAX)


def next_streak(status: Any) -> int:
    """The back-off exponent for the restart after the run that just ended."""
    ran = (status.finished - status.started) / 1e6 if status.started else 0.0
    return 0 if ran >= BACKOFF_RESET else status.restart_streak


class RestartSupervisor(EngineListener):
    def __init__(self, engine: "Engine") -> None:
        self._engine = engine
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._boot: list[Container] = []
        self._attached = False

    # wiring: the engine calls attach after recovery, the daemon begin once it serves

    def attach(self, new_boot: bool) -> None:
        """Listen from now on; note what is due at the start (``begin`` does it)."""
        if self._attached:
            return
        self._attached = True
        self._engine.listener.add(self)
        store = self._engine.store
        if new_boot:
            for container in self._engine.containers.values():
                if container.removed:
                    continue
                if container.status.restart_at:  # a back-off of the last boot is void
                    container.update_status(restart_at=0)
                if container.state != State.EXITED:
                    continue
                if starts_at_boot(container.config, container.status):
                    self._boot.append(container)
                elif container.config.restart_policy != NO:
                    # The reboot ended its run: no failure to restart it for, now or
                    # after a later daemon restart (a caller's Start clears this).
                    container.update_status(stopped_by_user=True)
            # Saved before the new boot id is: a crash before they started finds them.
            store.set_meta(BOOT_STARTS, json.dumps([c.id for c in self._boot]))
        else:
            pending = json.loads(store.get_meta(BOOT_STARTS) or "[]")
            self._boot = [c for cid in pending
                          if (c := self._engine.containers.get(cid)) is not None
                          and not c.removed and c.state == State.EXITED]

    def begin(self) -> None:
        """Once the daemon serves: boot starts in the background, restarts due (or
        decided) while the daemon was away, removals of auto-remove containers that
        exited meanwhile."""
        boot, self._boot = self._boot, []
        if boot:
            self._spawn(self._start_at_boot(boot))
        for container in list(self._engine.containers.values()):
            if container.state == State.EXITED and container not in boot:
                self._exited(container, at_start=True)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()

    # EngineListener

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        if "state" not in changes:
            return
        if container.state == State.EXITED:
            # Decided after this event reached everyone (the exit in PropertiesChanged,
            # the waiters answered), not in the middle of telling them.
            asyncio.get_running_loop().call_soon(self._exited, container)
        else:
            self._cancel_timer(container)  # a caller started it during the back-off

    def container_removed(self, container: Container) -> None:
        self._cancel_timer(container)

    # a caller's Stop of a container waiting to restart

    def cancel(self, container: Container) -> bool:
        """Cancel a pending restart as a caller's Stop would end the run; False if
        none is pending."""
        if container.state != State.EXITED or not container.status.restart_at:
            return False
        self._cancel_timer(container)
        container.update_status(stopped_by_user=True, restart_at=0)
        return True

    def pending(self, container: Container) -> bool:
        return container.id in self._timers

    # decisions

    def _exited(self, container: Container, at_start: bool = False) -> None:
        if container.removed or container.status.removing or container.state != State.EXITED:
            return
        config, status = container.config, container.status
        if config.auto_remove:
            self._spawn(self._remove(container))
            return
        if not should_restart(config, status):
            if status.restart_at:
                container.update_status(restart_at=0)
            return
        if at_start and status.restart_at:
            # Decided before the daemon went away: due when it was due.
            delay = max(0.0, (status.restart_at - now_us()) / 1e6)
        elif container.id in self._timers:
            return  # already planned
        else:
            streak = next_streak(status)
            delay = backoff(streak)
            container.update_status(restart_streak=streak + 1,
                                    restart_at=now_us() + int(delay * 1e6))
        log.info("container %s exited with %d; restarting (%s) in %.1f s", container.name,
                 status.exit_code, config.restart_policy, delay)
        self._cancel_timer(container)
        self._timers[container.id] = asyncio.get_running_loop().call_later(
            delay, self._due, container)

    def _due(self, container: Container) -> None:
        self._timers.pop(container.id, None)
        self._spawn(self._restart(container))

    async def _restart(self, container: Container) -> None:
        status = container.status
        if container.removed or container.state != State.EXITED or not status.restart_at:
            return  # started, removed or stopped by a caller meanwhile
        if not should_restart(container.config, status):
            container.update_status(restart_at=0)
            return
        # Counted before the start: an exit at once must see this restart counted.
        container.update_status(restart_count=status.restart_count + 1, restart_at=0)
        started = time.monotonic()
        try:
            await container.start(restarting=True)
        except (InvalidState, NoSuchContainer):
            return  # a caller started or removed it meanwhile
        except Exception as err:
            log.warning("container %s: restart failed: %s", container.name, err)
            if container.state == State.EXITED and should_restart(container.config,
                                                                  container.status):
                streak = container.status.restart_streak
                delay = backoff(streak)
                container.update_status(restart_streak=streak + 1,
                                        restart_at=now_us() + int(delay * 1e6))
                self._timers[container.id] = asyncio.get_running_loop().call_later(
                    delay, self._due, container)
            return
        log.debug("container %s restarted in %.3f s", container.name,
                  time.monotonic() - started)

    async def _remove(self, container: Container) -> None:
        if container.removed:
            return
        try:
            await self._engine.remove_container(container, force=False)
        except (InvalidState, NoSuchContainer):
            pass  # started again or removed by a caller meanwhile
        except Exception:
            log.exception("container %s: auto-remove failed", container.name)
        else:
            log.info("container %s removed after it exited (auto_remove)", container.name)

    async def _start_at_boot(self, containers: list[Container]) -> None:
        limit = asyncio.Semaphore(BOOT_PARALLELISM)

        async def start(container: Container) -> None:
            async with limit:
                if container.removed or container.state != State.EXITED:
                    return
                try:
                    await container.start()
                except Exception as err:
                    log.warning("container %s: start after the reboot failed: %s",
                                container.name, err)
                else:
                    log.info("container %s started again after the reboot (%s)",
                             container.name, container.config.restart_policy)

        await asyncio.gather(*(start(c) for c in containers))
        self._engine.store.set_meta(BOOT_STARTS, "[]")

    # plumbing

    def _cancel_timer(self, container: Container) -> None:
        timer = self._timers.pop(container.id, None)
        if timer is not None:
            timer.cancel()

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
