"""pyctrd: the daemon's entry point."""

import asyncio
import logging
import signal
import sys

from dbus_fast import BusType

from pyctrd import settings as settings_mod
from pyctrd.bus.authz import Authorizer
from pyctrd.bus.connection import connect
from pyctrd.bus.polkit import PolkitClient
from pyctrd.bus.service import BusService, NameTaken
from pyctrd.core.runtime import Runtime
from pyctrd.layout import Layout
from pyctrd.oci.conmon import Conmon
from pyctrd.oci.runtime import OCIRuntime
from pyctrd.settings import Settings, SettingsError
from pyctrd.varlink.authz import Authorizer as VarlinkAuthorizer
from pyctrd.varlink.server import SOCKET_NAME, VarlinkServer

log = logging.getLogger("pyctrd")


async def serve(settings: Settings) -> int:
    layout = Layout(settings.root, settings.run_root)
    oci = OCIRuntime(settings.runtime, layout.runtime_root, settings.runtime_timeout)
    runtime = Runtime(layout, oci, Conmon(oci, settings.conmon),
                      log_size_max=settings.log_size_max)
    runtime.load()
    await runtime.recover()
    bus_type = BusType.SESSION if settings.bus == "session" else BusType.SYSTEM
    bus = await connect(bus_type)
    if settings.bus == "system":
        # On a user's session bus only that user can call us: no polkit there.
        bus.authorizer = Authorizer(bus, PolkitClient(bus))
    service = BusService(runtime, bus)
    try:
        await service.start()
    except NameTaken as err:
        log.error("%s", err)
        return 1
    log.info("pyctrd serving %d containers and %d images on the %s bus (runtime %s)",
             len(runtime.containers), len(runtime.images), settings.bus, oci.path)
    # The same core over Varlink; polkit guards it exactly where it guards D-Bus.
    varlink = VarlinkServer(runtime, settings.run_root / SOCKET_NAME,
                            VarlinkAuthorizer(PolkitClient(bus))
                            if settings.bus == "system" else None)
    varlink.start()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    disconnected = asyncio.ensure_future(bus.wait_for_disconnect())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({disconnected, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if disconnected.done():
        log.error("lost the bus connection: %s", disconnected.exception())
        status = 1
    else:
        log.info("shutting down; containers keep running under conmon")
        status = 0
        bus.disconnect()
    stopping.cancel()
    varlink.close()
    runtime.close()
    return status


def main(argv: list[str] | None = None) -> None:
    try:
        settings = settings_mod.load(argv)
    except SettingsError as err:
        print(f"pyctrd: {err}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        sys.exit(asyncio.run(serve(settings)))
    except KeyboardInterrupt:
        sys.exit(0)
    except OSError as err:
        print(f"pyctrd: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
