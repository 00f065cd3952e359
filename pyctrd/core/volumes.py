"""Named volumes, as podman's "local" driver: a directory <root>/volumes/<name>/_data.

Records live in the SQLite store. A container's mounts hold the volume's
_data path as their source (so the spec and recovery need nothing new); which
containers use a volume is derived from those sources, kept in ``users``.
An anonymous volume (an image's VOLUME path) records the container it was made
for and goes when that container goes.
"""

import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyctrd.database import Database
from pyctrd.errors import Exists, InUse, InvalidArgument, NoSuchVolume

log = logging.getLogger(__name__)

# podman's rule for volume names.
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
NAME_MAX = 255


@dataclass
class Volume:
    name: str
    mountpoint: str  # the _data directory that containers mount
    created: int  # µs since the epoch
    labels: dict[str, str] = field(default_factory=dict)
    anonymous_for: str = ""  # the container an image VOLUME made it for, or ""
    driver: str = "local"
    users: set[str] = field(default_factory=set)  # IDs of containers mounting it

    @property
    def in_use(self) -> bool:
        return bool(self.users)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        del record["users"]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Volume":
        return cls(**record)


class VolumeListener(Protocol):
    def volume_added(self, volume: Volume) -> None: ...
    def volume_changed(self, volume: Volume, fields: list[str]) -> None: ...
    def volume_removed(self, volume: Volume) -> None: ...


def check_name(name: str) -> str:
    if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise InvalidArgument(f"invalid volume name {name[:100]!r}: it must match "
                              "[a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 255 characters)")
    return name


class Volumes:
    def __init__(self, root: Path, store: Database) -> None:
        self.root = root
        self.store = store
        self.volumes: dict[str, Volume] = {}
        self._listeners: list[VolumeListener] = []

    def add_listener(self, listener: VolumeListener) -> None:
        self._listeners.append(listener)

    def _tell(self, event: str, *args: Any) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, event)(*args)
            except Exception:
                log.exception("a volume listener failed on %s", event)

    def load(self) -> None:
        # Data of volumes removed just before a crash (see remove()).
        for trash in self.root.glob(".removed-*") if self.root.is_dir() else ():
            shutil.rmtree(trash, ignore_errors=True)
        for record in self.store.volumes():
            volume = Volume.from_record(record)
            self.volumes[volume.name] = volume

    def lookup(self, name: str) -> Volume:
        try:
            return self.volumes[name]
        except KeyError:
            raise NoSuchVolume(f'no volume with name "{name}" found: no such volume') from None

    def create(self, name: str, labels: dict[str, str] | None = None,
               anonymous_for: str = "") -> Volume:
        """A new volume; an empty ``name`` generates one (64 hex digits, as podman's)."""
        name = check_name(name) if name else secrets.token_hex(32)
        if name in self.volumes:
            raise Exists(f"volume with name {name} already exists: volume already exists")
        data = self.root / name / "_data"
        data.mkdir(parents=True, exist_ok=True)
        volume = Volume(name=name, mountpoint=str(data), created=time.time_ns() // 1000,
                        labels=dict(labels or {}), anonymous_for=anonymous_for)
        try:
            self.store.add_volume(name, volume.to_record())
        except BaseException:
            shutil.rmtree(self.root / name, ignore_errors=True)
            raise
        self.volumes[name] = volume
        self._tell("volume_added", volume)
        return volume

    def remove(self, volume: Volume) -> Path | None:
        """Forget it; the caller has dealt with its users. Its data is moved aside
        (the name is free at once) and the returned directory is the caller's to
        delete, in a thread: a big volume takes a while (load() deletes leftovers)."""
        if volume.users:
            raise InUse(f"volume {volume.name} is being used by the following container(s): "
                        f"{', '.join(sorted(volume.users))}: volume is being used")
        self.store.remove_volume(volume.name)
        self.volumes.pop(volume.name, None)
        trash = self.root / f".removed-{secrets.token_hex(8)}"
        try:
            (self.root / volume.name).rename(trash)
        except FileNotFoundError:
            self._tell("volume_removed", volume)
            return None
        self._tell("volume_removed", volume)
        return trash

    def sweep_anonymous(self, stored: set[str]) -> None:
        """Remove anonymous volumes made for containers not in ``stored``."""
        for volume in list(self.volumes.values()):
            if volume.anonymous_for and volume.anonymous_for not in stored:
                log.info("removing anonymous volume %s of the gone container %s",
                         volume.name, volume.anonymous_for[:12])
                delete_tree(self.remove(volume))

    # users, from the containers' mount sources

    def by_mountpoint(self, source: str) -> Volume | None:
        """The volume whose data ``source`` is (<root>/<name>/_data), if any."""
        path = Path(source)
        if path.name != "_data" or path.parent.parent != self.root:
            return None
        volume = self.volumes.get(path.parent.name)
        return volume if volume is not None and volume.mountpoint == source else None

    def resolve_mounts(self, mounts: Iterable[tuple[str, str, str]],
                       made: list[Volume] | None = None) -> list[tuple[str, str, str]]:
        """Mounts with each volume-name source (no leading "/") replaced by that
        volume's _data path, creating the volume on first use, as podman does
        (the new ones are appended to ``made``)."""
        resolved = []
        for source, destination, options in mounts:
            if source and not source.startswith("/"):
                volume = self.volumes.get(source)
                if volume is None:
                    volume = self.create(source)
                    if made is not None:
                        made.append(volume)
                source = volume.mountpoint
            resolved.append((source, destination, options))
        return resolved

    def joined(self, cid: str, mounts: Iterable[tuple[str, str, str]]) -> None:
        for source, _destination, _options in mounts:
            volume = self.by_mountpoint(source)
            if volume is not None and cid not in volume.users:
                volume.users.add(cid)
                if len(volume.users) == 1:
                    self._tell("volume_changed", volume, ["users"])

    def left(self, cid: str) -> list[Volume]:
        """Drop ``cid`` from every volume's users; returns its anonymous volumes."""
        anonymous = []
        for volume in list(self.volumes.values()):
            if cid in volume.users:
                volume.users.discard(cid)
                if not volume.users:
                    self._tell("volume_changed", volume, ["users"])
            if volume.anonymous_for == cid:
                anonymous.append(volume)
        return anonymous


