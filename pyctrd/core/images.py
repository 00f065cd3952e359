"""The image catalogue: every image, its references (tags), import and removal.

The Engine holds one and delegates to it; removing an image's containers
first is the Engine's part, since containers are its.
"""

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any, Protocol

from pyctrd.core.faults import checkpoint
from pyctrd.core.image import Image, image_from_archive
from pyctrd.database import Database
from pyctrd.errors import (
    AmbiguousId,
    InvalidArgument,
    NoSuchImage,
    NotSupported,
    StorageFailed,
)
from pyctrd.layout import Layout
from pyctrd.storage.imageformats import ArchiveImage, ArchiveReader, host_architecture
from pyctrd.storage.imagewriter import LayerBlob, layer_blob
from pyctrd.storage.layers import BLOB_FILE, LayerStore
from pyctrd.storage.streams import FdReader
from pyctrd.storage.trees import remove_tree
from pyctrd.storage.unpack import ByteBudget

log = logging.getLogger(__name__)

REFERENCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")
# import_max_bytes = 0 (the default): an import may unpack this share of the free
# space of the store's filesystem, less a reserve left for everything else there.
AUTO_SHARE = 0.9
AUTO_RESERVE = 1 << 30


class ImageListener(Protocol):
    def image_added(self, image: Image) -> None: ...
    def image_removed(self, image: Image) -> None: ...
    def image_changed(self, image: Image, fields: list[str]) -> None:
        """``fields``: the Image attributes that changed, e.g. ["reference"]."""


