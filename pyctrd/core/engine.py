"""The Engine: every container and image, their lookup, creation and removal.

Front ends (the D-Bus layer, tests) drive it with plain Python calls and
hear of changes through a EngineListener.
"""

import asyncio
import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, Protocol

from pyctrd.core.config import ContainerConfig, build_config
from pyctrd.core.container import Container, ContainerEnv, ContainerStatus
from pyctrd.core.faults import checkpoint
from pyctrd.core.image import Image, image_from_archive
from pyctrd.database import Database
from pyctrd.errors import (
    AmbiguousId,
    Exists,
    InUse,
    InvalidArgument,
    NoSuchContainer,
    NoSuchImage,
    StorageFailed,
)
from pyctrd.layout import Layout
from pyctrd.oci.conmon import Conmon
from pyctrd.oci.runtime import OCIRuntime
from pyctrd.storage import mounts
from pyctrd.storage.imageformats import ArchiveReader
from pyctrd.storage.layers import LayerStore
from pyctrd.storage.streams import FdReader

log = logging.getLogger(__name__)

REFERENCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
RECOVERY_PARALLELISM = 8  # runc state calls at once when re-adopting


class EngineListener(Protocol):
    def container_added(self, container: Container) -> None: ...
    def container_removed(self, container: Container) -> None: ...
    def container_changed(self, container: Container, changes: dict[str, Any]) -> None: ...
    def image_added(self, image: Image) -> None: ...
    def image_removed(self, image: Image) -> None: ...
    def image_changed(self, image: Image, names: list[str]) -> None: ...


class Listeners:
    """Fans each event out to every front end (D-Bus, Varlink), in the order added.

    A failing listener is logged and must not keep the others from hearing.
    """

    def __init__(self) -> None:
        self._listeners: list[EngineListener] = []

    def add(self, listener: EngineListener) -> None:
        self._listeners.append(listener)

    def remove(self, listener: EngineListener) -> None:
        self._listeners.remove(listener)

    def _each(self, event: str, *args: Any) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, event)(*args)
            except Exception:
                log.exception("a listener failed on %s", event)

    def container_added(self, container: Container) -> None:
        self._each("container_added", container)

    def container_removed(self, container: Container) -> None:
        self._each("container_removed", container)

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        self._each("container_changed", container, changes)

    def image_added(self, image: Image) -> None:
        self._each("image_added", image)

    def image_removed(self, image: Image) -> None:
        self._each("image_removed", image)

    def image_changed(self, image: Image, names: list[str]) -> None:
        self._each("image_changed", image, names)


