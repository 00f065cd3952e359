"""io.pyctrd.Job: pull, push and commit over Varlink, as jobs; Watch follows one.

The same operations as D-Bus's PullImage, Image.Push, Container.Commit and the
org.pyctrd1.Job object, with the same polkit actions."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asyncvarlink import LastResult, VarlinkInterface, varlinkmethod

from pyctrd.core.commit import CommitOptions
from pyctrd.core.jobs import Job
from pyctrd.ops.names import VARLINK_JOB
from pyctrd.ops.operations import Operations
from pyctrd.ops.properties import _job_error
from pyctrd.registry.skopeo import TransferOptions, check_options
from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.protocol import current_call

ERRORS = ErrorSet(VARLINK_JOB, (
    "NoSuchJob", "NoSuchImage", "NoSuchContainer", "AmbiguousId", "InvalidArgument",
    "InvalidState", "RegistryFailed", "Cancelled", "StorageFailed", "NotSupported",
    "AccessDenied", "InteractiveAuthorizationRequired", "LimitsExceeded", "Failed"))
WATCH_QUEUE_MAX = 1024


@dataclass
class JobInfo:
    """A job's D-Bus properties (image_id instead of the Image object path)."""

    id: str
    kind: str
    reference: str
    state: str
    progress: float
    bytes_done: int
    bytes_total: int
    image_id: str
    error: str
    created_timestamp: int
    finished_timestamp: int


def job_info(job: Job) -> JobInfo:
    return JobInfo(id=job.id, kind=job.kind, reference=job.reference, state=str(job.state),
                   progress=job.progress, bytes_done=job.bytes_done,
                   bytes_total=job.bytes_total, image_id=job.result_id,
                   error=_job_error(job), created_timestamp=job.created,
                   finished_timestamp=job.finished)


class _Follower:
    """A JobListener for one Watch call: wakes it on each change of its job."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.changed = asyncio.Event()

    def job_added(self, job: Job) -> None:
        pass

    def job_changed(self, job: Job, fields: list[str]) -> None:
        if job is self.job:
            self.changed.set()

    def job_removed(self, job: Job) -> None:
        if job is self.job:
            self.changed.set()


class JobVarlink(VarlinkInterface, name=VARLINK_JOB):
    """Pull, push and commit images as jobs: each call returns the job at once;
    Watch follows one until it ends. Finished jobs are kept 60 seconds."""

    error_set = ERRORS
    errors = tuple(ERRORS.classes.values())

    def __init__(self, operations: Operations) -> None:
        self._ops = operations

    @varlinkmethod(return_parameter="job")
    async def Pull(self, *, reference: str, tls_verify: bool | None = None,
                   credentials: str | None = None, platform: str | None = None) -> JobInfo:
        """Fetch an image from a registry (as D-Bus PullImage); credentials
        "user:password" are never logged nor put on a command line."""
        with ERRORS.translated():
            options = _transfer(tls_verify, credentials, platform)
            return job_info(self._ops.pull_image(reference, options, _caller_uid()))

    @varlinkmethod(return_parameter="job")
    async def Push(self, *, reference: str, destination: str, tls_verify: bool | None = None,
                   credentials: str | None = None) -> JobInfo:
        """Copy the image reference names to destination in a registry."""
        with ERRORS.translated(reference=reference):
            image = self._ops.get_image(reference)
            options = _transfer(tls_verify, credentials, None)
            return job_info(self._ops.push_image(image, destination, options, _caller_uid()))

    @varlinkmethod(return_parameter="job")
    async def Commit(self, *, name: str, reference: str | None = None,
                     pause: bool | None = None, message: str | None = None,
                     author: str | None = None, changes: list[str] | None = None) -> JobInfo:
        """A new image of container name's filesystem changes (as D-Bus Commit)."""
        with ERRORS.translated(name=name):
            container = self._ops.get_container(name)
            options = CommitOptions(pause=True if pause is None else pause,
                                    message=message or "", author=author or "",
                                    changes=list(changes or []))
            return job_info(self._ops.commit(container, reference or "", options,
                                             _caller_uid()))

    @varlinkmethod(return_parameter="jobs")
    async def List(self) -> list[JobInfo]:
        """Every job running or ended in the last 60 seconds."""
        return [job_info(j) for j in self._ops.list_jobs()]

    @varlinkmethod(return_parameter="job")
    async def Get(self, *, id: str) -> JobInfo:
        """One job's properties."""
        with ERRORS.translated(id=id):
            return job_info(self._ops.get_job(id))

    @varlinkmethod
    async def Cancel(self, *, id: str) -> None:
        """Stop the job; nothing of it stays in the store."""
        with ERRORS.translated(id=id):
            self._ops.cancel_job(self._ops.get_job(id))

    @varlinkmethod(return_parameter="job", delay_generator=False)
    async def Watch(self, *, id: str) -> AsyncIterator[JobInfo]:
        """The job now, then again on each change (progress, state), until it has
        ended (call with more)."""
        with ERRORS.translated(id=id):
            job = self._ops.get_job(id)
        follower = _Follower(job)
        jobs = self._ops.engine.jobs
        jobs.add_listener(follower)
        try:
            while True:
                follower.changed.clear()
                if job.done:
                    raise LastResult(job_info(job))
                yield job_info(job)
                await follower.changed.wait()
        finally:
            with contextlib.suppress(ValueError):
                jobs.remove_listener(follower)


def _caller_uid() -> int:
    return current_call.get().peer.uid


def _transfer(tls_verify: bool | None, credentials: str | None,
              platform: str | None) -> TransferOptions:
    options = TransferOptions(tls_verify=True if tls_verify is None else tls_verify,
                              credentials=credentials or "", platform=platform or "")
    check_options(options)
    return options
