"""Image references, short names, skopeo's errors, commit changes, upper-dir layers."""

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pyctrd.core.commit import apply_changes
from pyctrd.errors import InvalidArgument, RegistryFailed
from pyctrd.registry.reference import candidates, parse
from pyctrd.registry.skopeo import TransferOptions, check_options, registry_error
from pyctrd.storage.upperlayer import write_upper_layer


@pytest.mark.parametrize(("text", "expected"), [
    ("busybox", "busybox:latest"),
    ("docker://quay.io/podman/hello", "quay.io/podman/hello:latest"),
    ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b:v1"),
    ("localhost/x@sha256:" + "a" * 64, "localhost/x@sha256:" + "a" * 64),
    ("library/alpine:3", "library/alpine:3"),
])
def test_references(text, expected):
    assert str(parse(text)) == expected


@pytest.mark.parametrize("text", ["UPPER/x", "a b", "x:", "x@sha256:12", "", ":tag"])
def test_bad_references(text):
    with pytest.raises(InvalidArgument):
        parse(text)


def test_short_names_follow_registries_conf(tmp_path: Path):
    conf = tmp_path / "registries.conf"
    conf.write_text('unqualified-search-registries = ["quay.io", "docker.io"]\n'
                    '[aliases]\n"hello" = "quay.io/podman/hello"\n')
    assert [str(r) for r in candidates(parse("alpine"), conf)] == [
        "quay.io/alpine:latest", "docker.io/library/alpine:latest"]
    assert [str(r) for r in candidates(parse("hello:v2"), conf)] == ["quay.io/podman/hello:v2"]
    conf.write_text("")
    with pytest.raises(RegistryFailed, match="unqualified-search-registries"):
        candidates(parse("alpine"), conf)
    assert candidates(parse("localhost/x"), conf)[0].domain == "localhost"


@pytest.mark.parametrize(("stderr", "says"), [
    ('time="x" level=fatal msg="initializing source docker://h/x:y: reading manifest y in '
     'h/x: manifest unknown: manifest unknown"', "has no image"),
    ("pinging container registry 127.0.0.1:1: Get \"https://127.0.0.1:1/v2/\": dial tcp "
     "127.0.0.1:1: connect: connection refused", "could not be reached"),
    ("... x509: certificate signed by unknown authority", "TLS verification"),
    ("reading manifest v1 in h/x: unauthorized: authentication required",
     "refused the credentials"),
])
def test_skopeo_errors_say_which(stderr, says):
    assert says in str(registry_error(stderr, "h/x:y"))


def test_credentials_never_in_repr():
    options = TransferOptions(credentials="u:secret")
    assert "secret" not in repr(options)
    with pytest.raises(InvalidArgument):
        check_options(TransferOptions(credentials="no-colon"))


def test_changes_edit_the_config():
    config = {"config": {"Env": ["A=1"], "Cmd": ["sh"]}}
    apply_changes(config, ["ENV A=2 B=3", "LABEL k=v", "WORKDIR /w", "USER 1000",
                           "EXPOSE 80 53/udp", 'ENTRYPOINT ["/bin/app"]', "CMD --flag"])
    section = config["config"]
    assert section["Env"] == ["A=2", "B=3"]
    assert section["Labels"] == {"k": "v"} and section["WorkingDir"] == "/w"
    assert section["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert section["Entrypoint"] == ["/bin/app"]
    assert section["Cmd"] == ["/bin/sh", "-c", "--flag"]
    for bad in ("RUN x", "EXPOSE 99999", 'CMD ["a", 1]', "ENV"):
        with pytest.raises(InvalidArgument):
            apply_changes({}, [bad])


def test_upper_dir_whiteouts(tmp_path: Path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "new").write_text("x")
    os.mknod(upper / "etc" / "gone", stat.S_IFCHR | 0o600, 0)
    (upper / "opaque").mkdir()
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    out = tmp_path / "layer.tar.gz"
    write_upper_layer(upper, out)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert tar.extractfile("etc/new").read() == b"x"  # type: ignore[union-attr]
    assert sorted(names) == ["etc", "etc/.wh.gone", "etc/new", "opaque",
                             "opaque/.wh..wh..opq"]
    again = tmp_path / "again.tar.gz"
    write_upper_layer(upper, again)
    assert out.read_bytes() == again.read_bytes()  # the same changes, the same layer
    assert io.BytesIO(out.read_bytes()).read(2) == b"\x1f\x8b"
