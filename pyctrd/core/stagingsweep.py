"""Staging dirs an import could not delete are deleted once it is possible again.

An import that fails for want of file descriptors (EMFILE) usually cannot
delete its staging dir either: deleting a tree opens each directory. Rather
than leave it in the store's tmp until the next start, the Engine runs every
import inside ``StagingSweeper.importing()``; when the last running import
ends and tmp is not empty, what is there is a leftover (no import owns it),
and it is deleted now, or retried every ``RETRY`` seconds while no import
runs, until it is gone or ``ATTEMPTS`` have failed (the next start's
clean-up then finishes it).
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from pyctrd.storage.trees import remove_quietly

log = logging.getLogger(__name__)

RETRY = 1.0  # seconds between attempts
ATTEMPTS = 300


class StagingSweeper:
    def __init__(self, tmp: Path, retry: float = RETRY, attempts: int = ATTEMPTS) -> None:
        self.tmp = tmp
        self.retry = retry
        self.attempts = attempts
        self.running = 0  # imports under way: their staging dirs are theirs
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def importing(self) -> Iterator[None]:
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            if self.running == 0:
                self.sweep_soon()

    def sweep_soon(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sweep())

    async def wait(self) -> None:
        """For tests: until the current sweep (if any) has ended."""
        if self._task is not None:
            await self._task

    async def _sweep(self) -> None:
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.retry)
            if self.running:
                continue  # an import runs: tmp holds its staging dir
            try:
                leftovers = [self.tmp / name for name in os.listdir(self.tmp)]
            except OSError as err:
                log.debug("cannot list %s yet: %s", self.tmp, err)
                continue
            if not leftovers:
                return
            problems = await asyncio.to_thread(_remove_all, leftovers)
            if not problems:
                log.info("deleted %d leftover staging dirs from %s", len(leftovers),
                         self.tmp)
                return
            log.debug("leftover staging dirs not deleted yet: %s", problems[0])
        log.warning("could not delete the leftovers in %s; the next start tries again",
                    self.tmp)


def _remove_all(paths: list[Path]) -> list[OSError]:
    problems: list[OSError] = []
    for path in paths:
        problems += remove_quietly(path)
    return problems
