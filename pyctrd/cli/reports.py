"""What ps, images, events, info and version show: podman's fields and formats.

Each listing turns pyctrd's properties into the object podman's templates see
(its field names: .ID, .Names, .Status, .Repository, ...) and names its
default table. Loaded only by the verbs that print these.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pyctrd.cli.format import (
    SHORT_ID,
    ago,
    container_status,
    human_duration,
    human_size,
    seconds,
    split_reference,
)


class GoStruct(dict[str, Any]):
    """A Go struct as templates see it: fields by name; an unknown one is an error."""

    go_type = "struct"

    def __init__(self, go_type: str, fields: Mapping[str, Any],
                 json_form: Any = None) -> None:
        super().__init__(fields)
        self.go_type = go_type
        self.json_form = json_form

    def to_json(self) -> Any:
        """What {{json .}} prints: podman's JSON of the object, else its fields."""
        if self.json_form is not None:
            return self.json_form
        return {k: v for k, v in self.items() if not callable(v)}


class GoMap(dict[str, Any]):
    """A Go map: a missing key is <no value>, not an error."""

    is_map = True


def go_time(micros: int) -> str:
    """time.Time's String() of a whole second, in local time, as podman prints
    .CreatedAt (it keeps Unix seconds)."""
    if not micros:
        return "0001-01-01 00:00:00 +0000 UTC"
    when = datetime.fromtimestamp(micros // 1_000_000).astimezone()
    return when.strftime("%Y-%m-%d %H:%M:%S %z %Z")


def rfc3339(micros: int) -> str:
    if not micros:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(seconds(micros), UTC).isoformat().replace("+00:00", "Z")


def ports_text(ports: list[Any]) -> str:
    """podman's PORTS column: 0.0.0.0:8080->80/tcp, comma-separated."""
    out = []
    for port in ports or []:
        host_ip, host_port, container_port, proto = ([*list(port), "", 0, 0, "tcp"])[:4]
        out.append(f"{host_ip or '0.0.0.0'}:{host_port}->{container_port}/{proto}")
    return ", ".join(out)


# -- ps

PS_DEFAULT = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t"
              "{{.Ports}}\t{{.Names}}")
PS_HEADERS = {"ID": "CONTAINER ID", "CreatedHuman": "CREATED", "CreatedAt": "CREATED",
              "RunningFor": "CREATED", "Names": "NAMES", "Ports": "PORTS"}
COMMAND_WIDTH = 17  # podman cuts .Command to 17 characters and "..."


def ps_item(c: dict[str, Any], no_trunc: bool = False, now: float | None = None) -> GoStruct:
    """One container as `podman ps --format` sees it."""
    now = time.time() if now is None else now
    command = " ".join(c.get("Command", []))
    if not no_trunc and len(command) > COMMAND_WIDTH:
        command = command[:COMMAND_WIDTH] + "..."
    labels = GoMap(c.get("Labels") or {})
    state = c.get("State", "")
    status = container_status(c, now)
    created = c.get("CreatedTimestamp", 0)
    item = GoStruct("psReporter", {
        "ID": c["Id"] if no_trunc else c["Id"][:SHORT_ID],
        "Image": c.get("Image", ""),
        "ImageID": c.get("ImageId", ""),
        "Command": command,
        "Created": go_time(created),
        "CreatedAt": go_time(created),
        "CreatedHuman": ago(created, now),
        "RunningFor": human_duration(now - seconds(created)) if created else "",
        "Status": status,
        "State": status,
        "Names": c.get("Name", ""),
        "Labels": labels,
        "Label": lambda key: labels.get(key, ""),
        "Ports": ports_text(c.get("Ports", [])),
        "Networks": ",".join(c.get("Networks", [])),
        "Mounts": "",
        "Pid": c.get("PID", 0),
        "ExitCode": c.get("ExitCode", 0),
        "Exited": state == "exited",
        "ExitedAt": int(seconds(c.get("FinishedTimestamp", 0))),
        "StartedAt": int(seconds(c.get("StartedTimestamp", 0))),
        "AutoRemove": bool(c.get("AutoRemove", False)),
        "IsInfra": False, "Pod": "", "PodName": "", "Size": "",
    }, json_form=ps_json(c, now))
    return item


def ps_json(c: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """`podman ps --format json`'s entry (the keys pyctrd can fill)."""
    state = c.get("State", "")
    return {
        "AutoRemove": bool(c.get("AutoRemove", False)),
        "Command": c.get("Command", []),
        "Created": int(seconds(c.get("CreatedTimestamp", 0))),
        "CreatedAt": ago(c.get("CreatedTimestamp", 0), now),
        "Exited": state == "exited",
        "ExitedAt": int(seconds(c.get("FinishedTimestamp", 0))),
        "ExitCode": c.get("ExitCode", 0),
        "Id": c["Id"],
        "Image": c.get("Image", ""),
        "ImageID": c.get("ImageId", ""),
        "Labels": c.get("Labels") or None,
        "Mounts": [],
        "Names": [c.get("Name", "")],
        "Networks": c.get("Networks", []),
        "Pid": c.get("PID", 0),
        "Ports": None if not c.get("Ports") else [
            {"host_ip": p[0], "host_port": p[1], "container_port": p[2], "protocol": p[3]}
            for p in c["Ports"]],
        "StartedAt": int(seconds(c.get("StartedTimestamp", 0))),
        "State": state,
        "Status": container_status(c, now),
    }


# -- images

IMAGES_DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Created}}\t{{.Size}}"
IMAGES_HEADERS = {"ID": "IMAGE ID", "ReadOnly": "R/O", "CreatedSince": "CREATED",
                  "CreatedAt": "CREATED AT", "Created": "CREATED"}


