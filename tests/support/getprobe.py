#!/usr/bin/env python3
"""A property Get every INTERVAL seconds, in a process of its own, until stdin closes.

    getprobe.py ADDRESS PATH INTERFACE PROPERTY [INTERVAL [DESTINATION]]

Prints "ready" once connected, then at the end one line per Get: the
CLOCK_MONOTONIC time it was sent and its latency, in seconds. Used by the
exit-storm test and bench/storm.py: a probe sharing a process with a client
that receives the storm's thousands of signals would measure that client's
own unmarshalling, not the daemon. DESTINATION (default org.pyctrd1) may be
the bus itself (org.freedesktop.DBus): the machine's own latency beside it.
"""

import asyncio
import contextlib
import os
import sys
import time

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus


async def main(address: str, path: str, interface: str, name: str, interval: float,
               destination: str) -> None:
    bus = await MessageBus(bus_address=address).connect()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_stdin() -> None:
        if not os.read(0, 4096):
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, on_stdin)
    samples: list[tuple[float, float]] = []
    print("ready", flush=True)
    while not stop.is_set():
        sent = time.monotonic()
        reply = await bus.call(Message(destination=destination, path=path,
                                       interface="org.freedesktop.DBus.Properties",
                                       member="Get", signature="ss", body=[interface, name]))
        assert reply is not None and reply.message_type is MessageType.METHOD_RETURN, reply
        samples.append((sent, time.monotonic() - sent))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    bus.disconnect()
    sys.stdout.write("".join(f"{s:.6f} {lat:.6f}\n" for s, lat in samples))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4],
                     float(sys.argv[5]) if len(sys.argv) > 5 else 0.010,
                     sys.argv[6] if len(sys.argv) > 6 else "org.pyctrd1"))
