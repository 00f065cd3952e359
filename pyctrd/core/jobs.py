"""Jobs: long work (pull, push, commit; later exec or network set-up) that a call
starts and returns at once, as systemd-importd's Transfer objects.

A Job runs one coroutine as an asyncio task, reports its progress, can be
cancelled, and once finished is kept RETENTION seconds so that a caller who
looks late still sees how it ended. The core knows nothing of the wire: the
front ends listen (JobListener) and show jobs as objects.
"""

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from pyctrd.errors import Cancelled, Failed, NoSuchJob, PyctrdError

log = logging.getLogger(__name__)

RETENTION = 60.0  # seconds a finished job stays visible
PROGRESS_INTERVAL = 0.1  # at most this often a progress change is announced


class JobState(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobListener(Protocol):
    def job_added(self, job: "Job") -> None: ...
    def job_changed(self, job: "Job", fields: list[str]) -> None:
        """``fields``: the Job attributes that changed, e.g. ["progress", "bytes_done"]."""
    def job_removed(self, job: "Job") -> None: ...


Work = Callable[["Job"], Awaitable[str]]  # returns the result's ID (an image's) or ""


class Job:
    def __init__(self, number: int, kind: str, reference: str, owner: int | None,
                 jobs: "Jobs") -> None:
        self.id = str(number)
        self.kind = kind
        self.reference = reference
        self.owner = owner  # the uid that started it (None: unknown), for Cancel
        self.state = JobState.RUNNING
        self.progress = -1.0
        self.bytes_done = 0
        self.bytes_total = 0
        self.result_id = ""  # the image made or fetched
        self.error: PyctrdError | None = None
        self.created = time.time_ns() // 1000
        self.finished = 0
        self._jobs = jobs
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._last_report = 0.0
        self._pending: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None

    @property
    def done(self) -> bool:
        return self.state is not JobState.RUNNING

    def report(self, bytes_done: int, bytes_total: int | None = None,
               progress: float | None = None) -> None:
        """New progress; announced at most every PROGRESS_INTERVAL (the last always)."""
        if self.done:
            return
        fields = []
        if bytes_total is not None and bytes_total != self.bytes_total:
            self.bytes_total = bytes_total
            fields.append("bytes_total")
        if bytes_done != self.bytes_done:
            self.bytes_done = bytes_done
            fields.append("bytes_done")
        if progress is None and self.bytes_total > 0:
            progress = min(1.0, self.bytes_done / self.bytes_total)
        if progress is not None and progress != self.progress:
            self.progress = progress
            fields.append("progress")
        if fields:
            self._pending.update(fields)
            self._announce_soon()

    def _announce_soon(self) -> None:
        now = time.monotonic()
        wait = self._last_report + PROGRESS_INTERVAL - now
        if wait <= 0:
            self._announce()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(wait, self._announce)

    def _announce(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._last_report = time.monotonic()
        fields, self._pending = sorted(self._pending), set()
        if fields:
            self._jobs.changed(self, fields)

    def cancel(self) -> None:
        """Stop the work; its own clean-up leaves nothing of it (no-op once done)."""
        if self._task is not None and not self.done:
            self._task.cancel()

    async def wait(self) -> None:
        await self._done.wait()

    async def _run(self, work: Work) -> None:
        try:
            self.result_id = await work(self)
        except asyncio.CancelledError:
            self._finish(JobState.CANCELLED,
                         Cancelled(f"the {self.kind} of {self.reference} was cancelled"))
            return
        except PyctrdError as err:
            self._finish(JobState.FAILED, err)
            return
        except Exception as err:
            log.exception("%s job %s (%s) failed", self.kind, self.id, self.reference)
            self._finish(JobState.FAILED, Failed(f"the {self.kind} failed unexpectedly: "
                                                 f"{type(err).__name__}"))
            return
        self._pending.update(("progress", "bytes_done"))
        self.progress = 1.0
        self.bytes_done = max(self.bytes_done, self.bytes_total)
        self._finish(JobState.COMPLETED, None)

    def _finish(self, state: JobState, error: PyctrdError | None) -> None:
        self.state = state
        self.error = error
        self.finished = time.time_ns() // 1000
        self._pending.update(("state", "finished", "result_id", "error"))
        self._announce()
        self._done.set()
        self._jobs.finished(self)


class Jobs:
    """Every job; each listener hears of each job's appearance, changes and end."""

    def __init__(self, retention: float = RETENTION) -> None:
        self.retention = retention
        self.jobs: dict[str, Job] = {}
        self._numbers = itertools.count(1)
        self._listeners: list[JobListener] = []
        self._expiry: dict[str, asyncio.TimerHandle] = {}

    def add_listener(self, listener: JobListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: JobListener) -> None:
        self._listeners.remove(listener)

    def start(self, kind: str, reference: str, work: Work, owner: int | None = None) -> Job:
        job = Job(next(self._numbers), kind, reference, owner, self)
        self.jobs[job.id] = job
        self._each("job_added", job)
        job._task = asyncio.ensure_future(job._run(work))
        return job

    def lookup(self, job_id: str) -> Job:
        job = self.jobs.get(job_id.rsplit("/", 1)[-1])
        if job is None:
            raise NoSuchJob(f"no job has the ID {job_id!r}; finished jobs go after "
                            f"{self.retention:.0f} s (ListJobs gives the current ones)")
        return job

    def changed(self, job: Job, fields: list[str]) -> None:
        if job.id in self.jobs:
            self._each("job_changed", job, fields)

    def finished(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        self._expiry[job.id] = loop.call_later(self.retention, self._expire, job)

    def _expire(self, job: Job) -> None:
        self._expiry.pop(job.id, None)
        if self.jobs.pop(job.id, None) is not None:
            self._each("job_removed", job)

    async def close(self) -> None:
        """Cancel what runs (its clean-up runs now) and forget every job."""
        running = [job for job in self.jobs.values() if not job.done]
        for job in running:
            job.cancel()
        for job in running:
            await job.wait()
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()

    def _each(self, event: str, *args: object) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, event)(*args)
            except Exception:
                log.exception("a job listener failed on %s", event)
