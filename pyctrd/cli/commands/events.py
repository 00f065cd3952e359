"""events: pyctrd's signals as podman-like event lines, as they happen.

The bus has no event history: what happened before `pyctr events` started is
not shown. Statuses follow podman's words: a container is created ("create"),
started ("start"), paused/unpaused, exits ("died"), is mounted/unmounted and
removed ("remove"); an image is imported ("import") or removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from datetime import datetime
from typing import Any

from dbus_fast import Message, MessageType

from pyctrd.cli.bus import Daemon, unwrap
from pyctrd.ops.names import (
    BUS_NAME,
    CONTAINER_IFACE,
    CONTAINER_PREFIX,
    IMAGE_IFACE,
    MANAGER_IFACE,
    MANAGER_PATH,
    OBJECT_MANAGER_IFACE,
    PROPERTIES_IFACE,
)

MATCH_RULES = [
    f"type='signal',sender='{BUS_NAME}',interface='{OBJECT_MANAGER_IFACE}',"
    f"path='{MANAGER_PATH}'",
    f"type='signal',sender='{BUS_NAME}',interface='{MANAGER_IFACE}',path='{MANAGER_PATH}'",
    f"type='signal',sender='{BUS_NAME}',interface='{PROPERTIES_IFACE}',"
    f"member='PropertiesChanged',path_namespace='{MANAGER_PATH}'",
]
STATE_EVENTS = {"running": "start", "paused": "pause", "exited": "died", "created": "init"}
# Changes that come with a state change and say nothing by themselves.
_FOLLOWERS = {"PID", "StartedTimestamp", "FinishedTimestamp", "Mountpoint"}


class Event:
    def __init__(self, kind: str, status: str, object_id: str, name: str, image: str,
                 attributes: dict[str, Any]) -> None:
        self.time_ns = time.time_ns()
        self.kind = kind
        self.status = status
        self.id = object_id
        self.name = name
        self.image = image
        self.attributes = attributes

    def text(self) -> str:
        when = datetime.fromtimestamp(self.time_ns / 1e9).astimezone()
        stamp = when.strftime("%Y-%m-%d %H:%M:%S.") + f"{self.time_ns % 1_000_000_000:09d}" \
            + when.strftime(" %z %Z")
        attrs = {"image": self.image, "name": self.name, **self.attributes}
        shown = ", ".join(f"{k}={_show(v)}" for k, v in attrs.items() if v != "")
        return f"{stamp} {self.kind} {self.status} {self.id} ({shown})"

    def json(self) -> str:
        when = datetime.fromtimestamp(self.time_ns / 1e9).astimezone()
        record: dict[str, Any] = {
            "ID": self.id, "Image": self.image, "Name": self.name, "Status": self.status,
            "Time": when.isoformat(), "timeNano": self.time_ns, "Type": self.kind,
            "Attributes": self.attributes,
        }
        if self.status == "died":
            record["ContainerExitCode"] = self.attributes.get("ExitCode", 0)
        return json.dumps(record)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


class EventTranslator:
    """Bus signals → Events; remembers each object's name and state."""

    def __init__(self) -> None:
        self.known: dict[str, dict[str, Any]] = {}  # path → last known properties
        self.announced: set[tuple[str, str]] = set()  # (path, status) seen once of two

    def load(self, objects: dict[str, dict[str, dict[str, Any]]]) -> None:
        for path, ifaces in objects.items():
            props = ifaces.get(CONTAINER_IFACE) or ifaces.get(IMAGE_IFACE)
            if props is not None:
                self.known[path] = dict(props)

    def translate(self, msg: Message) -> Event | None:
        member, body, path = msg.member, msg.body, msg.path or ""
        if msg.interface == OBJECT_MANAGER_IFACE and member == "InterfacesAdded":
            obj_path, ifaces = body[0], unwrap(body[1])
            props = ifaces.get(CONTAINER_IFACE) or ifaces.get(IMAGE_IFACE)
            if props is None:
                return None
            self.known[obj_path] = dict(props)
            return self._once(obj_path, "create" if CONTAINER_IFACE in ifaces else "import")
        if msg.interface == OBJECT_MANAGER_IFACE and member == "InterfacesRemoved":
            return self._once(body[0], "remove")
        if msg.interface == MANAGER_IFACE and member in ("ContainerAdded", "ImageAdded"):
            return self._once(body[1], "create" if member == "ContainerAdded" else "import")
        if msg.interface == MANAGER_IFACE and member in ("ContainerRemoved", "ImageRemoved"):
            return self._once(body[1], "remove")
        if msg.interface == PROPERTIES_IFACE and member == "PropertiesChanged" and \
                body[0] in (CONTAINER_IFACE, IMAGE_IFACE):
            return self._changed(path, unwrap(body[1]))
        return None

    def _once(self, path: str, status: str) -> Event | None:
        """ObjectManager and Manager signals both announce an object: print it once."""
        key = (path, status)
        if key in self.announced:
            self.announced.discard(key)
            if status == "remove":
                self.known.pop(path, None)
            return None
        self.announced.add(key)  # a removed object's name stays known until its twin
        return self._event(path, status, {})

    def _changed(self, path: str, changed: dict[str, Any]) -> Event | None:
        before = self.known.setdefault(path, {})
        old_state = before.get("State")
        before.update(changed)
        if "State" in changed:
            state = changed["State"]
            status = STATE_EVENTS.get(state, state)
            if state == "running" and old_state == "paused":
                status = "unpause"
        elif "Mounted" in changed:
            status = "mount" if changed["Mounted"] else "unmount"
        elif set(changed) <= _FOLLOWERS:
            return None
        else:
            status = "update"
        attributes = dict(changed)
        if status == "died" and "ExitCode" not in attributes:
            attributes["ExitCode"] = before.get("ExitCode", 0)
        return self._event(path, status, attributes)

    def _event(self, path: str, status: str, attributes: dict[str, Any]) -> Event:
        props = self.known.get(path, {})
        is_container = path.startswith(CONTAINER_PREFIX)
        object_id = path.rsplit("/", 1)[1]
        if is_container:
            return Event("container", status, object_id, props.get("Name", ""),
                         props.get("Image", ""), attributes)
        reference = props.get("Reference", "")
        return Event("image", status, object_id, reference, reference, attributes)


async def cmd_events(daemon: Daemon, args: argparse.Namespace) -> int:
    translator = EventTranslator()
    queue: asyncio.Queue[Message] = asyncio.Queue()

    def on_message(msg: Message) -> None:
        if msg.message_type is MessageType.SIGNAL and (msg.path or "").startswith(MANAGER_PATH):
            queue.put_nowait(msg)

    daemon.bus.add_message_handler(on_message)
    for rule in MATCH_RULES:
        await daemon.add_match(rule)
    # Signals that come while we read the current objects wait in the queue.
    translator.load(await daemon.managed_objects())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            getting = asyncio.ensure_future(queue.get())
            await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                return 0
            event = translator.translate(getting.result())
            if event is not None:
                line = event.json() if args.format == "json" else event.text()
                print(line, flush=True)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away; nothing more to say
        return 0
    finally:
        stopping.cancel()
