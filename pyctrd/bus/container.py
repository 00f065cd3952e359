"""org.pyctrd1.Container: a thin adapter from D-Bus calls to a core Container."""

import json
import os
from typing import TYPE_CHECKING

from dbus_fast.service import ServiceInterface, method

from pyctrd.bus.connection import hand_over
from pyctrd.bus.errors import translate_errors
from pyctrd.bus.names import CONTAINER_IFACE
from pyctrd.bus.props import CONTAINER_PROPERTIES, add_readonly_properties, name_out_args
from pyctrd.core import stdio
from pyctrd.core.container import Container
from pyctrd.core.unixsignals import parse_signal
from pyctrd.errors import NoSuchContainer

if TYPE_CHECKING:
    from pyctrd.core.engine import Engine


class ContainerInterface(ServiceInterface):
    def __init__(self, container: Container, runtime: "Engine") -> None:
        super().__init__(CONTAINER_IFACE)
        self.container = container
        self._runtime = runtime

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
        await self.container.stop(timeout)

    @method()
    @translate_errors
    async def Kill(self, signal: "s") -> None:
        await self.container.kill(parse_signal(signal))

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
        await self._runtime.remove_container(self.container, force)

    @method()
    @translate_errors
    async def Inspect(self) -> "s":
        if self.container.removed:
            raise NoSuchContainer(f"container {self.container.name} has been removed")
        return json.dumps(self.container.inspect())

    # The descriptors below are handed over: closed here once the reply is sent.

    @method()
    @translate_errors
    async def OpenLog(self, follow: "b") -> "h":
        return hand_over(stdio.open_log(self.container, follow))

    @method()
    @translate_errors
    async def Attach(self, detach_keys: "s") -> "h":
        sock = await stdio.attach(self.container, detach_keys)
        return hand_over(sock.detach())

    # Beyond API.md (issue 3). A container without a terminal can never have one
    # resized, whatever its state: InvalidArgument. One with a terminal whose
    # conmon is not alive (configured, exited): InvalidState.
    @method()
    @translate_errors
    async def ResizeTerminal(self, rows: "q", cols: "q") -> None:
        stdio.resize_terminal(self.container, rows, cols)


add_readonly_properties(ContainerInterface, CONTAINER_PROPERTIES, lambda iface: iface.container)
name_out_args(ContainerInterface, {"Mount": ["mountpoint"], "Wait": ["exit_code"],
                                   "Inspect": ["json"], "OpenLog": ["fd"], "Attach": ["fd"]})
