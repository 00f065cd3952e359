"""Holds OpenLog streams as another user: tests run this under setpriv.

    setpriv ... python stream_holder.py ADDRESS PATH COUNT

Opens COUNT OpenLog(follow=true) streams of the container at PATH over one
connection, one call after another, and prints a JSON line: the number of
descriptors received and the errors ({name: [count, first message]}). Then
on each line of stdin:
  "disconnect": leave the bus but keep every descriptor; print a JSON line
                with how many of them reached EOF within 10 s (the daemon
                ended their streams) and how many did not.
  "exit":       exit.
"""

import asyncio
import json
import os
import select
import sys
import time

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

CONTAINER = "org.pyctrd1.Container"


async def open_streams(bus: MessageBus, path: str, count: int) -> tuple[list[int], dict]:
    fds: list[int] = []
    errors: dict[str, list] = {}
    for _ in range(count):
        reply = await asyncio.wait_for(bus.call(Message(
            destination="org.pyctrd1", path=path, interface=CONTAINER, member="OpenLog",
            signature="b", body=[True])), 30)
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            entry = errors.setdefault(reply.error_name or "", [0, reply.body[0]])
            entry[0] += 1
        else:
            fds.extend(reply.unix_fds)
    return fds, errors


def wait_eof(fds: list[int], timeout: float) -> int:
    """How many of ``fds`` reach EOF (their data drained) within ``timeout``."""
    for fd in fds:
        os.set_blocking(fd, False)
    open_fds = set(fds)
    deadline = time.monotonic() + timeout
    while open_fds and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_fds), [], [], 0.2)
        for fd in readable:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                open_fds.discard(fd)
    return len(fds) - len(open_fds)


async def main() -> None:
    address, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    fds, errors = await open_streams(bus, path, count)
    print(json.dumps({"fds": len(fds), "errors": errors, "unique_name": bus.unique_name}),
          flush=True)
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        if line == "disconnect":
            bus.disconnect()
            await bus.wait_for_disconnect()
            ended = wait_eof(fds, 10.0)
            print(json.dumps({"eof": ended, "open": len(fds) - ended}), flush=True)
        elif line == "exit":
            break
    for fd in fds:
        os.close(fd)


if __name__ == "__main__":
    asyncio.run(main())
