"""Writing a stored image out: an OCI layout directory (for skopeo to push) or an
oci-archive / docker-archive stream (Save), from the config as it was stored and
each layer's blob as it came (storage.layers.BLOB_FILE). The config's bytes are
unchanged, so the image ID is too: importing the result gives the same image.
"""

import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyctrd.storage.streams import compression_of

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               "": "application/vnd.oci.image.layer.v1.tar"}
FORMATS = ("oci-archive", "docker-archive")
CHUNK = 1 << 20


@dataclass(frozen=True)
class LayerBlob:
    path: Path
    digest: str  # "sha256:…" of the file
    size: int
    media_type: str


def layer_blob(path: Path) -> LayerBlob:
    """The blob at ``path``, hashed (OSError if it is not there)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        head = f.read(CHUNK)
        kind = compression_of(head[:8])
        while head:
            digest.update(head)
            head = f.read(CHUNK)
        size = f.tell()
    media_type = LAYER_TYPES.get(kind, LAYER_TYPES[""])
    return LayerBlob(path, f"sha256:{digest.hexdigest()}", size, media_type)


def manifest(config: bytes, layers: Sequence[LayerBlob]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config),
                   "digest": f"sha256:{hashlib.sha256(config).hexdigest()}"},
        "layers": [{"mediaType": b.media_type, "size": b.size, "digest": b.digest}
                   for b in layers],
    }, separators=(",", ":")).encode()


def _index(manifest_bytes: bytes, reference: str) -> bytes:
    entry: dict[str, object] = {
        "mediaType": OCI_MANIFEST, "size": len(manifest_bytes),
        "digest": f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}"}
    if reference:
        entry["annotations"] = {"org.opencontainers.image.ref.name": reference}
    return json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()


def write_layout(dest: Path, config: bytes, layers: Sequence[LayerBlob]) -> None:
    """An OCI layout directory; blobs hard-linked where the filesystem allows."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, mode=0o700)
    for blob in layers:
        target = blobs / blob.digest.removeprefix("sha256:")
        if target.exists():
            continue
        try:
            os.link(blob.path, target)
        except OSError:
            shutil.copyfile(blob.path, target)
    man = manifest(config, layers)
    for data in (config, man):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (dest / "index.json").write_bytes(_index(man, ""))


def write_archive(out: BinaryIO, fmt: str, config: bytes, layers: Sequence[LayerBlob],
                  reference: str) -> None:
    """An ``fmt`` archive ("oci-archive" or "docker-archive") streamed to ``out``."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if fmt == "oci-archive":
            man = manifest(config, layers)
            _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            _add_bytes(tar, "index.json", _index(man, reference))
            seen = set()
            for blob in layers:
                if blob.digest not in seen:
                    seen.add(blob.digest)
                    _add_file(tar, f"blobs/sha256/{blob.digest[7:]}", blob.path)
            _add_bytes(tar, f"blobs/sha256/{hashlib.sha256(config).hexdigest()}", config)
            _add_bytes(tar, f"blobs/sha256/{hashlib.sha256(man).hexdigest()}", man)
            return
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        _add_bytes(tar, config_name, config)
        names = []
        for blob in layers:
            name = f"{blob.digest[7:]}.tar"
            if name not in names:
                _add_file(tar, name, blob.path)
            names.append(name)
        tags = [reference] if reference and "@" not in reference else []
        _add_bytes(tar, "manifest.json", json.dumps(
            [{"Config": config_name, "RepoTags": tags, "Layers": names}]).encode())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    with open(path, "rb") as f:
        info = tarfile.TarInfo(name)
        info.size = os.fstat(f.fileno()).st_size
        info.mode = 0o644
        tar.addfile(info, f)
