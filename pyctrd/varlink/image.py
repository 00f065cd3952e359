"""io.pyctrd.Image: imported images over Varlink, as operations."""

import contextlib
from collections.abc import AsyncIterator
from typing import TypedDict

from asyncvarlink import FileDescriptor, VarlinkInterface, varlinkmethod

from pyctrd.errors import NoSuchImage
from pyctrd.ops.names import VARLINK_IMAGE
from pyctrd.ops.operations import Operations
from pyctrd.varlink.errors import ErrorSet
from pyctrd.varlink.streaming import all_but_last, wants_more, watch
from pyctrd.varlink.types import EventKind, ImageEvent, ImageInfo, image_info
from pyctrd.varlink.watch import Watchers

ERRORS = ErrorSet(VARLINK_IMAGE, (
    "NoSuchImage", "AmbiguousId", "InvalidArgument", "InUse", "RuntimeFailed",
    "StorageFailed", "NotSupported", "AccessDenied", "InteractiveAuthorizationRequired",
    "LimitsExceeded",
    "Overflow", "Failed"))


class Imported(TypedDict):
    id: str
    reference: str


class ImageVarlink(VarlinkInterface, name=VARLINK_IMAGE):
    """pyctrd's images. A per-image method takes reference: a reference such as
    busybox:latest, the full ID or a unique ID prefix."""

    error_set = ERRORS
    errors = tuple(ERRORS.classes.values())

    def __init__(self, operations: Operations, watchers: Watchers) -> None:
        self._ops = operations
        self._watchers = watchers

    @varlinkmethod
    async def Import(self, *, archive: FileDescriptor, reference: str | None = None
                     ) -> Imported:
        """Read an OCI archive, a docker-archive or a root-filesystem tarball
        (optionally compressed) from the file descriptor passed with the call
        (archive is its index); reference names it (default: the archive's own)."""
        with ERRORS.translated(reference=reference or ""):
            image = await self._ops.import_image(archive.fileno(), reference or "")
        return {"id": image.id, "reference": image.reference}

    @varlinkmethod(return_parameter="images")
    async def List(self) -> list[ImageInfo]:
        """Every image with its properties."""
        return [image_info(i) for i in self._ops.list_images()]

    @varlinkmethod(return_parameter="image")
    async def Get(self, *, reference: str | None = None) -> ImageInfo:
        """One image's properties. Called with more and without reference: one
        reply per image (NoSuchImage when there is none)."""
        if reference is not None:
            with ERRORS.translated(reference=reference):
                return image_info(self._ops.get_image(reference))
        if not wants_more():
            raise ERRORS.make("InvalidArgument", "Get needs a reference, or more to list all")
        infos = [image_info(i) for i in self._ops.list_images()]
        if not infos:
            raise ERRORS.of(NoSuchImage("there are no images"), {"reference": ""})
        return await all_but_last(infos, "image", ImageInfo, ERRORS)

    @varlinkmethod
    async def Remove(self, *, reference: str, force: bool | None = None) -> None:
        """Delete it; refused with InUse while containers use it, unless force
        (which removes those containers too). Naming one of several references
        only removes that reference (D-Bus RemoveImage)."""
        with ERRORS.translated(reference=reference):
            await self._ops.remove_image_named(reference, bool(force))

    @varlinkmethod
    async def Tag(self, *, reference: str, new_reference: str) -> None:
        """Give the image one more reference (moved from another image that has it)."""
        with ERRORS.translated(reference=reference):
            self._ops.tag_image(self._ops.get_image(reference), new_reference)

    @varlinkmethod
    async def Untag(self, *, reference: str, name: str) -> None:
        """Take the reference name from the image; the image stays."""
        with ERRORS.translated(reference=reference):
            self._ops.untag_image(self._ops.get_image(reference), name)

    @varlinkmethod
    async def Save(self, *, reference: str, fd: FileDescriptor, format: str) -> None:
        """Write the image as "oci-archive" or "docker-archive" to the file
        descriptor passed with the call (fd is its index); Import reads it back to
        the same image ID."""
        with ERRORS.translated(reference=reference):
            await self._ops.save_image(self._ops.get_image(reference), fd.fileno(), format)

    @varlinkmethod(return_parameter="event", delay_generator=False)  # never held back
    async def Watch(self, *, existing: bool | None = None) -> AsyncIterator[ImageEvent]:
        """As io.pyctrd.Container.Watch, for images."""

        def snapshot() -> list[ImageEvent]:
            if not existing:
                return []
            return [ImageEvent(EventKind.existing, i.id, [], image_info(i))
                    for i in self._ops.list_images()]

        ready = ImageEvent(EventKind.ready, "", [], None)
        async with contextlib.aclosing(
                watch(self._watchers.images, snapshot, ready, ERRORS)) as events:
            async for event in events:
                yield event