def image_rows(i: dict[str, Any]) -> list[tuple[str, str]]:
    """(repository, tag) per reference, as podman lists an image once per name."""
    references = i.get("References") or ([i["Reference"]] if i.get("Reference") else [])
    return [split_reference(r) for r in references] or [("", "")]


def image_item(i: dict[str, Any], repository: str, tag: str, no_trunc: bool = False,
               now: float | None = None) -> GoStruct:
    created = i.get("CreatedTimestamp", 0)
    image_id = i["Id"]
    references = i.get("References") or ([i["Reference"]] if i.get("Reference") else [])
    return GoStruct("imageReporter", {
        "ID": image_id if no_trunc else image_id[:SHORT_ID],
        "Id": image_id,
        "Repository": repository or "<none>",
        "Tag": tag or "<none>",
        "Digest": i.get("Digest", ""),
        "Created": ago(created, now),
        "CreatedSince": ago(created, now),
        "CreatedAt": go_time(created),
        "CreatedTime": go_time(created),
        "Size": human_size(i.get("Size", 0)),
        "VirtualSize": human_size(i.get("Size", 0)),
        "SharedSize": "0 B",
        "Names": references,
        "Labels": GoMap(i.get("Labels") or {}),
        "Dangling": not references,
        "ReadOnly": False,
        "Containers": i.get("_containers", 0),
        "History": "",
    }, json_form=image_json(i))


def image_json(i: dict[str, Any]) -> dict[str, Any]:
    references = i.get("References") or ([i["Reference"]] if i.get("Reference") else [])
    return {
        "Id": i["Id"],
        "Names": references,
        "RepoTags": references,
        "Digest": i.get("Digest", ""),
        "Created": int(seconds(i.get("CreatedTimestamp", 0))),
        "CreatedAt": rfc3339(i.get("CreatedTimestamp", 0)),
        "Size": i.get("Size", 0),
        "VirtualSize": i.get("Size", 0),
        "SharedSize": 0,
        "Labels": i.get("Labels") or None,
        "Containers": i.get("_containers", 0),
        "Dangling": not references,
    }


# -- inspect


def container_inspect(data: dict[str, Any]) -> dict[str, Any]:
    """pyctrd's Inspect with the podman fields it implies but does not name."""
    host = data.setdefault("HostConfig", {})
    host.setdefault("LogConfig", {"Type": "k8s-file", "Path": data.get("LogPath", "")})
    config = data.setdefault("Config", {})
    config.setdefault("Image", data.get("ImageName", ""))
    if "Labels" in config and config["Labels"] is not None:
        config["Labels"] = GoMap(config["Labels"])
    data.setdefault("Driver", "overlay")
    data.setdefault("RestartCount", 0)
    return data


def image_inspect(props: dict[str, Any]) -> dict[str, Any]:
    """An image's properties in `podman image inspect`'s shape."""
    references = props.get("References") or (
        [props["Reference"]] if props.get("Reference") else [])
    return {
        "Id": props.get("Id", ""),
        "Digest": props.get("Digest", ""),
        "RepoTags": references,
        "RepoDigests": [],
        "Created": rfc3339(props.get("CreatedTimestamp", 0)),
        "Size": props.get("Size", 0),
        "VirtualSize": props.get("Size", 0),
        "Config": {"Entrypoint": props.get("Entrypoint", []), "Cmd": props.get("Cmd", []),
                   "Env": props.get("Env", []), "WorkingDir": props.get("WorkingDir", ""),
                   "User": props.get("User", ""),
                   "Labels": GoMap(props.get("Labels") or {})},
        "RootFS": {"Type": "layers", "Layers": props.get("Layers", [])},
        "Architecture": props.get("Architecture", ""),
        "Os": props.get("Os", "linux"),
    }


# -- events

EVENTS_DEFAULT = ""  # the plain text line, not a template


def event_item(kind: str, status: str, object_id: str, name: str, image: str,
               attributes: Mapping[str, Any], time_ns: int) -> GoStruct:
    """One event as `podman events --format` sees it."""
    when = datetime.fromtimestamp(time_ns // 1_000_000_000).astimezone()
    fraction = f".{time_ns % 1_000_000_000:09d}".rstrip("0").rstrip(".")
    exit_code = attributes.get("ExitCode", attributes.get("exitCode"))
    return GoStruct("Event", {
        "ID": object_id, "Name": name, "Image": image, "Status": status, "Type": kind,
        # time.Time's String(), as podman's {{.Time}} prints
        "Time": when.strftime("%Y-%m-%d %H:%M:%S") + fraction + when.strftime(" %z %Z"),
        "TimeNano": time_ns, "Attributes": GoMap(
            {k: v if isinstance(v, str) else str(v) for k, v in attributes.items()}),
        "ContainerExitCode": int(exit_code) if exit_code not in (None, "") else 0,
        "Network": attributes.get("network", ""),
        "HealthStatus": attributes.get("health_status", ""),
    })
