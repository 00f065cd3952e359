"""Images to and from registries, as jobs: pull (and later push, commit).

A pull asks the registry for the manifest first (skopeo inspect --raw), so
that it knows the bytes to come and which layers the store has already. For
each of those it leaves an empty placeholder of the blob's size in a staging
OCI layout, which skopeo takes for a blob it need not fetch; skopeo then
copies the rest into the layout, and the store's verified import reads it
(ImageCatalogue.import_layout). Progress is the bytes landing in the staging
layout. Cancelling kills skopeo and deletes the staging layout: nothing of a
cancelled or failed pull stays.
"""

import asyncio
import contextlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyctrd.core.image import Image
from pyctrd.core.jobs import Job
from pyctrd.errors import InvalidArgument, RegistryFailed
from pyctrd.registry.reference import REGISTRIES_CONF, Reference, candidates, parse
from pyctrd.registry.skopeo import Skopeo, TransferOptions, check_options
from pyctrd.storage.imagewriter import FORMATS, write_archive, write_layout
from pyctrd.storage.trees import remove_tree

if TYPE_CHECKING:
    from pyctrd.core.engine import Engine

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.2  # seconds between looks at the bytes landed


class Transfers:
    def __init__(self, engine: "Engine", skopeo: Skopeo,
                 registries_conf: Path = REGISTRIES_CONF) -> None:
        self.engine = engine
        self.skopeo = skopeo
        self.registries_conf = registries_conf

    def configure(self, *, auth_file: Path | None, registries_conf: Path | None,
                  policy: Path | None, registries_d: Path | None = None) -> None:
        """The daemon config's registry settings (None: skopeo's defaults)."""
        self.skopeo.auth_file = auth_file
        self.skopeo.registries_d = registries_d
        self.skopeo.policy = policy
        self.skopeo.registries_conf = registries_conf
        if registries_conf is not None:
            self.registries_conf = registries_conf

    # pull

    def pull(self, reference: str, options: TransferOptions, owner: int | None) -> Job:
        """Start pulling; InvalidArgument at once for a bad reference or option."""
        ref = parse(reference)
        check_options(options)
        tries = candidates(ref, self.registries_conf)  # a short name nowhere: at once

        async def work(job: Job) -> str:
            # tmp/ holds its auth file and staging layout: no sweeping meanwhile
            with self.engine.staging_sweeper.importing():
                image = await self._pull(job, ref, tries, options)
            self.engine.events.record("image", "pull", image.id, {"name": str(ref)})
            return image.id

        return self.engine.jobs.start("pull", str(ref), work, owner)

    async def _pull(self, job: Job, ref: Reference, tries: list[Reference],
                    options: TransferOptions) -> Image:
        tried: list[RegistryFailed] = []
        for candidate in tries:
            try:
                digest, manifest = await self.skopeo.manifest(candidate, options)
            except RegistryFailed as err:
                tried.append(err)
                continue
            return await self._pull_from(job, candidate, digest, manifest, options)
        if len(tried) == 1:
            raise tried[0]
        raise RegistryFailed("no registry has " + str(ref) + ": " +
                             "; ".join(str(err) for err in tried))

    async def _pull_from(self, job: Job, ref: Reference, digest: str,
                         manifest: dict[str, Any], options: TransferOptions) -> Image:
        name = str(Reference(ref.domain, ref.path, ref.tag, "")) if ref.tag else str(ref)
        layers = [d for d in manifest.get("layers") or [] if isinstance(d, dict)]
        found = manifest.get("config")
        config: dict[str, Any] = found if isinstance(found, dict) else {}
        config_id = str(config.get("digest", "")).removeprefix("sha256:")
        present = self.engine.images.get(config_id)
        if present is not None:  # nothing to fetch: the same image, named again
            self.engine.catalogue.tag(present, name)
            job.report(0, 0, 1.0)
            return present
        catalogue = self.engine.catalogue
        stored = catalogue.stored_blobs()
        staging = self.engine.layout.tmp / f"pull-{secrets.token_hex(8)}"
        try:
            placeholders = await asyncio.to_thread(_make_layout, staging, layers, stored)
            total = sum(_size(d) for d in layers if d.get("digest") not in placeholders)
            total += _size(config)
            job.report(0, total)
            source = (f"docker://{ref.repository}@{digest}" if digest and not ref.digest
                      else f"docker://{ref}")
            watcher = asyncio.ensure_future(_watch(job, staging, set(placeholders), total))
            try:
                await self.skopeo.copy(source, f"oci:{staging}", ref.domain, options,
                                       pulling=True)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            job.report(total, total, 0.99)
            return await catalogue.import_layout(
                staging, name, {d: stored[d] for d in placeholders})
        finally:
            await asyncio.shield(asyncio.to_thread(_remove_quietly, staging))

    # push and save

    def push(self, image: Image, destination: str, options: TransferOptions,
             owner: int | None) -> Job:
        ref = parse(destination)
        if not ref.domain:
            ref = ref.on(_first_search_registry(self.registries_conf))
        check_options(options)

        async def work(job: Job) -> str:
            config, blobs = await asyncio.to_thread(self.engine.catalogue.export_parts, image)
            total = len(config) + sum(b.size for b in blobs)
            job.report(0, total, -1.0)
            with self.engine.staging_sweeper.importing():  # its auth file and staging dir
                staging = self.engine.layout.tmp / f"push-{secrets.token_hex(8)}"
                try:
                    await asyncio.to_thread(write_layout, staging, config, blobs)
                    await self.skopeo.copy(f"oci:{staging}", f"docker://{ref}", ref.domain,
                                           options, pulling=False)
                finally:
                    await asyncio.shield(asyncio.to_thread(_remove_quietly, staging))
            self.engine.events.record("image", "push", image.id, {"name": str(ref)})
            return image.id

        return self.engine.jobs.start("push", str(ref), work, owner)

    async def save(self, image: Image, fd: int, fmt: str) -> None:
        """Write ``image`` as ``fmt`` to ``fd`` (the caller's; not closed here)."""
        if fmt not in FORMATS:
            raise InvalidArgument(f"format {fmt!r}: pyctrd saves {' or '.join(FORMATS)}")
        config, blobs = await asyncio.to_thread(self.engine.catalogue.export_parts, image)

        def write() -> None:
            with open(fd, "wb", closefd=False, buffering=1 << 20) as out:
                write_archive(out, fmt, config, blobs, image.reference)

        try:
            await asyncio.to_thread(write)
        except OSError as err:
            raise InvalidArgument(f"writing the archive to the given descriptor failed: "
                                  f"{err.strerror or err}") from err

    # names

    def tag(self, image: Image, reference: str) -> None:
        self.engine.catalogue.tag(image, str(parse(reference)))

    def untag(self, image: Image, reference: str) -> None:
        self.engine.catalogue.untag(image, reference)


