"""Calls still running at SIGTERM get an error reply before the daemon lets go.

A Wait on a container that keeps running (D-Bus and Varlink), a Stop with a long
timeout and a Varlink Watch are answered with Failed, "shutting down", instead
of a closed connection (NoReply, EOF) and tracebacks in the daemon's log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Daemon, container_id

from integration.test_faults import wait_file
from integration.test_varlink import RawClient, socket_of

FAILED = "org.freedesktop.DBus.Error.Failed"
SHUTTING_DOWN = "pyctrd is shutting down"
# PID 1 notes SIGTERM (visible from the host) and carries on: a Stop waits out its timeout.
STUBBORN = ["sh", "-c", "trap 'touch /got-term' TERM; while :; do sleep 0.1; done"]


async def test_calls_pending_at_sigterm_get_an_error_reply(
        fresh_daemon: Callable[[], Daemon], client_factory: Any) -> None:
    d = fresh_daemon()
    bus = await client_factory(d.bus_address)
    path = await bus.run(STUBBORN)
    rootfs = Path(await bus.prop(path, "Mountpoint"))
    name = container_id(path)
    varlink_wait = RawClient(socket_of(d))
    varlink_wait.send("io.pyctrd.Container.Wait", {"name": name})
    watch = RawClient(socket_of(d))
    watch.send("io.pyctrd.Container.Watch", {}, more=True)
    ready = await asyncio.to_thread(watch.receive)
    assert ready is not None and ready.get("continues"), ready
    waiting = asyncio.ensure_future(bus.ctr(path, "Wait", timeout=120))
    stopping = asyncio.ensure_future(bus.ctr(path, "Stop", "u", [900], timeout=120))
    await wait_file(rootfs / "got-term")  # Stop has sent SIGTERM and now waits
    # One connection's calls are taken in order: the Wait, sent first, is held too.
    assert await bus.state(path) == "running"
    assert not waiting.done() and not stopping.done()

    try:
        assert await asyncio.to_thread(d.sigterm) == 0

        for call in (waiting, stopping):
            err = await bus.fails(call)
            assert err.type == FAILED and SHUTTING_DOWN in err.text, err.text
        reply = await asyncio.to_thread(varlink_wait.receive)
        assert reply is not None, "the daemon hung up without answering the Varlink Wait"
        assert reply["error"] == "io.pyctrd.Container.Failed"
        assert SHUTTING_DOWN in reply["parameters"]["message"]
        while (event := await asyncio.to_thread(watch.receive)) is not None \
                and "error" not in event:
            assert event.get("continues"), event
        assert event is not None and event["error"] == "io.pyctrd.Container.Failed", event
        log = d.log_path.read_text()
        assert "Traceback" not in log and "ERROR" not in log, log
    finally:
        varlink_wait.close()
        watch.close()
        if not d.running():  # its containers are removed by the next daemon
            d.start()
    assert await bus.state(path) == "running"  # kept running under conmon, adopted