class Engine:
    def __init__(self, layout: Layout, oci: OCIRuntime, conmon: Conmon,
                 log_size_max: int = -1) -> None:
        layout.create_dirs()
        self.layout = layout
        self.oci = oci
        self.store = Database(layout.database)
        self.listener = Listeners()
        self.containers: dict[str, Container] = {}
        self.images: dict[str, Image] = {}
        self.layer_store = LayerStore(layout.root)
        self._names: dict[str, str] = {}
        self._new_boot = False
        self._boot_id = ""
        self._env = ContainerEnv(layout=layout, store=self.store, oci=oci, conmon=conmon,
                                 layer_paths=self.layer_paths, listener=self,
                                 log_size_max=log_size_max)

    # loading and re-adoption

    def load(self) -> None:
        """Read the store and re-adopt containers whose conmon still runs."""
        # Imports killed half-way leave only staging directories behind.
        for leftover in self.layout.tmp.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
        for record in self.store.images():
            image = Image.from_record(record)
            self.images[image.id] = image
        self.layer_store.load((i.layers, i.blobs) for i in self.images.values())
        new_boot = self._note_boot_id()
        for config_record, state_record in self.store.containers():
            container = Container(ContainerConfig.from_record(config_record),
                                  ContainerStatus.from_record(state_record), self._env)
            self.containers[container.id] = container
            self._names[container.name] = container.id
        self._new_boot = new_boot

    def _note_boot_id(self) -> bool:
        self._boot_id = BOOT_ID_PATH.read_text().strip()
        previous = self.store.get_meta("boot_id")
        return previous is not None and previous != self._boot_id

    async def recover(self) -> None:
        """Reconcile every stored container with runc, conmon and the mount table."""
        mounted = mounts.mounted_paths()
        if self._new_boot:
            self._wipe_per_boot_state()
        runtime_ids = set(os.listdir(self.layout.runtime_root))
        limit = asyncio.Semaphore(RECOVERY_PARALLELISM)

        async def recover_one(container: Container) -> None:
            async with limit:
                try:
                    await container.recover(self._new_boot, mounted)
                except Exception:
                    log.exception("container %s: recovery failed; it stays %s",
                                  container.name, container.state)

        await asyncio.gather(*(recover_one(c) for c in list(self.containers.values())
                               if c.needs_recovery(mounted, runtime_ids)))
        # Only now: a crash during recovery must find the new boot again.
        self.store.set_meta("boot_id", self._boot_id)
        for container in [c for c in self.containers.values() if c.removed]:
            # A Remove cut short by a crash, now finished.
            del self.containers[container.id]
            self._names.pop(container.name, None)

    def _wipe_per_boot_state(self) -> None:
        # The last boot's runc state, bundles and exit files describe processes
        # that are gone; runc must not act on PIDs recycled since.
        for directory in (self.layout.runtime_root, self.layout.run_root / "containers",
                          self.layout.exits):
            shutil.rmtree(directory, ignore_errors=True)
        self.layout.create_dirs()

    # listener plumbing (containers report to the runtime, which fans out)

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        self.listener.container_changed(container, changes)

    # lookup

    def lookup_container(self, name_or_id: str) -> Container:
        cid = self._names.get(name_or_id)
        if cid is None and name_or_id in self.containers:
            cid = name_or_id
        if cid is None:
            cid = _unique_prefix(name_or_id, self.containers, "container")
        if cid is None:
            raise NoSuchContainer(
                f"no container has the name or ID {name_or_id!r}; "
                "list the containers to see which exist"
            )
        return self.containers[cid]

    def lookup_image(self, reference_or_id: str) -> Image:
        # An image without a reference has reference "": that must not match.
        candidates = (reference_or_id, f"{reference_or_id}:latest") if reference_or_id else ()
        for candidate in candidates:
            for image in self.images.values():
                if candidate in image.references:
                    return image
        if reference_or_id in self.images:
            return self.images[reference_or_id]
        iid = _unique_prefix(reference_or_id.removeprefix("sha256:"), self.images, "image")
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

    # containers

    def create_container(self, image_ref: str, command: list[str],
                         options: dict[str, Any]) -> Container:
        image = self.lookup_image(image_ref)
        name = options.get("name")
        if name and name in self._names:
            raise Exists(f"the name {name!r} is already in use by container "
                         f"{self._names[name][:12]}; choose another name or remove it")
        config = build_config(image, self.layer_paths(image.id), command, options,
                              self._names.keys())
        status = ContainerStatus()
        self.store.add_container(config.id, config.name, config.to_record(),
                                 status.to_record())
        container = Container(config, status, self._env)
        self.containers[config.id] = container
        self._names[config.name] = config.id
        checkpoint("create:saved")
        self.listener.container_added(container)
        return container

    async def remove_container(self, container: Container, force: bool) -> None:
        await container.remove(force)
        self.containers.pop(container.id, None)
        self._names.pop(container.name, None)
        self.listener.container_removed(container)

    # images

    async def import_image(self, fd: int, reference: str) -> Image:
        if reference and not REFERENCE_RE.match(reference):
            raise InvalidArgument(f"invalid image reference {reference!r}")
        staging = self.layout.tmp / secrets.token_hex(8)
        reader = ArchiveReader(self.layer_store, staging)
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
            await asyncio.to_thread(shutil.rmtree, staging, True)

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
                self.listener.image_changed(image, ["Reference"])

    def _set_reference(self, image: Image, reference: str) -> None:
        """Give ``image`` the reference too, as its primary one."""
        if image.reference == reference:
            return
        image.references = [reference, *(r for r in image.references if r != reference)]
        image.reference = reference
        self.store.add_image(image.id, image.to_record())
        self.listener.image_changed(image, ["Reference"])

    async def remove_image_named(self, reference_or_id: str, force: bool) -> None:
        """podman rmi: naming one reference of several only untags the image."""
        image = self.lookup_image(reference_or_id)
        named = next((c for c in (reference_or_id, f"{reference_or_id}:latest")
                      if c in image.references), None)
        if named is not None and len(image.references) > 1:
            image.references = [r for r in image.references if r != named]
            image.reference = image.references[0]
            self.store.add_image(image.id, image.to_record())
            self.listener.image_changed(image, ["Reference"])
            return
        await self.remove_image(image, force)

    async def remove_image(self, image: Image, force: bool) -> None:
        users = [c for c in self.containers.values() if c.config.image_id == image.id]
        if users and not force:
            names = ", ".join(c.name for c in users[:5])
            raise InUse(f"image {image.reference or image.id[:12]} is used by containers "
                        f"{names}; remove them first or pass force")
        for container in users:
            await self.remove_container(container, force=True)
        self.store.remove_image(image.id)
        self.images.pop(image.id, None)
        try:
            await asyncio.to_thread(self.layer_store.release, set(image.layers))
        except OSError as err:
            raise StorageFailed(f"removing the layers of image {image.id[:12]} failed: "
                                f"{err}") from err
        finally:
            self.listener.image_removed(image)

    def close(self) -> None:
        self.store.close()


def _unique_prefix(prefix: str, items: dict[str, Any], kind: str) -> str | None:
    if not prefix or not all(c in "0123456789abcdef" for c in prefix):
        return None
    matches = [key for key in items if key.startswith(prefix)]
    if len(matches) > 1:
        raise AmbiguousId(f"the ID prefix {prefix!r} matches {len(matches)} {kind}s; "
                          "give more characters")
    return matches[0] if matches else None
