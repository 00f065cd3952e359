"""org.pyctrd1.Container: one container's object; decode, call, encode."""

import os
from typing import Any

from dbus_fast import Variant
from dbus_fast.service import ServiceInterface, method

from pyctrd.bus.callers import caller_uid, left_meanwhile, stream_owner
from pyctrd.bus.connection import hand_over
from pyctrd.bus.errors import translate_errors
from pyctrd.bus.exec import exec_call_check, session_path
from pyctrd.bus.props import add_readonly_properties, annotate_fd_methods, name_out_args
from pyctrd.core.container import Container
from pyctrd.errors import InvalidArgument
from pyctrd.ops import exec as exec_ops
from pyctrd.ops.names import CONTAINER_IFACE, job_path
from pyctrd.ops.operations import Check, Operation, Operations, check
from pyctrd.ops.properties import CONTAINER_PROPERTIES
from pyctrd.ops.streams import StreamOwner
from pyctrd.ops.transferoptions import decode_commit as decode_commit_options


class ContainerObject(ServiceInterface):
    interface = CONTAINER_IFACE

    def __init__(self, container: Container, operations: Operations) -> None:
        super().__init__(self.interface)
        self.container = container
        self.operations = operations

    def call_check(self, operation: Operation, body: list[Any]) -> Check:
        if operation.verb == "Exec":  # its details carry the command
            return exec_call_check(self.container, body)
        return check(operation, self.container)

    @method()
    @translate_errors
    async def Init(self) -> None:
        await self.container.init()

    @method()
    @translate_errors
    async def Start(self) -> None:
        await self.container.start()

    @method()
    @translate_errors
    async def Stop(self, timeout: "u") -> None:
        await self.operations.stop(self.container, timeout)

    @method()
    @translate_errors
    async def Kill(self, signal: "s") -> None:
        await self.operations.kill(self.container, signal)

    @method()
    @translate_errors
    async def Pause(self) -> None:
        await self.container.pause()

    @method()
    @translate_errors
    async def Unpause(self) -> None:
        await self.container.unpause()

    @method()
    @translate_errors
    async def Mount(self, mount_label: "s") -> "s":
        if mount_label:
            raise InvalidArgument(f"mount_label {mount_label!r} cannot be applied: this "
                                  "daemon sets no SELinux mount labels; pass \"\"")
        return await self.container.mount()

    @method()
    @translate_errors
    async def Unmount(self) -> None:
        await self.container.unmount()

    @method()
    @translate_errors
    async def Export(self, fd: "h") -> None:
        try:
            await self.container.export(fd)
        finally:
            os.close(fd)

    @method()
    @translate_errors
    async def Wait(self) -> "i":
        return await self.container.wait()

    @method()
    @translate_errors
    async def Remove(self, force: "b") -> None:
        await self.operations.remove_container(self.container, force)

    @method()
    @translate_errors
    async def Inspect(self) -> "s":
        return self.operations.inspect_json(self.container)

    @method()
    @translate_errors
    async def GetStats(self) -> "a{sv}":
        return {key: Variant("u" if key == "pids" else "t", value)
                for key, value in self.operations.stats(self.container).items()}

    @method()
    @translate_errors
    async def RunHealthCheck(self) -> "s":
        return await self.operations.run_health_check(self.container)

    # The descriptors below are handed over: closed here once the reply is sent.
    # Each stream is its caller's (capped per uid, closed when its connection goes).

    @method()
    @translate_errors
    async def OpenLog(self, follow: "b") -> "h":
        owner = await stream_owner("OpenLog")
        fd = await self.operations.open_log(self.container, follow, owner)
        return hand_over(self._unless_gone(owner, fd))

    @method()
    @translate_errors
    async def Attach(self, detach_keys: "s") -> "h":
        owner = await stream_owner("Attach")
        fd = await self.operations.attach(self.container, detach_keys, owner)
        return hand_over(self._unless_gone(owner, fd))

    @method()
    @translate_errors
    async def Exec(self, command: "as", options: "a{sv}") -> "oh":
        owner = await stream_owner("Exec")
        decoded = exec_ops.decode_options({k: v.value for k, v in options.items()})
        session, fd = await exec_ops.exec_in(self.operations, self.container, command,
                                             decoded, owner)
        return [session_path(session), hand_over(self._unless_gone(owner, fd))]

    def _unless_gone(self, owner: StreamOwner | None, fd: int) -> int:
        """``fd``; its stream ended at once if the caller left while it was set up."""
        if owner is not None and left_meanwhile(owner):
            self.operations.streams.close_connection(owner.connection)
        return fd

    # Beyond API.md (issue 3). A container without a terminal can never have one
    # resized, whatever its state: InvalidArgument. One with a terminal whose
    # conmon is not alive (configured, exited): InvalidState.
    @method()
    @translate_errors
    async def ResizeTerminal(self, rows: "q", cols: "q") -> None:
        self.operations.resize_terminal(self.container, rows, cols)

    @method()
    @translate_errors
    async def Commit(self, reference: "s", options: "a{sv}") -> "o":
        job = self.operations.commit(self.container, reference, decode_commit_options(
            {key: (variant.signature, variant.value) for key, variant in options.items()}),
            await caller_uid("Commit"))
        return job_path(job.id)


add_readonly_properties(ContainerObject, CONTAINER_PROPERTIES, lambda obj: obj.container)
name_out_args(ContainerObject, {"Mount": ["mountpoint"], "Wait": ["exit_code"],
                                "Inspect": ["json"], "OpenLog": ["fd"], "Attach": ["fd"],
                                "GetStats": ["stats"], "Exec": ["session", "stdio"],
                                "RunHealthCheck": ["status"], "Commit": ["job"]})
annotate_fd_methods(ContainerObject)