def anonymous_mounts(volumes: Volumes, cid: str, paths: Iterable[str],
                     mounts: Iterable[tuple[str, str, str]],
                     made: list[Volume] | None = None) -> list[tuple[str, str, str]]:
    """A new anonymous volume mounted at each of an image's VOLUME ``paths`` that
    no mount of the container covers already (podman's rule); each one is
    appended to ``made``."""
    taken = {destination for _source, destination, _options in mounts}
    found = []
    for path in paths:
        destination = os.path.normpath(path)
        if not destination.startswith("/") or destination == "/" or destination in taken:
            continue
        taken.add(destination)
        volume = volumes.create("", anonymous_for=cid)
        if made is not None:
            made.append(volume)
        found.append((volume.mountpoint, destination, ""))
    return found


def inspect_mounts(volumes: Volumes, mounts: list[dict[str, Any]]) -> None:
    """Mark inspect's Mounts entries of volumes as podman's: Type "volume", its
    Name and Driver, RW from the options (bind mounts stay as they are)."""
    for mount in mounts:
        volume = volumes.by_mountpoint(str(mount.get("Source", "")))
        if volume is not None:
            mount.update(Type="volume", Name=volume.name, Driver=volume.driver,
                         RW="ro" not in mount.get("Options", []))


def delete_tree(path: Path | None) -> None:
    """Delete what remove() moved aside (None: nothing)."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def chown_new(made: Iterable[Volume], uid: int, gid: int) -> None:
    """Give volumes made for a container to its user, so that a non-root
    process can write there (podman chowns a new volume on first use too)."""
    for volume in made:
        if (uid, gid) != (0, 0):
            os.chown(volume.mountpoint, uid, gid)
