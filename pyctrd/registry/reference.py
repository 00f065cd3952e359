"""Image references as docker/distribution spells them, and short-name resolution.

``name[:tag][@sha256:digest]``; the first path component is a registry when it
holds a "." or ":" or is "localhost". A short name (no registry) is tried on
each of registries.conf's ``unqualified-search-registries`` in turn (after its
``[aliases]``), as podman does; with none configured, docker.io.
"""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pyctrd.errors import InvalidArgument, RegistryFailed

COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])" \
         r"(?::[0-9]+)?"
REFERENCE_RE = re.compile(
    rf"(?:(?P<domain>{DOMAIN})/)?(?P<path>{COMPONENT}(?:/{COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?")
REGISTRIES_CONF = Path("/etc/containers/registries.conf")
DEFAULT_REGISTRY = "docker.io"  # its single-component names live under library/


@dataclass(frozen=True)
class Reference:
    domain: str  # "" for a short name
    path: str
    tag: str  # "" when only a digest names it
    digest: str  # "sha256:…" or ""

    def __str__(self) -> str:
        name = f"{self.domain}/{self.path}" if self.domain else self.path
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def on(self, domain: str) -> "Reference":
        path = self.path
        if domain == DEFAULT_REGISTRY and "/" not in path:
            path = f"library/{path}"
        return Reference(domain, path, self.tag, self.digest)


def parse(text: str) -> Reference:
    """A reference, ":latest" when it names neither tag nor digest; InvalidArgument if
    it is none."""
    given = text.removeprefix("docker://")
    match = REFERENCE_RE.fullmatch(given) if len(given) <= 512 else None
    if match is None:
        raise InvalidArgument(
            f"{text!r} is not an image reference; write [REGISTRY/]NAME[:TAG][@DIGEST], "
            "e.g. quay.io/podman/hello:latest (names are lower case)")
    domain, path = match.group("domain") or "", match.group("path")
    if domain and not ("." in domain or ":" in domain or domain == "localhost"
                       or domain.startswith("[")):
        if not re.fullmatch(COMPONENT, domain):
            raise InvalidArgument(f"{text!r} is not an image reference: names are lower case")
        path, domain = f"{domain}/{path}", ""  # "library/x": no registry named
    tag, digest = match.group("tag") or "", match.group("digest") or ""
    if not tag and not digest:
        tag = "latest"
    return Reference(domain, path, tag, digest)


def candidates(ref: Reference, conf: Path = REGISTRIES_CONF) -> list[Reference]:
    """The fully qualified references to try for ``ref``, in order."""
    if ref.domain:
        return [ref]
    config = _read_conf(conf)
    aliases = config.get("aliases")
    if isinstance(aliases, dict):
        alias = aliases.get(ref.path)
        if isinstance(alias, str):
            target = parse(alias)
            return [Reference(target.domain, target.path, ref.tag if ref.tag != "latest"
                              or not target.tag else target.tag, ref.digest)]
    search = config.get("unqualified-search-registries")
    registries = [r for r in search if isinstance(r, str)] if isinstance(search, list) else []
    if not registries:  # as podman: no guessing where a short name lives
        raise RegistryFailed(
            f"short name {ref.path!r} has no alias and {conf} names no "
            "unqualified-search-registries; give the registry, e.g. "
            f"docker.io/library/{ref.path}")
    return [ref.on(domain) for domain in registries]


def _read_conf(conf: Path) -> dict[str, object]:
    """registries.conf (v2 TOML) and its drop-ins; {} where unreadable (skopeo itself
    then reports what is wrong with it)."""
    found: dict[str, object] = {}
    files = [conf, *sorted((conf.parent / "registries.conf.d").glob("*.conf"))]
    for path in files:
        try:
            with open(path, "rb") as f:
                found.update(tomllib.load(f))
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return found
