"""The image catalogue: every image, its references (tags), import and removal.

The Engine holds one and delegates to it; removing an image's containers
first is the Engine's part, since containers are its.
"""

import asyncio
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any, Protocol

from pyctrd.core.faults import checkpoint
from pyctrd.core.image import Image, image_from_archive
from pyctrd.database import Database
from pyctrd.errors import AmbiguousId, InvalidArgument, NoSuchImage, StorageFailed
from pyctrd.layout import Layout
from pyctrd.storage.imageformats import ArchiveReader
from pyctrd.storage.layers import LayerStore
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
            image = image_from_archive(found)
            references = [reference] if reference else [
                r for r in found.references if REFERENCE_RE.match(r)]
            existing = self.images.get(image.id)
            for ref in references:
                self._take_reference(ref, image.id)
            if existing is not None:
                for ref in reversed(references):  # the first given ends up primary
                    self._set_reference(existing, ref)
                return existing
            image.references = list(dict.fromkeys(references))
            image.reference = image.references[0] if image.references else ""
            self.store.add_image(image.id, image.to_record())
            self.images[image.id] = image
            kept = image.layers
            self.listener.image_added(image)
            return image
        finally:
            await asyncio.to_thread(reader.release_except, kept)
            await asyncio.to_thread(self._remove_staging, staging)

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
