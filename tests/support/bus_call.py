"""D-Bus method calls from another user: tests run this under setpriv.

    setpriv --reuid=UID --regid=GID ... python bus_call.py ADDRESS < calls.json

stdin: a JSON list of calls, each {"destination", "path", "interface",
"member", "signature", "body", "interactive", "fds"}; in a body,
{"variant": [signature, value]} stands for a Variant, and "fds" lists files
to open and pass. All calls go over one connection, in order.
stdout: JSON {"unique_name": ..., "uid": ..., "results": [...]}, a result
being {"reply": body} or {"error": name, "message": text}. Variants in
replies are unwrapped; received fds are closed and shown as "fd".
"""

import asyncio
import json
import os
import sys
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

TIMEOUT = 60.0


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"variant"}:
            signature, inner = value["variant"]
            return Variant(signature, decode(inner))
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def encode(value: Any) -> Any:
    if isinstance(value, Variant):
        return encode(value.value)
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


async def call(bus: MessageBus, spec: dict[str, Any]) -> dict[str, Any]:
    fds = [os.open(path, os.O_RDONLY | os.O_CLOEXEC) for path in spec.get("fds", [])]
    flags = (MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if spec.get("interactive")
             else MessageFlag.NONE)
    try:
        reply = await asyncio.wait_for(bus.call(Message(
            destination=spec["destination"], path=spec["path"],
            interface=spec["interface"], member=spec["member"],
            signature=spec.get("signature", ""), body=decode(spec.get("body", [])),
            unix_fds=fds, flags=flags)), TIMEOUT)
    finally:
        for fd in fds:
            os.close(fd)
    assert reply is not None
    for fd in reply.unix_fds:
        os.close(fd)
    if reply.message_type is MessageType.ERROR:
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        return {"error": reply.error_name, "message": text}
    body = ["fd" if kind.token == "h" else value
            for kind, value in zip(reply.signature_tree.types, reply.body, strict=True)]
    return {"reply": encode(body)}


async def main() -> None:
    calls = json.load(sys.stdin)
    bus = await MessageBus(bus_address=sys.argv[1], negotiate_unix_fd=True).connect()
    try:
        results = [await call(bus, spec) for spec in calls]
    finally:
        bus.disconnect()
    json.dump({"unique_name": bus.unique_name, "uid": os.getuid(), "results": results},
              sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
