"""An image: its layers (bottom first) and the defaults it gives containers."""

import datetime
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pyctrd.errors import InvalidArgument
from pyctrd.storage.imageformats import ArchiveImage

DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


@dataclass
class Image:
    id: str
    reference: str  # the primary reference: the one given last; "" for none
    digest: str
    size: int
    created: int  # µs since the epoch
    layers: list[str]  # layer ids (diff ids), bottom first
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    stop_signal: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)  # all of them, primary first
    blobs: list[str] = field(default_factory=list)  # each layer's blob digest, or ""
    # The config's Volumes paths: each container gets an anonymous volume there.
    volumes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # records written before several references existed have only the primary
        if self.reference and self.reference not in self.references:
            self.references.insert(0, self.reference)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Image":
        return cls(**record)


def image_from_archive(found: ArchiveImage) -> Image:
    """The Image an archive holds, without references (the caller gives those).

    Its ID is the sha256 of its config, as podman's; a root-filesystem tarball
    has no config and takes its layer's diff id, so the same tree imported
    plain or compressed is one image.
    """
    layer_ids = [layer.diff_id for layer in found.layers]
    sizes = {layer.diff_id: layer.size for layer in found.layers}
    now = time.time_ns() // 1000
    if found.kind == "rootfs":
        return Image(id=layer_ids[0], reference="", digest=f"sha256:{layer_ids[0]}",
                     size=sum(sizes.values()), created=now, layers=layer_ids,
                     env=list(DEFAULT_ENV), blobs=[""])
    defaults = defaults_from_config(found.config)
    created = defaults.pop("created") or now
    if not any(e.startswith("PATH=") for e in defaults["env"]):
        defaults["env"] = [*DEFAULT_ENV, *defaults["env"]]  # as podman adds one
    return Image(id=found.config_digest, reference="",
                 digest=found.manifest_digest or f"sha256:{found.config_digest}",
                 size=sum(sizes.values()), created=created, layers=layer_ids,
                 blobs=[layer.blob for layer in found.layers], **defaults)


def defaults_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Image fields from an OCI/docker image config's ``config`` object and ``created``."""
    section = config.get("config") or {}
    if not isinstance(section, dict):
        raise InvalidArgument("the image config's 'config' must be a JSON object")
    labels = section.get("Labels") or {}
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise InvalidArgument("the image config's Labels must map strings to strings")
    return {
        "entrypoint": _strings(section.get("Entrypoint"), "Entrypoint"),
        "cmd": _strings(section.get("Cmd"), "Cmd"),
        "env": _strings(section.get("Env"), "Env"),
        "workdir": _string(section.get("WorkingDir"), "WorkingDir"),
        "user": _string(section.get("User"), "User"),
        "stop_signal": _string(section.get("StopSignal"), "StopSignal"),
        "labels": dict(labels),
        "created": _timestamp_us(config.get("created")),
        "volumes": _volume_paths(section.get("Volumes")),
    }


def _volume_paths(value: Any) -> list[str]:
    """The config's Volumes ({"/path": {}}), sorted; not a mapping: refused."""
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidArgument("the image config's Volumes must map paths to objects")
    return sorted(value)


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"the image config's {what} must be a list of strings")
    return list(value)


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"the image config's {what} must be a string")
    return value


def _timestamp_us(value: Any) -> int:
    """µs since the epoch of an RFC 3339 time; 0 when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return 0
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    # fromisoformat takes at most 6 fractional digits; Go writes 9
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0, int(moment.timestamp() * 1_000_000))
