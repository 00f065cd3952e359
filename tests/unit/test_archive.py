"""Root-filesystem tarballs from an fd: compression detected, unpacked safely; export."""

import bz2
import contextlib
import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from pyctrd.errors import InvalidArgument
from pyctrd.storage.archive import export_tree
from pyctrd.storage.streams import Decompressed, FdReader, HashingReader, compression_of
from pyctrd.storage.trees import tree_size
from pyctrd.storage.unpack import unpack_layer

pytestmark = pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")


# compression detection


@pytest.mark.parametrize(("head", "kind"), [
    (gzip.compress(b"x")[:10], "gzip"),
    (b"\x28\xb5\x2f\xfd\x04\x00", "zstd"),
    (lzma.compress(b"x")[:10], "xz"),
    (bz2.compress(b"x")[:10], "bzip2"),
    (b"./\x00\x00\x00", ""),
    (b"", ""),
    (b"\x1f", ""),  # a gzip magic cut short
    (b"BZ", ""),
])
def test_compression_of(head, kind):
    assert compression_of(head) == kind


# helpers


def make_tar(members: dict[str, tuple[bytes | None, int]], *, compress=None) -> bytes:
    """name → (data or None for a directory, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.uid = info.gid = os.getuid()
            info.mtime = 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return compress(raw) if compress else raw


def add_raw(tar: tarfile.TarFile, info: tarfile.TarInfo, data: bytes = b"") -> None:
    info.size = len(data) if info.isfile() else 0
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def unpack_from_pipe(data: bytes, dest: Path) -> str:
    """Feed ``data`` through a real pipe from a writer thread, as a D-Bus caller would.

    Unpacks it into ``dest`` (decompressed as detected); the diff id."""
    r, w = os.pipe()

    def writer():
        with contextlib.suppress(BrokenPipeError), os.fdopen(w, "wb") as f:
            f.write(data)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        with Decompressed(FdReader(r)) as decompressed:
            plain = HashingReader(decompressed)
            unpack_layer(plain, dest)
            plain.drain()
        return plain.hexdigest()
    finally:
        os.close(r)  # unblocks the writer if unpack stopped reading early
        t.join(timeout=10)
        assert not t.is_alive()


MEMBERS = {
    "bin": (None, 0o755),
    "bin/tool": (b"#!/bin/sh\necho hi\n", 0o755),
    "etc": (None, 0o755),
    "etc/secret": (b"s3cret\n", 0o600),
    "etc/motd": (b"hello\n" * 1000, 0o644),
    "sticky": (None, 0o1777),
}


def check_tree(dest: Path) -> None:
    assert (dest / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (dest / "etc/motd").read_bytes() == b"hello\n" * 1000
    assert stat.S_IMODE((dest / "bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "etc/secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "etc/motd").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "sticky").stat().st_mode) == 0o1777


@pytest.mark.parametrize("compress", [None, gzip.compress, lzma.compress, bz2.compress],
                         ids=["plain", "gzip", "xz", "bzip2"])
def test_unpack(tmp_path, compress):
    data = make_tar(MEMBERS, compress=compress)
    dest = tmp_path / "dest"
    diff_id = unpack_from_pipe(data, dest)
    check_tree(dest)
    assert diff_id == hashlib.sha256(make_tar(MEMBERS)).hexdigest()


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs zstd")
def test_unpack_zstd(tmp_path):
    raw = make_tar(MEMBERS)
    data = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True,
                          check=True).stdout
    dest = tmp_path / "dest"
    diff_id = unpack_from_pipe(data, dest)
    check_tree(dest)
    assert diff_id == hashlib.sha256(raw).hexdigest()


def test_unpack_larger_than_a_chunk(tmp_path):
    big = os.urandom(3 * (1 << 20) + 17)
    data = make_tar({"big": (big, 0o644)})
    dest = tmp_path / "dest"
    diff_id = unpack_from_pipe(data, dest)
    assert (dest / "big").read_bytes() == big
    assert diff_id == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("data", [
    b"this is not a tar archive at all\n" * 10,
    os.urandom(4096),
    b"\x1f\x8b" + b"not really gzip" * 100,
], ids=["text", "random", "fake-gzip"])
def test_not_a_tar(tmp_path, data):
    with pytest.raises(InvalidArgument) as info:
        unpack_from_pipe(data, tmp_path / "dest")
    assert "\n" not in str(info.value)


def test_empty_input(tmp_path):
    with pytest.raises(InvalidArgument) as info:
        unpack_from_pipe(b"", tmp_path / "dest")
    assert "empty" in str(info.value)


def test_dotdot_member_stays_inside(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add_raw(tar, tarfile.TarInfo("../evil"), b"pwned")
        add_raw(tar, tarfile.TarInfo("ok/../../evil2"), b"pwned")
    dest = tmp_path / "dest"
    with pytest.raises(InvalidArgument, match=r"'\.\.'"):
        unpack_from_pipe(buf.getvalue(), dest)
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "evil2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_absolute_member_stays_inside(tmp_path):
    target = tmp_path / "abs-target"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add_raw(tar, tarfile.TarInfo(str(target)), b"pwned")
    dest = tmp_path / "dest"
    with pytest.raises(InvalidArgument, match="absolute"):
        unpack_from_pipe(buf.getvalue(), dest)
    assert not target.exists()


def test_symlink_then_member_through_it_stays_inside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = str(outside)
        add_raw(tar, link)
        add_raw(tar, tarfile.TarInfo("link/planted"), b"pwned")
    dest = tmp_path / "dest"
    with pytest.raises(InvalidArgument, match="symbolic link"):
        unpack_from_pipe(buf.getvalue(), dest)
    assert list(outside.iterdir()) == []


# export


def test_export_tree(tmp_path):
    src = tmp_path / "src"
    unpack_from_pipe(make_tar(MEMBERS), src)
    (src / "link").symlink_to("bin/tool")
    out = tmp_path / "out.tar"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        export_tree(src, fd)
    finally:
        os.close(fd)
    with tarfile.open(out, mode="r:") as tar:  # uncompressed
        members = {m.name.removeprefix("./").rstrip("/"): m for m in tar.getmembers()}
        members.pop(".", None)
        members.pop("", None)
        assert set(members) == {*MEMBERS, "link"}
        assert tar.extractfile(members["bin/tool"]).read() == b"#!/bin/sh\necho hi\n"
        assert members["etc/secret"].mode & 0o7777 == 0o600
        assert members["sticky"].mode & 0o7777 == 0o1777
        assert members["link"].issym() and members["link"].linkname == "bin/tool"
        assert members["etc"].isdir()


def test_export_to_pipe_round_trips(tmp_path):
    src = tmp_path / "src"
    unpack_from_pipe(make_tar(MEMBERS), src)
    r, w = os.pipe()
    chunks = []

    def reader():
        while chunk := os.read(r, 65536):
            chunks.append(chunk)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        export_tree(src, w)
    finally:
        os.close(w)
    t.join(timeout=10)
    os.close(r)
    dest = tmp_path / "copy"
    unpack_from_pipe(b"".join(chunks), dest)
    check_tree(dest)


def test_tree_size(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "d").mkdir()
    (tmp_path / "d/b").write_bytes(b"y" * 5)
    (tmp_path / "dangling").symlink_to("nowhere")  # counted by lstat, not followed
    assert tree_size(tmp_path) == 15 + len("nowhere")