def _first_search_registry(conf: Path) -> str:
    return candidates(Reference("", "x", "latest", ""), conf)[0].domain


def _size(descriptor: dict[str, Any]) -> int:
    size = descriptor.get("size")
    return size if isinstance(size, int) and size > 0 else 0


def _make_layout(staging: Path, layers: list[dict[str, Any]],
                 stored: dict[str, str]) -> dict[str, int]:
    """An empty OCI layout with a sparse placeholder for each layer the store has;
    the placeholders' digest → size."""
    blobs = staging / "blobs" / "sha256"
    blobs.mkdir(parents=True, mode=0o700)
    (staging / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (staging / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    placeholders = {}
    for layer in layers:
        digest = layer.get("digest")
        if not isinstance(digest, str) or digest not in stored or not digest.startswith(
                "sha256:") or len(digest) != 71:
            continue
        # the size skopeo records for a reused blob: the manifest stays as it is
        with open(blobs / digest.removeprefix("sha256:"), "wb") as f:
            f.truncate(_size(layer))
        placeholders[digest] = _size(layer)
    return placeholders


def _landed(staging: Path, placeholders: set[str]) -> int:
    """Bytes skopeo has written into the layout so far (blobs and its temp files)."""
    total = 0
    for directory in (staging, staging / "blobs" / "sha256"):
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if entry.name in ("oci-layout", "index.json") or \
                        f"sha256:{entry.name}" in placeholders:
                    continue
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
    return total


async def _watch(job: Job, staging: Path, placeholders: set[str], total: int) -> None:
    while True:
        await asyncio.sleep(POLL_INTERVAL)
        done = await asyncio.to_thread(_landed, staging, placeholders)
        if total:
            job.report(min(done, total), total, min(done, total) / total * 0.99)
        else:
            job.report(done)


def _remove_quietly(path: Path) -> None:
    try:
        remove_tree(path)
    except FileNotFoundError:
        pass
    except OSError as err:  # the staging sweeper or the next start tries again
        log.warning("could not delete %s: %s", path, err)
