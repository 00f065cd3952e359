"""Reading an image archive from a stream: OCI layout, docker-archive or rootfs tarball.

The archive is read once, front to back, in bounded memory; its members
may come in any order (docker-archives write manifest.json last). So every
member is handled as it passes: small files (JSON: index, manifests,
configs) are kept in memory, everything else is taken for a layer and
unpacked into the staging directory while its compressed and uncompressed
digests are computed. Once the archive has ended, the manifest says which
blobs are the image's layers, in which order, with which digests; a layer
that does not match is refused, and nothing reaches the layer store unless
the whole image checks out.

A layer already in the store is not unpacked again when its diff id is
known before its bytes arrive: from its blob digest (learned from earlier
imports) or a file name that is the digest; its bytes are still hashed.

The format is told by the first entry's name: an image archive holds only
``oci-layout``, ``index.json``, ``manifest.json``, ``repositories``,
``blobs/…`` and ``<64 hex>…`` entries; anything else is a root filesystem.
"""

import concurrent.futures
import contextlib
import hashlib
import io
import json
import logging
import os
import platform
import posixpath
import re
import tarfile
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctrd.errors import InvalidArgument, StorageFailed
from pyctrd.storage.layers import (
    BLOB_FILE,
    MAX_LAYERS,
    BlobWriter,
    LayerStore,
    StagedLayer,
    write_meta,
)
from pyctrd.storage.streams import (
    Decompressed,
    HashingReader,
    PrefixReader,
    Reader,
    RecordingReader,
    read_exactly,
)
from pyctrd.storage.trees import remove_tree
from pyctrd.storage.unpack import ByteBudget, clean_name, tar_members, unpack_layer

SMALL_FILE = 64 << 10  # smaller members are kept in memory, whatever they are
JSON_LIMIT = 4 << 20  # a JSON member up to this size is kept in memory
METADATA_LIMIT = 64 << 20  # all of them together
SNIFF_LIMIT = 16 << 20  # bytes read before the format is known
LAYOUT_WORKERS = 4  # layers of a layout unpacked at once

ARCHIVE_NAME = re.compile(
    r"(oci-layout|index\.json|manifest\.json|repositories|blobs(/.*)?"
    r"|[0-9a-f]{64}(\.json|\.tar|/.*)?)"
)
DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
BLOB_NAME = re.compile(r"blobs/sha256/([0-9a-f]{64})")
DIGEST_NAMED = re.compile(r"(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json|\.tar)?")
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
                 "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
REF_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveLayer:
    diff_id: str  # hex sha256 of the uncompressed layer tar
    blob: str  # "sha256:…" of the layer as stored in the archive; "" for a rootfs
    size: int


@dataclass
class ArchiveImage:
    kind: str  # "oci", "docker" or "rootfs"
    config: dict[str, Any]  # the image config ({} for a rootfs tarball)
    config_digest: str  # hex; "" for a rootfs tarball
    manifest_digest: str  # "sha256:…" for an OCI image, else ""
    layers: list[ArchiveLayer]  # bottom first
    references: list[str] = field(default_factory=list)  # names the archive gives
    config_bytes: bytes = b""  # the config as stored (its sha256 is the image ID)


@dataclass
class _Blob:
    """A large archive member, taken for a layer as it passed."""

    raw_digest: str = ""
    diff_id: str = ""
    staged: StagedLayer | None = None
    error: str = ""


