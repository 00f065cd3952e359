"""The layer store: each layer once, by diff id, shared and refcounted.

``<root>/layers/<diff id>/diff`` holds a layer's files, ``meta.json`` its
size. A layer directory appears by one rename from the staging area, so it
is either complete or absent. References are held by images (one per
distinct layer) and by imports in flight; the count is not stored but
recomputed from the images on start-up, and directories nobody references
(an import killed after the rename) are deleted then.

Imports run in worker threads and removals on the event loop: one lock
guards the counts and the renames into and out of ``layers/``.

Short links, as containers-storage keeps them: ``layers/l/<12 chars>`` is a
symlink to ``../<diff id>/diff`` and ``layers/<diff id>/link`` holds its
name. overlayfs takes its options in one page; 128 layers by their full
paths do not fit, by ``l/<name>`` relative to ``layers/`` they do
(storage.rootfs mounts that way when it must).
"""

import json
import logging
import os
import secrets
import string
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyctrd.storage.streams import Reader
from pyctrd.storage.trees import remove_tree, tree_size

log = logging.getLogger(__name__)

META = "meta.json"
LINK = "link"  # in a layer's directory: the name of its short link in l/
LINKS_DIR = "l"
LINK_CHARS = string.ascii_uppercase + string.digits
LINK_LENGTH = 12
MAX_LAYERS = 128  # distinct layers of one image: what a container's overlay can stack


@dataclass(frozen=True)
class StagedLayer:
    """A layer unpacked into the staging area, not yet in the store."""

    diff_id: str
    path: Path  # contains diff/ and meta.json
    size: int


BLOB_FILE = "blob"  # a layer's bytes as they came (compressed or not), for Save and Push


class BlobWriter:
    """A reader that also writes what passes through it into a file (until closed)."""

    def __init__(self, path: Path, inner: Reader) -> None:
        self.inner = inner
        self._file: BinaryIO | None = open(path, "xb")  # noqa: SIM115 (closed by close())

    def read(self, size: int = -1, /) -> bytes:
        data = self.inner.read(size)
        if self._file is not None and data:
            self._file.write(data)
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_meta(layer_dir: Path, size: int) -> None:
    (layer_dir / META).write_text(json.dumps({"size": size}))


class LayerStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "layers"
        self.tmp = root / "tmp"
        self._lock = threading.Lock()
        self._refs: Counter[str] = Counter()
        # blob digest (compressed, as in a manifest) → diff id, learned from imports
        self._blob_diff_ids: dict[str, str] = {}

    def path(self, diff_id: str) -> Path:
        return self.dir / diff_id

    def diff_dir(self, diff_id: str) -> Path:
        return self.dir / diff_id / "diff"

    @property
    def links(self) -> Path:
        return self.dir / LINKS_DIR

    def load(self, images: Iterable[tuple[list[str], list[str]]]) -> None:
        """Count references from the images' (layers, blobs); delete unreferenced layers."""
        with self._lock:
            self._refs.clear()
            for layers, blobs in images:
                self._refs.update(set(layers))
                for blob, diff_id in zip(blobs, layers, strict=False):
                    if blob:
                        self._blob_diff_ids[blob] = diff_id
            orphans = [p for p in self.dir.iterdir()
                       if p.name not in self._refs and p.name != LINKS_DIR]
        for orphan in orphans:
            log.info("removing layer %s: no image uses it", orphan.name[:12])
            _remove_logged(orphan)
        self._load_links()

    def _load_links(self) -> None:
        """Every stored layer with its short link; links to nothing deleted."""
        self.links.mkdir(mode=0o700, exist_ok=True)
        for link in self.links.iterdir():
            if not link.exists():
                link.unlink(missing_ok=True)
        with self._lock:
            for diff_id in list(self._refs):
                if self.path(diff_id).is_dir():
                    self._ensure_link(diff_id)

    def _ensure_link(self, diff_id: str) -> str:
        """The layer's short link name, made if missing. Under the lock."""
        layer_dir = self.path(diff_id)
        try:
            name = (layer_dir / LINK).read_text().strip()
            if name and os.readlink(self.links / name) == f"../{diff_id}/diff":
                return name
        except (OSError, ValueError):
            pass
        self.links.mkdir(mode=0o700, exist_ok=True)
        while True:
            name = "".join(secrets.choice(LINK_CHARS) for _ in range(LINK_LENGTH))
            try:
                os.symlink(f"../{diff_id}/diff", self.links / name)
                break
            except FileExistsError:
                continue  # taken by another layer: draw again
        tmp = layer_dir / f"{LINK}.tmp"
        tmp.write_text(name)
        os.replace(tmp, layer_dir / LINK)
        return name

    def _drop_link(self, layer_dir: Path) -> None:
        try:
            name = (layer_dir / LINK).read_text().strip()
        except OSError:
            return
        if name and "/" not in name:
            (self.links / name).unlink(missing_ok=True)

    def refs(self, diff_id: str) -> int:
        return self._refs[diff_id]

    def diff_id_of_blob(self, blob_digest: str) -> str | None:
        return self._blob_diff_ids.get(blob_digest)

    def remember_blob(self, blob_digest: str, diff_id: str) -> None:
        self._blob_diff_ids[blob_digest] = diff_id

    def size(self, diff_id: str) -> int:
        try:
            return int(json.loads((self.path(diff_id) / META).read_text())["size"])
        except (OSError, ValueError, KeyError, TypeError):
            return tree_size(self.diff_dir(diff_id))  # a layer stored before meta.json

    def take_existing(self, diff_id: str) -> bool:
        """Hold a reference to ``diff_id`` if it is stored; whether it is."""
        with self._lock:
            if self._refs[diff_id] > 0 or self.path(diff_id).is_dir():
                self._refs[diff_id] += 1
                return True
            return False

    def add(self, staged: StagedLayer) -> None:
        """Move a staged layer into the store (or drop it, if stored meanwhile); hold it."""
        with self._lock:
            target = self.path(staged.diff_id)
            keep_staged = target.is_dir()
            if not keep_staged:
                os.rename(staged.path, target)
                try:
                    self._ensure_link(staged.diff_id)
                except OSError as err:  # made at the next start, when load() checks
                    log.warning("layer %s: no short link: %s", staged.diff_id[:12], err)
            self._refs[staged.diff_id] += 1
        if keep_staged:
            _remove_logged(staged.path)

    def release(self, diff_ids: Iterable[str]) -> None:
        """Drop one reference to each; delete the layers no one holds any more."""
        doomed = []
        with self._lock:
            for diff_id in diff_ids:
                self._refs[diff_id] -= 1
                if self._refs[diff_id] > 0:
                    continue
                del self._refs[diff_id]
                # out of layers/ at once, under the lock; deleted at leisure
                trash = self.tmp / f"removed-{secrets.token_hex(8)}"
                try:
                    os.rename(self.path(diff_id), trash)
                except FileNotFoundError:
                    continue
                self._drop_link(trash)
                doomed.append(trash)
        for trash in doomed:
            _remove_logged(trash)


def _remove_logged(path: Path) -> None:
    """Delete a tree nobody uses any more; what cannot go is logged, and left for the
    next start's clean-up of tmp/ (or of unreferenced layers)."""
    try:
        remove_tree(path)
    except OSError as err:
        log.warning("could not delete %s: %s", path, err)
