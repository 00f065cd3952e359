"""Trees 10,000 directories deep: walked, unpacked and deleted without recursion.

Python 3.11's shutil.rmtree and os.walk raise RecursionError near 1,000 levels;
pyctrd.storage.trees goes down and up with one fd open, whatever the depth.
"""

import io
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyctrd.storage import trees
from pyctrd.storage.streams import FdReader
from pyctrd.storage.unpack import unpack_layer

DEPTH = 10_000


def make_chain(top: Path, depth: int) -> int:
    """``top/d/d/…/d`` ``depth`` levels deep (by fds: the path passes PATH_MAX); returns
    an fd of the deepest directory."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    return fd


def write_at(dir_fd: int, name: str, data: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Path]:
    top = tmp_path / "deep"
    fd = make_chain(top, DEPTH)
    try:
        write_at(fd, "bottom", b"x" * 1000)
        os.symlink("/", "escape", dir_fd=fd)  # must be deleted, never followed
        os.chmod(fd, 0o500)  # a read-only directory at the bottom
    finally:
        os.close(fd)
    yield top
    if top.exists():  # the test failed half-way: don't leave 10,000 levels in /tmp
        subprocess.run(["rm", "-rf", "--one-file-system", str(top)], check=False, timeout=60)


def test_python_itself_cannot(chain: Path) -> None:
    """The failure the helper exists for (so the tests below can fail)."""
    with pytest.raises(RecursionError):
        list(os.walk(chain))


def test_tree_size_at_depth_10000(chain: Path) -> None:
    outside = chain.parent / "outside"
    outside.write_bytes(b"y" * 5000)
    started = time.monotonic()
    assert trees.tree_size(chain) == 1000 + len("/")
    assert time.monotonic() - started < 10


def test_remove_tree_at_depth_10000(chain: Path, tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.write_text("the symlink at the bottom points at / and must not be followed")
    started = time.monotonic()
    trees.remove_tree(chain)
    assert time.monotonic() - started < 10
    assert not chain.exists()
    assert keep.exists()
    assert trees.remove_tree(chain) is None  # gone already is fine


def test_remove_tree_of_a_file_and_of_nothing(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    os.symlink(tmp_path / "target", tmp_path / "link")
    (tmp_path / "target").mkdir()
    trees.remove_tree(tmp_path / "f")
    trees.remove_tree(tmp_path / "link")
    trees.remove_tree(tmp_path / "missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_remove_tree_never_enters_a_mount(tmp_path: Path) -> None:
    top = tmp_path / "top"
    mnt = top / "a" / "mnt"
    mnt.mkdir(parents=True)
    (top / "a" / "file").write_text("x")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True, timeout=10)
    try:
        (mnt / "precious").write_text("x")
        with pytest.raises(OSError) as info:
            trees.remove_tree(top)
        assert info.value.errno == 16  # EBUSY, naming the mount
        assert str(mnt) in str(info.value)
        assert (mnt / "precious").exists()
        # without the mount-table check, the walk itself stops at the other device
        with pytest.raises(OSError) as info:
            trees.remove_tree(top, check_mounts=False)
        assert info.value.errno == 16
        assert (mnt / "precious").exists()
        assert not (top / "a" / "file").exists()  # the rest went
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True, timeout=10)
    trees.remove_tree(top)
    assert not top.exists()


def deep_layer(fileobj: object, depth: int) -> None:
    """A layer tar: ``depth`` nested directories, a file at the bottom."""
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        name = ""
        for _ in range(depth):
            name = f"{name}/d" if name else "d"
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_000_000
            tar.addfile(info)
        info = tarfile.TarInfo(f"{name}/bottom")
        info.size, info.mode = 3, 0o644
        tar.addfile(info, io.BytesIO(b"end"))


def test_unpack_at_depth_10000(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as out:
            deep_layer(out, DEPTH)

    writer = threading.Thread(target=produce)
    writer.start()
    started = time.monotonic()
    try:
        stats = unpack_layer(FdReader(read_fd), tmp_path / "layer")
    finally:
        os.close(read_fd)
        writer.join(60)
    elapsed = time.monotonic() - started
    assert stats.entries == DEPTH + 1
    assert elapsed < 30
    # the bottom is there, and directories got their archive times (set by inode)
    fd = os.open(tmp_path / "layer", os.O_RDONLY | os.O_DIRECTORY)
    try:
        depth = 0
        while True:
            try:
                child = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                break
            os.close(fd)
            fd = child
            depth += 1
            if depth % 1000 == 0:
                assert os.fstat(fd).st_mtime == 1_000_000, depth
        assert depth == DEPTH
        assert os.fstat(fd).st_mtime == 1_000_000
        with os.fdopen(os.open("bottom", os.O_RDONLY, dir_fd=fd), "rb") as f:
            assert f.read() == b"end"
    finally:
        os.close(fd)
    assert trees.tree_size(tmp_path / "layer") == 3
    trees.remove_tree(tmp_path / "layer")
    assert not (tmp_path / "layer").exists()