class ImageCatalogue:
    def __init__(self, layout: Layout, store: Database, listener: ImageListener, *,
                 import_max_bytes: int = 0) -> None:
        """``import_max_bytes``: file bytes one import may unpack; 0: from the free
        space at the time of each import (``import_budget``)."""
        self.layout = layout
        self.import_max_bytes = import_max_bytes
        self.store = store
        self.listener = listener
        self.images: dict[str, Image] = {}
        self.layer_store = LayerStore(layout.root)

    def load(self) -> None:
        """Read the stored images; imports killed half-way leave only staging dirs.

        A leftover that cannot be deleted is logged and kept: it must not keep the
        daemon from starting (the next start tries again)."""
        for leftover in self.layout.tmp.iterdir():
            try:
                remove_tree(leftover)  # iterative: any depth
            except OSError as err:
                log.warning("could not delete the leftover %s: %s", leftover, err)
        for record in self.store.images():
            image = Image.from_record(record)
            self.images[image.id] = image
        self.layer_store.load((i.layers, i.blobs) for i in self.images.values())

    def lookup(self, reference_or_id: str) -> Image:
        # An image without a reference has reference "": that must not match.
        candidates = (reference_or_id, f"{reference_or_id}:latest") if reference_or_id else ()
        for candidate in candidates:
            for image in self.images.values():
                if candidate in image.references:
                    return image
        if reference_or_id in self.images:
            return self.images[reference_or_id]
        iid = unique_prefix(reference_or_id.removeprefix("sha256:"), self.images, "image")
        if iid is None:
            raise NoSuchImage(
                f"no image has the reference or ID {reference_or_id!r}; "
                "list the images to see which exist, or import one"
            )
        return self.images[iid]

    def layer_paths(self, image_id: str) -> list[Path]:
        """The image's lowerdirs, top first; a layer that recurs counts at its top-most place
        (the lower copy can add nothing the upper one does not)."""
        image = self.images[image_id]
        top_first = list(dict.fromkeys(reversed(image.layers)))
        return [self.layer_store.diff_dir(layer) for layer in top_first]

    async def import_image(self, fd: int, reference: str) -> Image:
        if reference and not REFERENCE_RE.match(reference):
            raise InvalidArgument(f"invalid image reference {reference!r}")
        staging = self.layout.tmp / secrets.token_hex(8)
        reader = ArchiveReader(self.layer_store, staging, self.import_budget())
        kept: list[str] = []  # layer references the new image takes over from the reader
        try:
            found = await asyncio.to_thread(reader.read, FdReader(fd))
            checkpoint("import:layers-stored")
            image, new = self._add_found(found, reference)
            kept = image.layers if new else []
            return image
        finally:
            await asyncio.to_thread(reader.release_except, kept)
            await asyncio.to_thread(self._remove_staging, staging)

    async def import_layout(self, layout: Path, reference: str,
                            stored: dict[str, str]) -> Image:
        """The image of an OCI layout directory (a pull's staging area), checked as an
        import is; ``stored``: blob digest → diff id of the placeholders the puller
        left for layers the store has (ArchiveReader.read_layout)."""
        staging = self.layout.tmp / secrets.token_hex(8)
        reader = ArchiveReader(self.layer_store, staging, self.import_budget())
        kept: list[str] = []
        try:
            found = await asyncio.to_thread(reader.read_layout, layout, stored)
            image, new = self._add_found(found, reference)
            kept = image.layers if new else []
            return image
        finally:
            await asyncio.to_thread(reader.release_except, kept)
            await asyncio.to_thread(self._remove_staging, staging)

    async def add_commit(self, base: Image, layer_file: Path, config: dict[str, Any],
                         reference: str) -> Image:
        """A new image: ``base``'s layers, then the layer in ``layer_file``, with
        ``config`` (its rootfs.diff_ids filled in here)."""
        staging = self.layout.tmp / secrets.token_hex(8)
        reader = ArchiveReader(self.layer_store, staging, self.import_budget())
        kept: list[str] = []

        def build() -> ArchiveImage:
            staging.mkdir(parents=True, exist_ok=True)
            blobs = base.blobs + [""] * (len(base.layers) - len(base.blobs))
            layers = [reader.hold_stored(d, b) for d, b in zip(base.layers, blobs, strict=True)]
            layers.append(reader.add_layer_file(layer_file))
            config.setdefault("rootfs", {})["type"] = "layers"
            config["rootfs"]["diff_ids"] = [f"sha256:{layer.diff_id}" for layer in layers]
            data = json.dumps(config, separators=(",", ":")).encode()
            return ArchiveImage(kind="oci", config=config,
                                config_digest=hashlib.sha256(data).hexdigest(),
                                manifest_digest="", layers=layers, config_bytes=data)

        try:
            found = await asyncio.to_thread(build)
            image, new = self._add_found(found, reference)
            kept = image.layers if new else []
            return image
        finally:
            await asyncio.to_thread(reader.release_except, kept)
            await asyncio.to_thread(self._remove_staging, staging)

    def config_of(self, image: Image) -> dict[str, Any]:
        """The image's config as stored; made from its fields when none was (a root
        filesystem tarball's image)."""
        try:
            found = json.loads(self.config_path(image.id).read_bytes())
            if isinstance(found, dict):
                return found
        except (OSError, ValueError):
            pass
        section: dict[str, Any] = {"Env": image.env}
        for key, value in (("Entrypoint", image.entrypoint), ("Cmd", image.cmd),
                           ("WorkingDir", image.workdir), ("User", image.user),
                           ("Labels", image.labels), ("StopSignal", image.stop_signal)):
            if value:
                section[key] = value
        return {"architecture": host_architecture(), "os": "linux", "config": section,
                "rootfs": {"type": "layers", "diff_ids": []}}

    def stored_blobs(self) -> dict[str, str]:
        """Blob digest → diff id of every layer stored with its blob digest known."""
        return {blob: diff_id for image in self.images.values()
                for blob, diff_id in zip(image.blobs, image.layers, strict=False)
                if blob.startswith("sha256:")}

    def _add_found(self, found: ArchiveImage, reference: str) -> tuple[Image, bool]:
        """The image ``found`` describes, stored (or the stored one with the same ID)
        with ``reference`` (else the archive's own names); whether it is new (its
        layer references are then the new image's)."""
        image = image_from_archive(found)
        references = [reference] if reference else [
            r for r in found.references if REFERENCE_RE.match(r)]
        existing = self.images.get(image.id)
        for ref in references:
            self._take_reference(ref, image.id)
        if existing is not None:
            for ref in reversed(references):  # the first given ends up primary
                self._set_reference(existing, ref)
            return existing, False
        image.references = list(dict.fromkeys(references))
        image.reference = image.references[0] if image.references else ""
        if found.config_bytes:  # kept for Save and Push: its sha256 is the image ID
            self._write_config(image.id, found.config_bytes)
        self.store.add_image(image.id, image.to_record())
        self.images[image.id] = image
        self.listener.image_added(image)
        return image, True

    def config_path(self, image_id: str) -> Path:
        return self.layout.root / "configs" / f"{image_id}.json"

    def _write_config(self, image_id: str, data: bytes) -> None:
        path = self.config_path(image_id)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def export_parts(self, image: Image) -> tuple[bytes, list[LayerBlob]]:
        """(config, layer blobs bottom first) to write ``image`` out with;
        NotSupported for an image stored without them."""
        try:
            config = self.config_path(image.id).read_bytes()
        except OSError:
            raise NotSupported(
                f"image {image.reference or image.id[:12]} was stored without its config "
                "(a root filesystem tarball, or an import older than this pyctrd); "
                "import it again from an image archive") from None
        blobs = []
        for diff_id in image.layers:
            try:
                blobs.append(layer_blob(self.layer_store.path(diff_id) / BLOB_FILE))
            except OSError:
                raise NotSupported(
                    f"layer {diff_id[:12]} of image {image.reference or image.id[:12]} "
                    "was stored without its original bytes; import or pull the image "
                    "again") from None
        return config, blobs

    def tag(self, image: Image, reference: str) -> None:
        """Give ``image`` the reference too (moved from another image that had it)."""
        if not REFERENCE_RE.match(reference):
            raise InvalidArgument(f"invalid image reference {reference!r}")
        self._take_reference(reference, image.id)
        if reference not in image.references:
            image.references.append(reference)
            image.reference = image.references[0]
            self.store.add_image(image.id, image.to_record())
            self.listener.image_changed(image, ["reference"])

    def untag(self, image: Image, reference: str) -> None:
        named = next((c for c in (reference, f"{reference}:latest")
                      if c in image.references), None)
        if named is None:
            raise InvalidArgument(f"image {image.id[:12]} has no reference {reference!r}; "
                                  f"its references: {', '.join(image.references) or 'none'}")
        image.references.remove(named)
        image.reference = image.references[0] if image.references else ""
        self.store.add_image(image.id, image.to_record())
        self.listener.image_changed(image, ["reference"])

    def import_budget(self) -> ByteBudget:
        """The bytes one import may unpack: ``import_max_bytes``, or by default
        90 % of the store's free space less 1 GiB (at least 0)."""
        if self.import_max_bytes > 0:
            return ByteBudget(self.import_max_bytes)
        try:
            fs = os.statvfs(self.layout.tmp)
        except OSError:
            return ByteBudget(None)
        free = fs.f_bavail * fs.f_frsize
        return ByteBudget(max(0, int(free * AUTO_SHARE) - AUTO_RESERVE),
                          "import_max_bytes: 90% of the free space less 1 GiB")

    @staticmethod
    def _remove_staging(staging: Path) -> None:
        try:
            remove_tree(staging)
        except OSError as err:  # the next start's clean-up of tmp/ tries again
            log.warning("could not delete the staging directory %s: %s", staging, err)

    def untag_or_find(self, reference_or_id: str) -> Image | None:
        """podman rmi: naming one reference of several only untags the image (None);
        otherwise the image to remove."""
        image = self.lookup(reference_or_id)
        named = next((c for c in (reference_or_id, f"{reference_or_id}:latest")
                      if c in image.references), None)
        if named is None or len(image.references) <= 1:
            return image
        image.references = [r for r in image.references if r != named]
        image.reference = image.references[0]
        self.store.add_image(image.id, image.to_record())
        self.listener.image_changed(image, ["reference"])
        return None

    async def delete(self, image: Image) -> None:
        """Forget ``image`` and release its layers; no container may use it any more."""
        self.store.remove_image(image.id)
        self.images.pop(image.id, None)
        self.config_path(image.id).unlink(missing_ok=True)
        try:
            await asyncio.to_thread(self.layer_store.release, set(image.layers))
        except OSError as err:
            raise StorageFailed(f"removing the layers of image {image.id[:12]} failed: "
                                f"{err}") from err
        finally:
            self.listener.image_removed(image)

    def _take_reference(self, reference: str, new_owner: str) -> None:
        """A reference names one image: importing it again moves it, as podman does."""
        for image in self.images.values():
            if image.id == new_owner or reference not in image.references:
                continue
            image.references.remove(reference)
            primary = image.references[0] if image.references else ""
            changed = primary != image.reference
            image.reference = primary
            self.store.add_image(image.id, image.to_record())
            if changed:
                self.listener.image_changed(image, ["reference"])

    def _set_reference(self, image: Image, reference: str) -> None:
        """Give ``image`` the reference too, as its primary one."""
        if image.reference == reference:
            return
        image.references = [reference, *(r for r in image.references if r != reference)]
        image.reference = reference
        self.store.add_image(image.id, image.to_record())
        self.listener.image_changed(image, ["reference"])


def unique_prefix(prefix: str, items: dict[str, Any], kind: str) -> str | None:
    """The one key of ``items`` that starts with the hex ``prefix``; None if none."""
    if not prefix or not all(c in "0123456789abcdef" for c in prefix):
        return None
    matches = [key for key in items if key.startswith(prefix)]
    if len(matches) > 1:
        raise AmbiguousId(f"the ID prefix {prefix!r} matches {len(matches)} {kind}s; "
                          "give more characters")
    return matches[0] if matches else None
