"""org.pyctrd1.Job at /org/pyctrd1/job/<n>: one pull, push or commit under way or
just ended (kept 60 s after), as systemd-importd's Transfer objects."""

from typing import Any

from dbus_fast.service import ServiceInterface, method

from pyctrd.bus.errors import translate_errors
from pyctrd.bus.props import add_readonly_properties
from pyctrd.core.jobs import Job
from pyctrd.ops.names import JOB_IFACE
from pyctrd.ops.operations import Check, Operation, Operations, job_check
from pyctrd.ops.properties import JOB_PROPERTIES


class JobObject(ServiceInterface):
    interface = JOB_IFACE

    def __init__(self, job: Job, operations: Operations) -> None:
        super().__init__(self.interface)
        self.job = job
        self.operations = operations

    def call_check(self, operation: Operation, body: list[Any]) -> Check:
        return job_check(operation, self.job)

    @method()
    @translate_errors
    async def Cancel(self) -> None:
        """Stop the job; nothing of it stays in the store (no-op once it has ended)."""
        self.operations.cancel_job(self.job)


add_readonly_properties(JobObject, JOB_PROPERTIES, lambda obj: obj.job)
