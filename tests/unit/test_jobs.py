"""core/jobs.py: states, progress announcements, cancel, retention."""

import asyncio

import pytest

from pyctrd.core.jobs import Job, Jobs, JobState
from pyctrd.errors import NoSuchJob, RegistryFailed


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, list[str]]] = []

    def job_added(self, job: Job) -> None:
        self.events.append(("added", job.id, []))

    def job_changed(self, job: Job, fields: list[str]) -> None:
        self.events.append(("changed", job.id, fields))

    def job_removed(self, job: Job) -> None:
        self.events.append(("removed", job.id, []))


async def test_a_job_completes_reports_and_goes_after_retention():
    jobs = Jobs(retention=0.2)
    heard = Heard()
    jobs.add_listener(heard)

    async def work(job: Job) -> str:
        job.report(0, 100)
        await asyncio.sleep(0.01)
        job.report(50, 100)
        return "image-id"

    job = jobs.start("pull", "x", work)
    assert jobs.lookup(job.id) is job and job.progress == -1.0
    await asyncio.wait_for(job.wait(), 5)
    assert job.state is JobState.COMPLETED and job.progress == 1.0
    assert job.result_id == "image-id" and job.bytes_done == 100 and job.finished > 0
    assert heard.events[0] == ("added", job.id, [])
    assert any("state" in fields for _, _, fields in heard.events)
    await asyncio.sleep(0.4)
    assert heard.events[-1] == ("removed", job.id, [])
    with pytest.raises(NoSuchJob):
        jobs.lookup(job.id)


async def test_failure_and_cancel():
    jobs = Jobs(retention=10)

    async def fails(job: Job) -> str:
        raise RegistryFailed("nope")

    async def hangs(job: Job) -> str:
        await asyncio.sleep(30)
        return ""

    failed = jobs.start("pull", "a", fails)
    await asyncio.wait_for(failed.wait(), 5)
    assert failed.state is JobState.FAILED and isinstance(failed.error, RegistryFailed)
    running = jobs.start("pull", "b", hangs)
    await asyncio.sleep(0)
    running.cancel()
    await asyncio.wait_for(running.wait(), 5)
    assert running.state is JobState.CANCELLED
    running.cancel()  # once ended: nothing
    await jobs.close()


async def test_progress_is_announced_at_most_every_interval():
    jobs = Jobs()
    heard = Heard()
    jobs.add_listener(heard)
    release = asyncio.Event()

    async def work(job: Job) -> str:
        for n in range(1, 1001):
            job.report(n, 1000)
        await release.wait()
        return ""

    job = jobs.start("pull", "x", work)
    await asyncio.sleep(0.3)
    progress = [f for kind, _, f in heard.events if kind == "changed" and "progress" in f]
    assert 1 <= len(progress) <= 3  # the first at once, the rest coalesced
    assert job.bytes_done == 1000
    release.set()
    await asyncio.wait_for(job.wait(), 5)
    await jobs.close()


async def test_cancel_is_free_for_the_owner_only():
    from pyctrd.ops.operations import IMAGE_PULL, JOB_OPS, job_check

    jobs = Jobs()

    async def work(job: Job) -> str:
        return ""

    job = jobs.start("pull", "x", work, owner=1000)
    needed = job_check(JOB_OPS["Cancel"], job)
    assert needed.actions_for(1000) == ()
    assert needed.actions_for(1001) == (IMAGE_PULL,)
    assert needed.details["job_id"] == job.id and needed.details["verb"] == "Cancel"
    await job.wait()
    await jobs.close()
