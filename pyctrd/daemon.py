"""pyctrd: the daemon's entry point."""

import asyncio
import gc
import logging
import signal
import sys

from dbus_fast import BusType

from pyctrd import fdbudget
from pyctrd import settings as settings_mod
from pyctrd.bus.connection import connect
from pyctrd.bus.service import BusService, NameTaken
from pyctrd.core.engine import Engine
from pyctrd.layout import Layout
from pyctrd.oci.conmon import Conmon
from pyctrd.oci.runtime import OCIRuntime
from pyctrd.ops.authority import Authority
from pyctrd.ops.names import VARLINK_SOCKET_NAME
from pyctrd.ops.operations import Operations
from pyctrd.ops.polkit import PolkitClient
from pyctrd.registry.skopeo import write_registries_d
from pyctrd.rootless import userns
from pyctrd.rootless.userns import RootlessError
from pyctrd.rootlock import AlreadyLocked, RootLock
from pyctrd.settings import Settings, SettingsError
from pyctrd.varlink.server import VarlinkServer

log = logging.getLogger("pyctrd")

# Exit statuses besides 0 (clean stop) and 1 (a failure, e.g. the bus name taken).
EXIT_CONFIG = 2  # a bad flag or config file
EXIT_LOCKED = 3  # another pyctrd holds --root or --run-root
EXIT_NO_USERNS = 4  # a user's own daemon could not set up its user namespace


async def serve(settings: Settings) -> int:
    layout = Layout(settings.root, settings.run_root)
    oci = OCIRuntime(settings.runtime, layout.runtime_root, settings.runtime_timeout)
    engine = Engine(layout, oci, Conmon(oci, settings.conmon),
                    log_size_max=settings.log_size_max,
                    import_max_bytes=settings.import_max_bytes, rootless=settings.rootless)
    engine.transfers.configure(auth_file=settings.registry_auth_file,
                               registries_conf=settings.registries_conf,
                               policy=settings.signature_policy,
                               registries_d=settings.registries_d)
    if settings.registries_d == layout.root / settings_mod.OWN_REGISTRIES_D:
        write_registries_d(settings.registries_d, layout.root / "sigstore")
    engine.load()
    # The records just loaded (100,000 containers') live as long as the daemon: kept
    # out of every later collection's walk (each would stall the loop a moment).
    gc.freeze()
    # In the background, the name taken first: a call on a container still being
    # recovered waits for it (core/recovering.py).
    engine.begin_recovery()
    operations = Operations(engine)
    bus_type = BusType.SESSION if settings.bus == "session" else BusType.SYSTEM
    bus = await connect(bus_type, kernel_uid=settings.rootless)
    # On a user's session bus (and its 0600 socket) only that user can call us:
    # no polkit there. One Authority guards D-Bus and Varlink alike.
    authority = Authority(PolkitClient(bus)) if settings.bus == "system" else None
    service = BusService(operations, bus, authority)
    # Varlink listens before the bus name is taken: the name is the readiness
    # signal (systemd's Type=dbus, test harnesses), so a client that saw it must
    # find the socket too, not the dead one a killed daemon left. The run root's
    # lock (rootlock.py) makes the socket ours even if the name turns out taken.
    varlink = VarlinkServer(operations, settings.run_root / VARLINK_SOCKET_NAME, authority)
    varlink.start()
    try:
        await service.start()
    except NameTaken as err:
        log.error("%s", err)
        varlink.close()
        return 1
    except BaseException:
        varlink.close()  # no socket left behind for clients to find dead
        raise
    log.info("pyctrd serving %d containers and %d images on the %s bus (runtime %s)",
             len(engine.containers), len(engine.images), settings.bus, oci.path)
    # Serving now: once recovered, containers due to start (a reboot, restarts due
    # meanwhile) start in the background, with callers already answered.
    engine.after_recovery(engine.restarts.begin)

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
        # Calls still running (Wait, a long Stop) get an answer, not a closed socket.
        await asyncio.gather(service.end_calls(), varlink.end_calls())
        bus.disconnect()
    stopping.cancel()
    varlink.close()
    await engine.jobs.close()  # running pulls stop and delete their staging dirs
    engine.close()
    return status


def main(argv: list[str] | None = None) -> None:
    try:
        settings = settings_mod.load(argv)
    except SettingsError as err:
        print(f"pyctrd: {err}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    if settings.rootless:
        # First, while single-threaded: everything after runs inside, as root there.
        try:
            namespace = userns.enter(settings.run_root)
        except (RootlessError, OSError) as err:
            print(f"pyctrd: {err}", file=sys.stderr)
            sys.exit(EXIT_NO_USERNS)
        log.info("rootless: in the user namespace of pause process %d%s", namespace.pause_pid,
                 " (made now)" if namespace.created else "")
    # Before anything under the roots is read or cleaned: another daemon may be
    # importing into tmp or running containers from them.
    lock = RootLock(settings.root, settings.run_root)
    try:
        lock.acquire()
    except AlreadyLocked as err:
        print(f"pyctrd: {err}", file=sys.stderr)
        sys.exit(EXIT_LOCKED)
    except OSError as err:
        print(f"pyctrd: cannot lock {settings.root} and {settings.run_root}: {err}",
              file=sys.stderr)
        sys.exit(1)
    soft, hard = fdbudget.raise_limit()
    log.debug("open files: limit %d (hard %d), %d kept for the daemon's own work",
              soft, hard, fdbudget.reserve())
    try:
        sys.exit(asyncio.run(serve(settings)))
    except KeyboardInterrupt:
        sys.exit(0)
    except OSError as err:
        print(f"pyctrd: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        lock.release()


if __name__ == "__main__":
    main()
