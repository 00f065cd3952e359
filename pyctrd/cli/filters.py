"""--filter as podman takes it, for ps, images and events (and other verbs' lists).

Values for one key are alternatives (any may match), different keys must all
match; label (and label!) filters must all match, as podman's man pages say.
A key pyctrd cannot judge is refused with a line naming it, never ignored.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pyctrd.cli.errors import CliError
from pyctrd.cli.flags import CONTAINER_FILTER_KEYS, EVENT_FILTER_KEYS, IMAGE_FILTER_KEYS
from pyctrd.cli.format import split_reference

Predicate = Callable[[dict[str, Any], str], bool]

STATUSES = ("created", "exited", "paused", "running", "unknown", "configured", "stopped")


def parse(items: Sequence[str], known: Iterable[str],
          refused: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """--filter KEY=VALUE items → key → values; unknown keys fail naming the filter."""
    known = set(known)
    refused = refused or {}
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f'invalid filter "{item}": give --filter KEY=VALUE')
        if key in refused:
            raise CliError(f"--filter {key}: {refused[key]}")
        if key not in known:
            raise CliError(f'invalid filter "{key}": pyctr knows '
                           f"{', '.join(sorted(known))}")
        out.setdefault(key, []).append(value)
    return out


def matches(obj: dict[str, Any], filters: Mapping[str, list[str]],
            predicates: Mapping[str, Predicate]) -> bool:
    for key, values in filters.items():
        test = predicates[key]
        if key.startswith("label"):
            if not all(test(obj, v) for v in values):
                return False
        elif not any(test(obj, v) for v in values):
            return False
    return True


def label_matches(labels: Mapping[str, str] | None, spec: str) -> bool:
    """label=KEY or label=KEY=VALUE (VALUE may be a glob, as podman's)."""
    labels = labels or {}
    key, sep, value = spec.partition("=")
    if key not in labels:
        return False
    return not sep or fnmatch.fnmatchcase(labels[key], value)


def parse_time(text: str, now: float | None = None) -> float:
    """A point in time as podman's --since/--until/until take it: RFC 3339 (or a
    date), Unix seconds, or a duration (10m, 1h30m) back from now."""
    now = time.time() if now is None else now
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    duration = parse_duration(text)
    if duration is not None:
        return now - duration
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"invalid time {text!r}: give a timestamp (2024-01-02T15:04:05Z), "
                       "Unix seconds or a duration such as 10m") from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float | None:
    """Go's time.ParseDuration ("1h30m", "10s"); None if it is not one."""
    if not text or not re.fullmatch(rf"(?:{_DURATION.pattern})+", text):
        return None
    return sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))


# -- containers (ps)

CONTAINER_FILTERS = CONTAINER_FILTER_KEYS
CONTAINER_REFUSED = {
    "pod": "pyctrd has no pods",
    "volume": "pyctr does not filter containers by volume yet",
    "is-task": "pyctrd has no pods",
}


def container_predicates(containers: Sequence[dict[str, Any]],
                         now: float | None = None) -> dict[str, Predicate]:
    def created_of(ref: str) -> int:
        for c in containers:
            if c.get("Name") == ref or c["Id"] == ref:
                return int(c.get("CreatedTimestamp", 0))
        found = [c for c in containers if c["Id"].startswith(ref)]
        if len(found) != 1:
            raise CliError(f'no container with name or ID "{ref}" found: no such container')
        return int(found[0].get("CreatedTimestamp", 0))

    def status(c: dict[str, Any], v: str) -> bool:
        if v not in STATUSES:
            raise CliError(f"{v} is not a valid status")
        state = c.get("State", "")
        # podman's "created" is pyctrd's created or configured (not yet run)
        return state == v or (v == "stopped" and state == "exited") or \
            (v == "created" and state == "configured")

    def exited(c: dict[str, Any], v: str) -> bool:
        try:
            code = int(v)
        except ValueError:
            raise CliError(f"exited code out of range {v!r}") from None
        return c.get("State") == "exited" and c.get("ExitCode") == code

    return {
        "id": lambda c, v: c["Id"].startswith(v),
        "name": lambda c, v: re.search(v, c.get("Name", "")) is not None,
        "label": lambda c, v: label_matches(c.get("Labels"), v),
        "label!": lambda c, v: not label_matches(c.get("Labels"), v),
        "exited": exited,
        "status": status,
        "ancestor": lambda c, v: _image_matches(c.get("Image", ""), c.get("ImageId", ""), v),
        "before": lambda c, v: c.get("CreatedTimestamp", 0) < created_of(v),
        "since": lambda c, v: c.get("CreatedTimestamp", 0) > created_of(v),
        "until": lambda c, v: c.get("CreatedTimestamp", 0) / 1e6 < parse_time(v, now),
        "network": lambda c, v: v in c.get("Networks", []),
        "health": lambda c, v: c.get("Health", "") == v,
        "restart-policy": lambda c, v: c.get("RestartPolicy", "no") == v,
    }


