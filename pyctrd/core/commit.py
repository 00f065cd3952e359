"""Commit: a new image from a container's filesystem changes, as podman commit.

The container's overlay upper dir becomes one more layer over its image's
layers (storage.upperlayer writes it with OCI whiteouts); the image config is
the base image's, edited by ``changes`` (podman's --change, Dockerfile
syntax). A running container is paused while its upper dir is read, unless
the caller says not to; it is resumed before the layer is unpacked.
"""

import asyncio
import contextlib
import datetime
import json
import logging
import secrets
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyctrd.core.container import Container
from pyctrd.core.jobs import Job
from pyctrd.core.state import State
from pyctrd.errors import InvalidArgument, NoSuchImage, PyctrdError
from pyctrd.registry.reference import parse
from pyctrd.storage.trees import remove_tree
from pyctrd.storage.upperlayer import write_upper_layer

if TYPE_CHECKING:
    from pyctrd.core.engine import Engine

log = logging.getLogger(__name__)

INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL",
                "USER", "VOLUME", "WORKDIR")


@dataclass
class CommitOptions:
    pause: bool = True
    message: str = ""
    author: str = ""
    changes: list[str] = field(default_factory=list)


def apply_changes(config: dict[str, Any], changes: list[str]) -> None:
    """Edit an image config's ``config`` section as Dockerfile lines would;
    InvalidArgument for a line that is not one of INSTRUCTIONS."""
    section = config.setdefault("config", {})
    for change in changes:
        word, _, rest = change.strip().partition(" ")
        word, rest = word.upper(), rest.strip()
        if word not in INSTRUCTIONS or (not rest and word not in ("CMD", "ENTRYPOINT")):
            raise InvalidArgument(f"change {change!r}: write one of {', '.join(INSTRUCTIONS)} "
                                  "followed by its value, as in a Dockerfile")
        if word in ("CMD", "ENTRYPOINT"):
            key = "Cmd" if word == "CMD" else "Entrypoint"
            section[key] = _command(rest, change)
            if word == "ENTRYPOINT":
                section.pop("Cmd", None)  # as docker: a new entrypoint resets CMD
        elif word == "ENV":
            for key, value in _pairs(rest, change):
                env = [e for e in section.get("Env") or [] if e.split("=", 1)[0] != key]
                section["Env"] = [*env, f"{key}={value}"]
        elif word == "LABEL":
            labels = dict(section.get("Labels") or {})
            labels.update(_pairs(rest, change))
            section["Labels"] = labels
        elif word == "EXPOSE":
            ports = dict(section.get("ExposedPorts") or {})
            for port in rest.split():
                number, _, proto = port.partition("/")
                if not number.isdigit() or not 0 < int(number) < 65536 or proto not in (
                        "", "tcp", "udp", "sctp"):
                    raise InvalidArgument(f"change {change!r}: {port!r} is no PORT[/PROTO]")
                ports[f"{number}/{proto or 'tcp'}"] = {}
            section["ExposedPorts"] = ports
        elif word == "VOLUME":
            paths = _command(rest, change) if rest.startswith("[") else rest.split()
            volumes = dict(section.get("Volumes") or {})
            volumes.update({p: {} for p in paths})
            section["Volumes"] = volumes
        elif word == "WORKDIR":
            section["WorkingDir"] = rest
        elif word == "USER":
            section["User"] = rest
        elif word == "STOPSIGNAL":
            section["StopSignal"] = rest
        else:  # ONBUILD: kept for builders, as docker does
            section["OnBuild"] = [*(section.get("OnBuild") or []), rest]


def _command(text: str, change: str) -> list[str]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"change {change!r}: a JSON form must be a list of strings")
        return value
    return ["/bin/sh", "-c", text] if text else []


def _pairs(text: str, change: str) -> list[tuple[str, str]]:
    """K=V [K2=V2 …] (shell quoting), or the old form "K V"."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise InvalidArgument(f"change {change!r}: {err}") from None
    if words and "=" not in words[0]:
        key, _, value = text.partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"change {change!r}: {word!r} is not KEY=VALUE")
        pairs.append((key, value))
    return pairs


def check_commit(reference: str, options: CommitOptions) -> str:
    """The reference to give the image ("" for none); InvalidArgument if any part is bad."""
    apply_changes({}, options.changes)
    return str(parse(reference)) if reference else ""


def commit(engine: "Engine", container: Container, reference: str, options: CommitOptions,
           owner: int | None) -> Job:
    name = check_commit(reference, options)

    async def work(job: Job) -> str:
        base = engine.images.get(container.config.image_id)
        if base is None:
            raise NoSuchImage(f"the image {container.config.image_ref} of container "
                              f"{container.name} is gone; nothing to commit onto")
        config = engine.catalogue.config_of(base)
        apply_changes(config, options.changes)
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        config["created"] = now
        if options.author:
            config["author"] = options.author
        if isinstance(config.get("history"), list):
            entry = {"created": now, "created_by": "pyctr commit"}
            if options.message:
                entry["comment"] = options.message
            config["history"].append(entry)
        upper = engine.layout.container_dir(container.id) / "upper"
        with engine.staging_sweeper.importing():
            staging = engine.layout.tmp / f"commit-{secrets.token_hex(8)}"
            staging.mkdir(mode=0o700)
            try:
                job.report(0, 0, 0.1)
                paused = options.pause and container.state is State.RUNNING
                if paused:
                    await container.pause()
                try:
                    await asyncio.to_thread(write_upper_layer, upper, staging / "layer.tar.gz")
                finally:
                    if paused:
                        with contextlib.suppress(PyctrdError):
                            await container.unpause()
                job.report(0, 0, 0.5)
                image = await engine.catalogue.add_commit(base, staging / "layer.tar.gz",
                                                          config, name)
            finally:
                await asyncio.shield(asyncio.to_thread(_remove, staging))
        engine.events.record("image", "commit", image.id,
                             {"name": name, "container": container.id})
        return image.id

    return engine.jobs.start("commit", name or container.name, work, owner)


def _remove(path: Any) -> None:
    with contextlib.suppress(FileNotFoundError):
        try:
            remove_tree(path)
        except OSError as err:
            log.warning("could not delete %s: %s", path, err)