class ArchiveReader:
    """One import: reads the archive, stages and commits its layers, holds their references.

    Blocking; run it in a worker thread. Afterwards call ``release_except``
    with the layers the new image keeps (none on failure).
    """

    def __init__(self, store: LayerStore, staging: Path,
                 budget: ByteBudget | None = None) -> None:
        self.store = store
        self.staging = staging
        self.budget = budget or ByteBudget(None)  # file bytes the whole import may unpack
        self.held: Counter[str] = Counter()  # layer references this import holds
        self._small: dict[str, bytes] = {}
        self._small_total = 0
        self._blobs: dict[str, _Blob] = {}
        self._aliases: dict[str, str] = {}
        self._held_lock = threading.Lock()  # read_layout unpacks layers in threads

    def release_except(self, keep: Iterable[str]) -> None:
        for diff_id in set(keep):
            if self.held[diff_id] > 0:
                self.held[diff_id] -= 1
        self.store.release(list(self.held.elements()))
        self.held.clear()

    # reading

    def read(self, source: Reader) -> ArchiveImage:
        self.staging.mkdir(parents=True, exist_ok=True)
        with Decompressed(source) as outer:
            plain = HashingReader(outer)
            recorder = RecordingReader(plain, SNIFF_LIMIT)
            try:
                # a small buffer: tarfile's stream copies all of it on every read
                tar = tarfile.open(fileobj=recorder, mode="r|",  # noqa: SIM115
                                   bufsize=1 << 16)  # type: ignore[call-overload]
                first = _first_named(tar)
            except tarfile.TarError as err:
                raise InvalidArgument(
                    "the archive is not a tar archive (plain or gzip/zstd/xz/bzip2 "
                    f"compressed): {err}") from err
            if first is None or not ARCHIVE_NAME.fullmatch(_name(first)):
                return self._read_rootfs(PrefixReader(recorder.stop(), plain), plain)
            recorder.stop()
            self._take_member(tar, first)
            for member in tar_members(tar):
                self._take_member(tar, member)
        if "index.json" in self._small:
            return self._resolve_oci()
        if "manifest.json" in self._small:
            return self._resolve_docker()
        if "repositories" in self._small:
            raise InvalidArgument("this docker-archive has no manifest.json (docker before "
                                  "1.10 wrote those); save the image again with a newer tool")
        raise InvalidArgument("the archive looks like an image archive but has neither "
                              "index.json nor manifest.json")

    def read_layout(self, layout: Path, stored: dict[str, str]) -> ArchiveImage:
        """An OCI image layout directory (a pull's staging area, written by skopeo).

        ``stored``: blob digest → diff id of the layers the store holds already,
        whose blobs the puller left as empty placeholders so that skopeo skipped
        them: those are taken from the store, unread. Everything else is checked
        as in an archive."""
        self.staging.mkdir(parents=True, exist_ok=True)
        for name in ("oci-layout", "index.json"):
            self._small[name] = (layout / name).read_bytes()[:JSON_LIMIT]
        blobs = layout / "blobs" / "sha256"
        layers: list[tuple[str, str]] = []  # (member name, file) of what may be a layer
        for entry in sorted(os.scandir(blobs), key=lambda e: e.name):
            name = f"blobs/sha256/{entry.name}"
            if not entry.is_file(follow_symlinks=False) or not DIGEST.fullmatch(
                    f"sha256:{entry.name}"):
                continue
            diff_id = stored.get(f"sha256:{entry.name}")
            if diff_id is not None and self.store.take_existing(diff_id):
                self.held[diff_id] += 1
                self._blobs[name] = _Blob(raw_digest=f"sha256:{entry.name}", diff_id=diff_id)
                continue
            size = entry.stat(follow_symlinks=False).st_size
            with open(entry.path, "rb") as source:
                head = read_exactly(source, 64)
                if size <= SMALL_FILE or (size <= JSON_LIMIT
                                          and head.lstrip()[:1] in (b"{", b"[")):
                    self._small[name] = head + source.read(JSON_LIMIT)
                    continue
            layers.append((name, entry.path))

        def take(item: tuple[str, str]) -> tuple[str, _Blob]:
            name, path = item
            with open(path, "rb") as source:
                return name, self._take_blob(source, self._known_diff_id(name), Path(path))

        # Layers unpack side by side: zlib, hashing and most file I/O drop the GIL.
        workers = max(1, min(len(layers), os.cpu_count() or 1, LAYOUT_WORKERS))
        with concurrent.futures.ThreadPoolExecutor(workers, "layer") as pool:
            for name, blob in pool.map(take, layers):
                self._blobs[name] = blob
        return self._resolve_oci()

    def hold_stored(self, diff_id: str, blob: str = "") -> ArchiveLayer:
        """A layer the store has, held for the image being made (Commit's base)."""
        if self.held[diff_id] == 0:
            if not self.store.take_existing(diff_id):
                raise StorageFailed(f"layer {diff_id[:12]} is not in the store any more")
            self.held[diff_id] += 1
        return ArchiveLayer(diff_id, blob, self.store.size(diff_id))

    def add_layer_file(self, path: Path) -> ArchiveLayer:
        """A layer tar (plain or compressed) from a file pyctrd wrote, checked and
        stored as an import's layers are (Commit's new layer)."""
        with open(path, "rb") as source:
            blob = self._take_blob(source, None, path)
        if blob.error:
            raise InvalidArgument(f"the new layer: {blob.error}")
        (layer,) = self._commit_layers([blob])
        return layer

    def _read_rootfs(self, stream: Reader, plain: HashingReader) -> ArchiveImage:
        dest = self.staging / "rootfs"
        dest.mkdir()
        stats = unpack_layer(stream, dest / "diff", self.budget)
        plain.drain()
        diff_id = plain.hexdigest()
        write_meta(dest, stats.size)
        self._commit(StagedLayer(diff_id=diff_id, path=dest, size=stats.size))
        return ArchiveImage(kind="rootfs", config={}, config_digest="", manifest_digest="",
                            layers=[ArchiveLayer(diff_id, "", stats.size)])

    def _take_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = _name(member)
        if member.issym():
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name),
                                                       member.linkname))
            self._aliases[name] = target
            return
        if member.islnk():
            self._aliases[name] = "/".join(clean_name(member.linkname))
            return
        if not member.isfile():
            return
        source = tar.extractfile(member)
        assert source is not None
        head = read_exactly(source, 64)
        if member.size <= SMALL_FILE or (member.size <= JSON_LIMIT
                                         and head.lstrip()[:1] in (b"{", b"[")):
            data = head + read_exactly(source, member.size)
            self._small_total += len(data)
            if self._small_total > METADATA_LIMIT:
                raise InvalidArgument("the archive holds more small files than an image "
                                      "archive would; refusing it")
            self._small[name] = data
            self._blobs.pop(name, None)
            return
        self._small.pop(name, None)
        self._blobs[name] = self._take_blob(PrefixReader(head, source),
                                            self._known_diff_id(name))

    def _known_diff_id(self, name: str) -> str | None:
        """The diff id a member will have, where its name tells: from its digest."""
        match = DIGEST_NAMED.fullmatch(name)
        if match is None:
            return None
        digest = match.group(1)
        # an uncompressed layer's blob digest is its diff id
        return self.store.diff_id_of_blob(f"sha256:{digest}") or digest

    def _take_blob(self, source: Reader, expected_diff_id: str | None,
                   blob_file: Path | None = None) -> _Blob:
        """Unpack a layer into staging, or only hash it if the store has it already.

        The layer keeps its bytes as they came (``blob``, beside ``diff``): linked
        from ``blob_file`` when they are in a file already, else copied as read."""
        blob = _Blob()
        have = bool(expected_diff_id) and self.store.take_existing(expected_diff_id or "")
        if have:
            with self._held_lock:
                self.held[expected_diff_id or ""] += 1
            log.debug("layer %s is stored already: hashing it, not unpacking it",
                      (expected_diff_id or "")[:12])
        dest = None if have else self.staging / f"layer-{len(self._blobs)}-{id(blob):x}"
        kept: BlobWriter | None = None
        if dest is not None:
            # the bytes as they came: Save and Push give them out again unchanged
            dest.mkdir()
            if blob_file is not None:
                os.link(blob_file, dest / BLOB_FILE)
            else:
                kept = BlobWriter(dest / BLOB_FILE, source)
        raw = HashingReader(kept if kept is not None else source)
        try:
            with Decompressed(raw) as decompressed:
                plain = HashingReader(decompressed)
                stats = None
                if dest is not None:
                    stats = unpack_layer(plain, dest / "diff", self.budget)
                plain.drain()
            raw.drain()
        except InvalidArgument as err:
            blob.error = str(err)
            if kept is not None:
                kept.close()
            if dest is not None:
                remove_tree(dest)
            raw.drain()
            return blob
        finally:
            if kept is not None:
                kept.close()
        blob.raw_digest = f"sha256:{raw.hexdigest()}"
        blob.diff_id = plain.hexdigest()
        if dest is not None and stats is not None:
            write_meta(dest, stats.size)
            blob.staged = StagedLayer(diff_id=blob.diff_id, path=dest, size=stats.size)
        elif blob.diff_id != expected_diff_id:
            blob.error = "its content is not what its name says"
        return blob

    # the image in the archive

    def _resolve_oci(self) -> ArchiveImage:
        index = self._json("index.json")
        descriptor, references = self._select_manifest(index, depth=0)
        manifest_bytes = self._blob_bytes(descriptor, "manifest")
        manifest = _parse_json(manifest_bytes, "the image manifest")
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            descriptor, more = self._select_manifest(manifest, depth=1)
            references += more
            manifest_bytes = self._blob_bytes(descriptor, "manifest")
            manifest = _parse_json(manifest_bytes, "the image manifest")
        config_desc = _mapping(manifest.get("config"), "the manifest's config")
        config_bytes = self._blob_bytes(config_desc, "config")
        config = _parse_json(config_bytes, "the image config")
        layer_descs = _list(manifest.get("layers"), "the manifest's layers")
        diff_ids = _diff_ids(config, len(layer_descs))
        layers = []
        for desc, diff_id in zip(layer_descs, diff_ids, strict=True):
            desc = _mapping(desc, "a layer descriptor")
            digest = _digest(desc.get("digest"), "a layer")
            layers.append(self._layer(f"blobs/sha256/{digest}", f"sha256:{digest}", diff_id))
        return ArchiveImage(kind="oci", config=config, config_bytes=config_bytes,
                            config_digest=hashlib.sha256(config_bytes).hexdigest(),
                            manifest_digest=f"sha256:{_digest(descriptor.get('digest'), 'x')}",
                            layers=self._commit_layers(layers), references=references)

    def _select_manifest(self, index: dict[str, Any], depth: int
                         ) -> tuple[dict[str, Any], list[str]]:
        if depth > 1:
            raise InvalidArgument("the archive's image index nests too deep")
        manifests = [_mapping(m, "a manifest descriptor")
                     for m in _list(index.get("manifests"), "the index's manifests")]
        if len(manifests) > 1:
            arch = ARCHITECTURES.get(platform.machine(), platform.machine())
            matching = [m for m in manifests if isinstance(m.get("platform"), dict)
                        and m["platform"].get("os") == "linux"
                        and m["platform"].get("architecture") == arch]
            manifests = matching[:1] if matching else manifests
        if len(manifests) != 1:
            raise InvalidArgument(f"the archive holds {len(manifests)} images and none of them "
                                  "for this machine's platform; export one image per archive")
        descriptor = manifests[0]
        annotations = descriptor.get("annotations")
        references = []
        if isinstance(annotations, dict):
            references = [annotations[k] for k in REF_ANNOTATIONS
                          if isinstance(annotations.get(k), str)
                          and ("/" in annotations[k] or ":" in annotations[k])]
        return descriptor, references[:1]

    def _resolve_docker(self) -> ArchiveImage:
        manifest = _list(self._json_any("manifest.json"), "manifest.json")
        if len(manifest) != 1:
            raise InvalidArgument(f"the docker-archive holds {len(manifest)} images; "
                                  "save one image per archive")
        entry = _mapping(manifest[0], "manifest.json's entry")
        config_name = entry.get("Config")
        if not isinstance(config_name, str):
            raise InvalidArgument("manifest.json names no Config")
        config_bytes = self._small_file(config_name, "config")
        named = DIGEST_NAMED.fullmatch(self._resolve(config_name))
        if named and hashlib.sha256(config_bytes).hexdigest() != named.group(1):
            raise InvalidArgument(f"the config {config_name} does not match its digest; "
                                  "the archive is corrupt")
        config = _parse_json(config_bytes, "the image config")
        layer_names = _list(entry.get("Layers"), "manifest.json's Layers")
        diff_ids = _diff_ids(config, len(layer_names))
        layers = []
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            if not isinstance(name, str):
                raise InvalidArgument("manifest.json's Layers must be file names")
            layers.append(self._layer(name, "", diff_id))
        tags = entry.get("RepoTags") or []
        references = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
        return ArchiveImage(kind="docker", config=config, config_bytes=config_bytes,
                            config_digest=hashlib.sha256(config_bytes).hexdigest(),
                            manifest_digest="", layers=self._commit_layers(layers),
                            references=references)

    def _layer(self, name: str, blob_digest: str, diff_id: str) -> _Blob:
        name = self._resolve(name)
        if name in self._small:  # a tiny layer: unpacked only now that it is known to be one
            self._blobs[name] = self._take_blob(io.BytesIO(self._small[name]), diff_id)
        blob = self._blobs.get(name)
        if blob is None:
            raise InvalidArgument(f"the archive lacks the layer {name}")
        if blob.error:
            raise InvalidArgument(f"layer {name}: {blob.error}")
        if blob_digest and blob.raw_digest != blob_digest:
            raise InvalidArgument(f"the layer {name} does not match its digest {blob_digest}; "
                                  "the archive is corrupt")
        if blob.diff_id != diff_id:
            raise InvalidArgument(f"the layer {name} unpacks to sha256:{blob.diff_id}, not "
                                  f"to the diff id sha256:{diff_id} of the image config; "
                                  "the archive is corrupt")
        return blob

    def _commit_layers(self, blobs: list[_Blob]) -> list[ArchiveLayer]:
        """Into the store with them; one reference held per distinct layer."""
        distinct = len({blob.diff_id for blob in blobs})
        if distinct > MAX_LAYERS:
            raise InvalidArgument(f"the image has {distinct} layers; pyctrd runs images of "
                                  f"at most {MAX_LAYERS} (squash some of them)")
        layers = []
        for blob in blobs:
            if self.held[blob.diff_id] == 0:
                if blob.staged is None:  # stored already, but our reference was released
                    raise StorageFailed(f"layer {blob.diff_id[:12]} vanished during import")
                self._commit(blob.staged)
            if blob.raw_digest != f"sha256:{blob.diff_id}":
                self.store.remember_blob(blob.raw_digest, blob.diff_id)
            size = blob.staged.size if blob.staged else self.store.size(blob.diff_id)
            layers.append(ArchiveLayer(blob.diff_id, blob.raw_digest, size))
        return layers

    def _commit(self, staged: StagedLayer) -> None:
        self.store.add(staged)
        self.held[staged.diff_id] += 1

    # archive members

    def _resolve(self, name: str) -> str:
        name = "/".join(clean_name(name))
        for _ in range(16):  # symlinks to symlinks, but not in a loop
            if name not in self._aliases:
                return name
            name = self._aliases[name]
        raise InvalidArgument(f"the archive's member {name} is a symlink loop")

    def _small_file(self, name: str, what: str) -> bytes:
        resolved = self._resolve(name)
        if resolved in self._small:
            return self._small[resolved]
        if resolved in self._blobs:
            raise InvalidArgument(f"the {what} {name} is too large")
        raise InvalidArgument(f"the archive lacks the {what} {name}")

    def _blob_bytes(self, descriptor: dict[str, Any], what: str) -> bytes:
        digest = _digest(descriptor.get("digest"), f"the {what}")
        data = self._small_file(f"blobs/sha256/{digest}", what)
        if hashlib.sha256(data).hexdigest() != digest:
            raise InvalidArgument(f"the {what} blob does not match its digest sha256:{digest}; "
                                  "the archive is corrupt")
        size = descriptor.get("size")
        if isinstance(size, int) and size != len(data):
            raise InvalidArgument(f"the {what} blob sha256:{digest} has {len(data)} bytes, "
                                  f"its descriptor says {size}")
        return data

    def _json(self, name: str) -> dict[str, Any]:
        return _mapping(self._json_any(name), name)

    def _json_any(self, name: str) -> Any:
        return _parse_json(self._small_file(name, "file"), name)