def _image_matches(reference: str, image_id: str, wanted: str) -> bool:
    if image_id and image_id.startswith(wanted.removeprefix("sha256:")):
        return True
    name, tag = split_reference(reference)
    wanted_name, wanted_tag = split_reference(wanted)
    if wanted_tag and wanted_tag != tag:
        return False
    return name == wanted_name or name.endswith("/" + wanted_name) or \
        fnmatch.fnmatchcase(reference, wanted)


def filter_containers(containers: list[dict[str, Any]], items: Sequence[str],
                      now: float | None = None) -> list[dict[str, Any]]:
    if not items:
        return containers
    filters = parse(items, CONTAINER_FILTERS, CONTAINER_REFUSED)
    predicates = container_predicates(containers, now)
    return [c for c in containers if matches(c, filters, predicates)]


# -- images

IMAGE_FILTERS = IMAGE_FILTER_KEYS
IMAGE_REFUSED = {"intermediate": "pyctrd keeps no intermediate (build) images",
                 "manifest": "pyctrd keeps no manifest lists"}


def _references(i: dict[str, Any]) -> list[str]:
    return list(i.get("References") or ([i["Reference"]] if i.get("Reference") else []))


def image_predicates(images: Sequence[dict[str, Any]], used: set[str],
                     now: float | None = None) -> dict[str, Predicate]:
    def created_of(ref: str) -> int:
        for i in images:
            if ref in _references(i) or i["Id"].startswith(ref.removeprefix("sha256:")) \
                    or any(r.startswith(ref + ":") for r in _references(i)):
                return int(i.get("CreatedTimestamp", 0))
        raise CliError(f"{ref}: image not known")

    def boolean(v: str) -> bool:
        if v.lower() not in ("true", "false"):
            raise CliError(f"invalid filter value {v!r}: give true or false")
        return v.lower() == "true"

    def reference(i: dict[str, Any], v: str) -> bool:
        return any(_image_matches(r, "", v) or fnmatch.fnmatchcase(split_reference(r)[0], v)
                   for r in _references(i))

    return {
        "reference": reference,
        "before": lambda i, v: i.get("CreatedTimestamp", 0) < created_of(v),
        "since": lambda i, v: i.get("CreatedTimestamp", 0) > created_of(v),
        "dangling": lambda i, v: (not _references(i)) == boolean(v),
        "label": lambda i, v: label_matches(i.get("Labels"), v),
        "label!": lambda i, v: not label_matches(i.get("Labels"), v),
        "id": lambda i, v: i["Id"].startswith(v.removeprefix("sha256:")),
        "until": lambda i, v: i.get("CreatedTimestamp", 0) / 1e6 < parse_time(v, now),
        "readonly": lambda i, v: not boolean(v),  # pyctrd has no read-only stores
        "containers": lambda i, v: (i["Id"] in used) == boolean(v),
    }


def filter_images(images: list[dict[str, Any]], items: Sequence[str], used: set[str],
                  now: float | None = None) -> list[dict[str, Any]]:
    if not items:
        return images
    filters = parse(items, IMAGE_FILTERS, IMAGE_REFUSED)
    predicates = image_predicates(images, used, now)
    return [i for i in images if matches(i, filters, predicates)]


# -- events: each event is a dict with Type, Status, ID, Name, Image, Attributes

EVENT_FILTERS = EVENT_FILTER_KEYS
EVENT_REFUSED = {"pod": "pyctrd has no pods", "volume": "pyctrd records no volume events"}


def _event_label(e: dict[str, Any], v: str) -> bool:
    key, sep, value = v.partition("=")
    attrs = e.get("Attributes") or {}
    labels: dict[str, Any] = attrs["Labels"] if isinstance(attrs.get("Labels"), dict) \
        else attrs
    return key in labels and (not sep or str(labels[key]) == value)


EVENT_PREDICATES: dict[str, Predicate] = {
    "container": lambda e, v: e.get("Type") == "container" and (
        e.get("Name") == v or str(e.get("ID", "")).startswith(v)),
    "event": lambda e, v: e.get("Status") == v,
    "status": lambda e, v: e.get("Status") == v,
    "image": lambda e, v: _image_matches(str(e.get("Image", "")), "", v) or (
        e.get("Type") == "image" and str(e.get("ID", "")).startswith(v)),
    "type": lambda e, v: e.get("Type") == v,
    "label": _event_label,
    "network": lambda e, v: e.get("Type") == "network" and (
        e.get("Name") == v or str(e.get("ID", "")).startswith(v)),
}


def event_filter(items: Sequence[str]) -> Callable[[dict[str, Any]], bool]:
    """A test for events, made once (a bad --filter fails before anything is read)."""
    filters = parse(items, EVENT_FILTERS, EVENT_REFUSED)
    return lambda event: matches(event, filters, EVENT_PREDICATES)
