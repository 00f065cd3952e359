"""pyctrd.storage.unpack: one layer tar into a directory, safely, whiteouts for overlayfs."""

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pyctrd.errors import InvalidArgument
from pyctrd.storage.overlayxattrs import opaque
from pyctrd.storage.unpack import unpack_layer

OPAQUE_XATTR = opaque()

MTIME = 1_600_000_000


def entry(name: str, data: bytes | None = b"", *, kind: bytes = tarfile.REGTYPE,
          mode: int = 0o644, uid: int = 0, gid: int = 0, link: str = "",
          pax: dict[str, str] | None = None, mtime: float = MTIME,
          dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    info.linkname = link
    info.devmajor, info.devminor = dev
    info.pax_headers = dict(pax or {})
    if kind == tarfile.REGTYPE:
        info.size = len(data or b"")
    return info, data


def directory(name: str, **kw) -> tuple[tarfile.TarInfo, None]:
    info, _ = entry(name, None, kind=tarfile.DIRTYPE, mode=kw.pop("mode", 0o755), **kw)
    return info, None


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info, _ = entry(name, None, kind=tarfile.SYMTYPE, link=target, mode=0o777)
    return info, None


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info, _ = entry(name, None, kind=tarfile.LNKTYPE, link=target)
    return info, None


def tar_of(*entries: tuple[tarfile.TarInfo, bytes | None],
           fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def unpack(data: bytes, dest: Path):
    return unpack_layer(io.BytesIO(data), dest)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "layer"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the layer that no archive may touch."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "victim").write_text("original\n")
    return out


def assert_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_text() == "original\n"


# what is kept


def test_files_dirs_modes_owners_times(dest):
    stats = unpack(tar_of(
        directory("usr", mode=0o750, uid=7, gid=8, mtime=1_500_000_000),
        directory("usr/bin"),
        entry("usr/bin/suid", b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0),
        entry("usr/bin/sgid", b"x", mode=0o2711, uid=1000, gid=50),
        directory("tmp", mode=0o1777),
        entry("usr/data", b"d" * 5000, uid=1234, gid=5678, mtime=1_234_567_890),
    ), dest)
    assert stats.size == len(b"#!/bin/sh\n") + 1 + 5000
    usr = os.lstat(dest / "usr")
    assert (stat.S_IMODE(usr.st_mode), usr.st_uid, usr.st_gid) == (0o750, 7, 8)
    assert usr.st_mtime == 1_500_000_000  # set after its entries landed
    assert stat.S_IMODE(os.lstat(dest / "usr/bin/suid").st_mode) == 0o4755
    sgid = os.lstat(dest / "usr/bin/sgid")
    assert (stat.S_IMODE(sgid.st_mode), sgid.st_uid, sgid.st_gid) == (0o2711, 1000, 50)
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    data = os.lstat(dest / "usr/data")
    assert (data.st_uid, data.st_gid, data.st_mtime) == (1234, 5678, 1_234_567_890)
    assert (dest / "usr/data").read_bytes() == b"d" * 5000


def test_subsecond_pax_mtime(dest):
    unpack(tar_of(entry("f", b"x", pax={"mtime": "1600000000.123456789"})), dest)
    assert os.lstat(dest / "f").st_mtime_ns == 1_600_000_000_123_456_789


def test_root_entry_sets_the_layer_root(dest):
    unpack(tar_of(directory("./", mode=0o700, uid=5, gid=6), entry("./f", b"x")), dest)
    root = os.lstat(dest)
    assert (stat.S_IMODE(root.st_mode), root.st_uid, root.st_gid) == (0o700, 5, 6)
    assert (dest / "f").read_bytes() == b"x"


def test_symlinks_kept_verbatim_not_followed(dest, outside):
    unpack(tar_of(symlink("abs", str(outside / "victim")), symlink("rel", "../outside"),
                  symlink("dangling", "nowhere")), dest)
    assert os.readlink(dest / "abs") == str(outside / "victim")
    assert os.readlink(dest / "rel") == "../outside"
    assert os.readlink(dest / "dangling") == "nowhere"
    assert_untouched(outside)


def test_hardlinks_share_an_inode(dest):
    unpack(tar_of(directory("bin"), entry("bin/busybox", b"ELF", mode=0o755),
                  hardlink("bin/sh", "bin/busybox"), hardlink("ls", "bin/busybox")), dest)
    inode = os.lstat(dest / "bin/busybox").st_ino
    assert os.lstat(dest / "bin/sh").st_ino == inode
    assert os.lstat(dest / "ls").st_ino == inode
    assert os.lstat(dest / "bin/busybox").st_nlink == 3


def test_device_nodes_and_fifos(dest):
    unpack(tar_of(
        directory("dev"),
        entry("dev/null", None, kind=tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
        entry("dev/loop9", None, kind=tarfile.BLKTYPE, mode=0o660, gid=6, dev=(7, 9)),
        entry("dev/fifo", None, kind=tarfile.FIFOTYPE, mode=0o600),
    ), dest)
    null = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
    assert os.minor(null.st_rdev) == 3 and stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(dest / "dev/loop9")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_gid == 6
    assert stat.S_ISFIFO(os.lstat(dest / "dev/fifo").st_mode)


def test_xattrs_kept_overlay_ones_dropped(dest):
    caps = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    unpack(tar_of(
        entry("ping", b"x", mode=0o755, pax={
            "SCHILY.xattr.user.note": "hello",
            "SCHILY.xattr.security.capability": caps.decode("utf-8", "surrogateescape"),
            "SCHILY.xattr.trusted.overlay.redirect": "/etc",
        }),
        directory("d", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"}),
    ), dest)
    assert os.getxattr(dest / "ping", "user.note") == b"hello"
    assert os.getxattr(dest / "ping", "security.capability") == caps
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "ping")
    assert OPAQUE_XATTR not in os.listxattr(dest / "d")  # forged: only .wh..wh..opq makes it


def test_long_names_and_unicode(dest):
    deep = "/".join(["d" * 60] * 5) + "/" + "f" * 200
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        target = dest.with_name(f"layer{fmt}")
        unpack(tar_of(entry(deep, b"long"), entry("ünïcødé-✓", b"u"),
                      symlink("l" * 150, "t" * 300), fmt=fmt), target)
        assert (target / deep).read_bytes() == b"long"
        assert (target / "ünïcødé-✓").read_bytes() == b"u"
        assert os.readlink(target / ("l" * 150)) == "t" * 300


def test_later_entry_replaces_earlier(dest):
    unpack(tar_of(entry("x", b"file"), directory("x"), entry("x/in", b"1"),
                  entry("y", b"old"), entry("y", b"new"), directory("z"), entry("z/a", b"a"),
                  symlink("z", "elsewhere")), dest)
    assert (dest / "x/in").read_bytes() == b"1"
    assert (dest / "y").read_bytes() == b"new"
    assert os.readlink(dest / "z") == "elsewhere"


# whiteouts


def test_whiteout_becomes_a_0_0_char_device(dest):
    unpack(tar_of(directory("etc"), entry("etc/.wh.hostname", b"", uid=3, gid=4)), dest)
    node = os.lstat(dest / "etc/hostname")
    assert stat.S_ISCHR(node.st_mode) and node.st_rdev == os.makedev(0, 0)
    assert not (dest / "etc/.wh.hostname").exists()


def test_whiteout_with_implicit_parent(dest):
    unpack(tar_of(entry("a/b/.wh.c")), dest)
    assert stat.S_ISCHR(os.lstat(dest / "a/b/c").st_mode)


def test_opaque_directory(dest):
    unpack(tar_of(directory("var"), entry("var/.wh..wh..opq"), entry("var/new", b"n")), dest)
    assert os.getxattr(dest / "var", OPAQUE_XATTR) == b"y"
    assert sorted(os.listdir(dest / "var")) == ["new"]


def test_aufs_metadata_is_dropped(dest):
    unpack(tar_of(directory(".wh..wh.plnk"), entry(".wh..wh.plnk/123.456", b"x"),
                  entry(".wh..wh.aufs", b"")), dest)
    assert os.listdir(dest) == []


@pytest.mark.parametrize("name", [".wh.", "d/.wh..", "d/.wh..."])
def test_whiteout_without_a_proper_name(dest, name):
    with pytest.raises(InvalidArgument):
        unpack(tar_of(entry(name)), dest)


# hostile archives


@pytest.mark.parametrize("name", ["../victim", "a/../../outside/victim", "..",
                                  "./../outside/victim"])
def test_dotdot_is_refused(dest, outside, name):
    with pytest.raises(InvalidArgument, match=r"'\.\.'"):
        unpack(tar_of(entry("ok", b"fine"), entry(name, b"pwned")), dest)
    assert_untouched(outside)


def test_absolute_path_is_refused(dest, outside):
    with pytest.raises(InvalidArgument, match="absolute"):
        unpack(tar_of(entry(str(outside / "victim"), b"pwned")), dest)
    assert_untouched(outside)


@pytest.mark.parametrize("target", ["ABS", "../outside", "../../outside", "."])
def test_writing_through_a_symlink_is_refused(dest, outside, target):
    target = str(outside) if target == "ABS" else target
    with pytest.raises(InvalidArgument, match="symbolic link"):
        unpack(tar_of(symlink("link", target), entry("link/victim", b"pwned")), dest)
    assert_untouched(outside)


def test_symlinked_directory_deep_in_the_path_is_refused(dest, outside):
    with pytest.raises(InvalidArgument, match="symbolic link"):
        unpack(tar_of(directory("a"), symlink("a/b", str(outside)),
                      entry("a/b/c/new", b"pwned")), dest)
    assert_untouched(outside)


def test_whiteout_through_a_symlink_is_refused(dest, outside):
    with pytest.raises(InvalidArgument, match="symbolic link"):
        unpack(tar_of(symlink("link", str(outside)), entry("link/.wh.victim")), dest)
    assert_untouched(outside)


def test_opaque_marker_through_a_symlink_is_refused(dest, outside):
    with pytest.raises(InvalidArgument, match="symbolic link"):
        unpack(tar_of(symlink("link", str(outside)), entry("link/.wh..wh..opq")), dest)
    assert OPAQUE_XATTR not in os.listxattr(outside)


@pytest.mark.parametrize("target", ["ABS", "../outside/victim", "a/../../outside/victim"])
def test_hardlink_to_outside_is_refused(dest, outside, target):
    target = str(outside / "victim") if target == "ABS" else target
    with pytest.raises(InvalidArgument):
        unpack(tar_of(directory("a"), hardlink("a/stolen", target)), dest)
    assert_untouched(outside)
    assert os.lstat(outside / "victim").st_nlink == 1


def test_hardlink_through_a_symlink_is_refused(dest, outside):
    with pytest.raises(InvalidArgument, match="symbolic link"):
        unpack(tar_of(symlink("link", str(outside)), hardlink("stolen", "link/victim")), dest)
    assert os.lstat(outside / "victim").st_nlink == 1


def test_hardlink_to_a_symlink_links_the_symlink_itself(dest, outside):
    unpack(tar_of(symlink("link", str(outside / "victim")), hardlink("same", "link")), dest)
    assert os.readlink(dest / "same") == str(outside / "victim")
    assert os.lstat(outside / "victim").st_nlink == 1


def test_hardlink_to_a_missing_file_is_refused(dest):
    with pytest.raises(InvalidArgument, match="not an earlier entry"):
        unpack(tar_of(hardlink("sh", "bin/busybox")), dest)


def test_hardlink_to_a_directory_is_refused(dest):
    with pytest.raises(InvalidArgument, match="directory"):
        unpack(tar_of(directory("d"), hardlink("x", "d")), dest)


def test_not_a_tar(dest):
    with pytest.raises(InvalidArgument, match="not a tar"):
        unpack(b"definitely not a tar archive\n" * 40, dest)


def test_truncated_tar(dest):
    data = tar_of(entry("big", b"x" * 100_000))
    with pytest.raises(InvalidArgument):
        unpack(data[:20_000], dest)
