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
from pyctrd.cli.errors import CliError, DaemonError
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
                 attributes: dict[str, Any], time_ns: int | None = None) -> None:
        self.time_ns = time.time_ns() if time_ns is None else time_ns
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

    @classmethod
    def from_history(cls, record: list[Any]) -> Event:
        """One of GetEvents' (time, type, action, id, attributes)."""
        usec, kind, action, object_id, attributes = record
        attributes = dict(attributes)
        name = attributes.pop("name", "")
        image = attributes.pop("image", "")
        if "exit_code" in attributes:
            code = attributes.pop("exit_code")
            attributes["ExitCode"] = int(code) if code.lstrip("-").isdigit() else code
        return cls(kind, action, object_id, name, image if kind != "image" else name,
                   attributes, int(usec) * 1000)

    def fields(self) -> dict[str, Any]:
        """What --filter looks at."""
        return {"Type": self.kind, "Status": self.status, "ID": self.id, "Name": self.name,
                "Image": self.image, "Attributes": self.attributes}

    def template_item(self) -> Any:
        from pyctrd.cli.reports import event_item
        item = event_item(self.kind, self.status, self.id, self.name, self.image,
                          self.attributes, self.time_ns)
        item.json_form = json.loads(self.json())
        return item

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


class Printer:
    """--filter, --format and --no-trunc applied to each event."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.keep = None
        if args.filter:
            from pyctrd.cli.filters import event_filter
            self.keep = event_filter(args.filter)
        self.template = None
        self.fmt = args.format
        if args.format not in ("", "text", "json"):
            from pyctrd.cli.gotemplate import Template, normalize
            self.template = Template(normalize(args.format)[1])
        self.short = args.no_trunc == "false"

    def show(self, event: Event) -> None:
        if self.keep is not None and not self.keep(event.fields()):
            return
        if self.short and len(event.id) > 12:
            event.id = event.id[:12]
        if self.template is not None:
            sys.stdout.write(self.template.execute(event.template_item()))
            sys.stdout.flush()
            return
        print(event.json() if self.fmt == "json" else event.text(), flush=True)


async def history(daemon: Daemon, args: argparse.Namespace, since: float | None,
                  until: float | None) -> list[Event]:
    """The daemon's event history between --since and --until, oldest first."""
    flag = "--since" if args.since else "--until" if args.until else "--stream=false"
    try:
        (records,) = await daemon.manager("GetEvents", "tt", [
            int(since * 1e6) if since else 0, int(until * 1e6) if until else 0])
    except DaemonError as err:
        if err.name in ("org.freedesktop.DBus.Error.UnknownMethod",
                        "org.freedesktop.DBus.Error.UnknownInterface"):
            raise CliError(f"{flag}: this pyctrd keeps no event history (it has no "
                           "GetEvents); `pyctr events` shows events as they happen") from None
        raise
    return [Event.from_history(r) for r in records]


async def cmd_events(daemon: Daemon, args: argparse.Namespace) -> int:
    from pyctrd.cli.filters import parse_time
    printer = Printer(args)  # a bad --filter or --format fails before anything is read
    now = time.time()
    since = parse_time(args.since, now) if args.since else None
    until = parse_time(args.until, now) if args.until else None
    stream = args.stream == "true"
    if not stream or (until is not None and until <= now):  # the past only
        for event in await history(daemon, args, since, until):
            printer.show(event)
        return 0
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
    if since is not None:
        # what happened since then, and then what happens; signals that came while
        # the history was read are in it already
        for past in await history(daemon, args, since, None):
            printer.show(past)
        while not queue.empty():
            translator.translate(queue.get_nowait())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if until is not None:
        loop.call_later(max(until - time.time(), 0), stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            getting = asyncio.ensure_future(queue.get())
            await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                return 0
            live = translator.translate(getting.result())
            if live is not None:
                printer.show(live)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away; nothing more to say
        return 0
    finally:
        stopping.cancel()