def host_architecture() -> str:
    """This machine's architecture as OCI names it (amd64, arm64, …)."""
    return ARCHITECTURES.get(platform.machine(), platform.machine())


def _name(member: tarfile.TarInfo) -> str:
    return "/".join(clean_name(member.name))


def _first_named(tar: tarfile.TarFile) -> tarfile.TarInfo | None:
    """The first entry other than the archive's root ("./")."""
    for member in tar_members(tar):
        with contextlib.suppress(InvalidArgument):
            if not clean_name(member.name):
                continue
        return member
    return None


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"{what} is not valid JSON: {err}") from err


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidArgument(f"{what} must be a JSON list")
    return value


def _digest(value: Any, what: str) -> str:
    match = DIGEST.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidArgument(f"{what} has the digest {value!r}; pyctrd takes sha256 digests")
    return match.group(1)


def _diff_ids(config: dict[str, Any], count: int) -> list[str]:
    rootfs = _mapping(config.get("rootfs"), "the image config's rootfs")
    diff_ids = [_digest(d, "a diff id of the image config")
                for d in _list(rootfs.get("diff_ids"), "the image config's diff_ids")]
    if len(diff_ids) != count:
        raise InvalidArgument(f"the manifest lists {count} layers but the image config "
                              f"{len(diff_ids)} diff ids")
    return diff_ids
