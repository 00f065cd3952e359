"""Floods pyctrd with method calls as another user: tests run this under setpriv.

    setpriv ... python bus_flood.py ADDRESS PATH MEMBER CONNECTIONS BATCH MAX_CALLS SECONDS

Over CONNECTIONS connections at once, each sends BATCH calls of MEMBER
(org.pyctrd1.Container, no arguments) on PATH without waiting between them
(pipelined; BATCH stays under dbus-daemon's 128 pending replies per
connection, so every call reaches pyctrd), waits for their answers, and
again, until stdin says "stop", MAX_CALLS calls were made in all, or SECONDS
passed. Prints "started" once the first batch is out, then a JSON line:
{"calls", "seconds", "stopped_by", "results": {error name or "reply": [count,
first message]}}.
"""

import asyncio
import json
import sys
import time

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

CONTAINER = "org.pyctrd1.Container"


class Flood:
    def __init__(self, argv: list[str]) -> None:
        self.address, self.path, self.member = argv[0], argv[1], argv[2]
        self.connections, self.batch, self.max_calls = (int(a) for a in argv[3:6])
        self.deadline = time.monotonic() + float(argv[6])
        self.calls = 0
        self.results: dict[str, list] = {}
        self.stop = asyncio.Event()
        self.stopped_by = ""

    def done(self) -> bool:
        if self.stop.is_set():
            self.stopped_by = self.stopped_by or "stdin"
        elif self.calls >= self.max_calls:
            self.stopped_by = "max_calls"
        elif time.monotonic() >= self.deadline:
            self.stopped_by = "seconds"
        return bool(self.stopped_by)

    async def one(self, bus: MessageBus) -> None:
        try:
            reply = await asyncio.wait_for(bus.call(Message(
                destination="org.pyctrd1", path=self.path, interface=CONTAINER,
                member=self.member)), 60)
        except Exception as err:  # counted as any other answer
            key, text = type(err).__name__, str(err)
        else:
            assert reply is not None
            if reply.message_type is MessageType.ERROR:
                key, text = reply.error_name or "", reply.body[0] if reply.body else ""
            else:
                key, text = "reply", ""
        entry = self.results.setdefault(key, [0, text])
        entry[0] += 1

    async def connection(self, started: asyncio.Event) -> None:
        bus = await MessageBus(bus_address=self.address).connect()
        try:
            while not self.done():
                self.calls += self.batch
                batch = asyncio.gather(*(self.one(bus) for _ in range(self.batch)))
                started.set()
                await batch
        finally:
            bus.disconnect()

    async def run(self) -> None:
        started = asyncio.Event()
        loop = asyncio.get_running_loop()

        def told() -> None:  # "stop" (or EOF)
            loop.remove_reader(sys.stdin.fileno())
            self.stop.set()

        loop.add_reader(sys.stdin.fileno(), told)
        begun = time.monotonic()
        tasks = [asyncio.ensure_future(self.connection(started))
                 for _ in range(self.connections)]
        await started.wait()
        print("started", flush=True)
        await asyncio.gather(*tasks)
        print(json.dumps({"calls": self.calls, "seconds": time.monotonic() - begun,
                          "stopped_by": self.stopped_by, "results": self.results}),
              flush=True)


if __name__ == "__main__":
    asyncio.run(Flood(sys.argv[1:]).run())
