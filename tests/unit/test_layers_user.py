"""resolve_user over an image's layers: the top-most entry decides, whiteouts hide."""

import os
import stat
from pathlib import Path

import pytest

from pyctrd.errors import InvalidArgument
from pyctrd.storage.etcfiles import resolve_user

BASE_PASSWD = "root:x:0:0::/root:/bin/sh\nbase:x:100:100::/:/bin/sh\n"
TOP_PASSWD = "root:x:0:0::/root:/bin/sh\ntop:x:200:201::/:/bin/sh\n"


def layer(root: Path, name: str, files: dict[str, str] | None = None) -> Path:
    d = root / name
    (d / "etc").mkdir(parents=True)
    for fname, text in (files or {}).items():
        (d / "etc" / fname).write_text(text)
    return d


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def test_top_layer_passwd_wins(tmp_path):
    base = layer(tmp_path, "base", {"passwd": BASE_PASSWD, "group": "g:x:7:\n"})
    top = layer(tmp_path, "top", {"passwd": TOP_PASSWD})
    assert resolve_user("top", [top, base]) == (200, 201)
    with pytest.raises(InvalidArgument):
        resolve_user("base", [top, base])
    assert resolve_user("top:g", [top, base]) == (200, 7)  # group from the lower layer


def test_lower_layer_is_read_when_the_top_has_no_entry(tmp_path):
    base = layer(tmp_path, "base", {"passwd": BASE_PASSWD})
    top = tmp_path / "top"
    top.mkdir()
    middle = layer(tmp_path, "middle")
    assert resolve_user("base", [top, middle, base]) == (100, 100)


def test_whiteout_hides_a_lower_passwd(tmp_path):
    base = layer(tmp_path, "base", {"passwd": BASE_PASSWD})
    top = layer(tmp_path, "top")
    whiteout(top / "etc/passwd")
    with pytest.raises(InvalidArgument):
        resolve_user("base", [top, base])
    assert resolve_user("100", [top, base]) == (100, 100)


def test_whiteout_of_etc_hides_it(tmp_path):
    base = layer(tmp_path, "base", {"passwd": BASE_PASSWD})
    top = tmp_path / "top"
    top.mkdir()
    whiteout(top / "etc")
    with pytest.raises(InvalidArgument):
        resolve_user("base", [top, base])


def test_opaque_etc_hides_lower_layers(tmp_path):
    base = layer(tmp_path, "base", {"passwd": BASE_PASSWD})
    top = layer(tmp_path, "top", {"group": "g:x:7:\n"})
    os.setxattr(top / "etc", "trusted.overlay.opaque", b"y")
    with pytest.raises(InvalidArgument):
        resolve_user("base", [top, base])


def test_symlinked_passwd_in_the_top_layer_is_not_followed_into_a_lower_one(tmp_path):
    base = layer(tmp_path, "base", {"passwd": BASE_PASSWD})
    top = layer(tmp_path, "top")
    (top / "etc/passwd").symlink_to(base / "etc/passwd")
    with pytest.raises(InvalidArgument):
        resolve_user("base", [top, base])


def test_symlinked_etc_in_a_lower_layer_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:4000:4000::/:/bin/sh\n")
    base = tmp_path / "base"
    base.mkdir()
    (base / "etc").symlink_to(outside)
    top = tmp_path / "top"
    top.mkdir()
    with pytest.raises(InvalidArgument):
        resolve_user("evil", [top, base])
    assert resolve_user("4000", [top, base]) == (4000, 4000)
