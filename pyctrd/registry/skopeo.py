"""skopeo, the field's registry client (containers/image), as pyctrd runs it.

Every transfer is one ``skopeo`` process with an argument list (never a
shell), in a process group of its own so that a cancelled job takes all of
it down. Credentials reach it only through an auth file of mode 0600 in a
private directory, removed once the process is gone: never an argument
(visible in /proc/PID/cmdline) and never logged. Which registries exist,
their mirrors and whether they are insecure is registries.conf's to say, and
which signatures are needed policy.json's: skopeo reads both itself (the
system files, or the ones the daemon's config names).
"""

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyctrd.errors import InvalidArgument, RegistryFailed
from pyctrd.oci.spawn import spawn
from pyctrd.registry.reference import Reference
from pyctrd.storage.imageformats import host_architecture

log = logging.getLogger(__name__)

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
INSPECT_TIMEOUT = 120.0
STDERR_LIMIT = 64 << 10


@dataclass(frozen=True)
class TransferOptions:
    tls_verify: bool = True
    credentials: str = ""  # "user:password"; only ever written to a private auth file
    platform: str = ""  # "os/arch[/variant]"; "" the host's

    def __repr__(self) -> str:  # never show the credentials, not even in a traceback
        return (f"TransferOptions(tls_verify={self.tls_verify}, "
                f"credentials={'<set>' if self.credentials else ''!r}, "
                f"platform={self.platform!r})")


def check_options(options: TransferOptions) -> None:
    if options.credentials and ":" not in options.credentials:
        raise InvalidArgument("credentials must be \"user:password\"")
    if options.credentials and any(c in options.credentials for c in "\0\n"):
        raise InvalidArgument("credentials must not hold NUL or newline characters")
    if options.platform and not re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?",
                                             options.platform):
        raise InvalidArgument(f"platform {options.platform!r} is not OS/ARCH[/VARIANT], "
                              "e.g. linux/amd64")


class Skopeo:
    def __init__(self, path: str = "skopeo", *, private_dir: Path,
                 registries_conf: Path | None = None, policy: Path | None = None,
                 auth_file: Path | None = None, registries_d: Path | None = None) -> None:
        """``private_dir``: a 0700 directory for the per-call auth files;
        ``auth_file``: the daemon-wide credentials used when a call brings none;
        ``registries_d``: where signature lookaside is configured (None: skopeo's
        default, /etc/containers/registries.d)."""
        self.path = path
        self.private_dir = private_dir
        self.registries_conf = registries_conf
        self.policy = policy
        self.auth_file = auth_file
        self.registries_d = registries_d

    # credentials

    @contextlib.contextmanager
    def auth_for(self, registry: str, options: TransferOptions) -> Iterator[Path | None]:
        """The auth file for a call: a private one holding ``options.credentials`` for
        ``registry`` (removed on leaving), else the daemon-wide one, else None."""
        if not options.credentials:
            yield self.auth_file
            return
        self.private_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.private_dir / f"auth-{secrets.token_hex(8)}.json"
        token = base64.b64encode(options.credentials.encode()).decode()
        data = json.dumps({"auths": {registry: {"auth": token}}}).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    # calls

    def _global_args(self, options: TransferOptions) -> list[str]:
        argv = [self.path]
        if self.policy is not None:
            argv += ["--policy", str(self.policy)]
        if self.registries_d is not None:
            argv += ["--registries.d", str(self.registries_d)]
        if options.platform:
            parts = options.platform.split("/")
            argv += ["--override-os", parts[0], "--override-arch", parts[1]]
            if len(parts) > 2:
                argv += ["--override-variant", parts[2]]
        return argv

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.registries_conf is not None:
            env["CONTAINERS_REGISTRIES_CONF"] = str(self.registries_conf)
        return env

    async def manifest(self, ref: Reference, options: TransferOptions
                       ) -> tuple[str, dict[str, Any]]:
        """(digest or "", manifest) of the image ``ref`` names for our platform: an
        index is resolved to the platform's manifest."""
        raw = await self._inspect_raw(ref, options)
        manifest = _json_object(raw, ref)
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            digest = _pick_platform(manifest, options.platform, ref)
            pinned = Reference(ref.domain, ref.path, "", digest)
            return digest, _json_object(await self._inspect_raw(pinned, options), ref)
        return ref.digest, manifest

    async def _inspect_raw(self, ref: Reference, options: TransferOptions) -> bytes:
        with self.auth_for(ref.domain, options) as auth:
            argv = [*self._global_args(options), "inspect", "--raw", "--retry-times", "0",
                    f"--tls-verify={'true' if options.tls_verify else 'false'}"]
            if auth is not None:
                argv += ["--authfile", str(auth)]
            argv.append(f"docker://{ref}")
            out, err, code = await self._run(argv, INSPECT_TIMEOUT)
        if code != 0:
            raise registry_error(err, str(ref))
        return out

    async def copy(self, source: str, dest: str, registry: str,
                   options: TransferOptions, *, pulling: bool) -> None:
        """skopeo copy ``source`` → ``dest`` (transport:name each); the registry side's
        TLS and credentials from ``options``."""
        side = "src" if pulling else "dest"
        with self.auth_for(registry, options) as auth:
            argv = [*self._global_args(options), "copy", "--quiet", "--retry-times", "0",
                    f"--{side}-tls-verify={'true' if options.tls_verify else 'false'}"]
            if auth is not None:
                argv += [f"--{side}-authfile", str(auth)]
            argv += [source, dest]
            _out, err, code = await self._run(argv, None)
        if code != 0:
            raise registry_error(err, source if pulling else dest)

    async def _run(self, argv: list[str], timeout: float | None) -> tuple[bytes, str, int]:
        log.debug("running %s", " ".join(argv))  # never holds credentials
        try:
            # posix_spawn, exit seen by pidfd (oci/spawn.py); its own session, so that
            # a cancel kills what skopeo may have started too
            child = spawn(argv, env=self._env(), new_session=True)
        except OSError as err:
            raise RegistryFailed(f"cannot run {self.path}: {err}; install skopeo") from err
        try:
            done = await asyncio.wait_for(child.communicate(), timeout)
        except (asyncio.CancelledError, TimeoutError) as exc:
            child.killpg()
            with contextlib.suppress(Exception):
                await asyncio.shield(child.wait())
            if isinstance(exc, TimeoutError):
                raise RegistryFailed(f"the registry did not answer within {timeout:.0f} s"
                                     ) from None
            raise
        finally:
            child.close()
        message = done.stderr[-STDERR_LIMIT:].decode(errors="replace").strip()
        return done.stdout, message, done.returncode


def _json_object(raw: bytes, ref: Reference) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise RegistryFailed(f"the registry sent no manifest for {ref}")
    return value


def _pick_platform(index: dict[str, Any], platform: str, ref: Reference) -> str:
    wanted = platform.split("/") if platform else ["linux", host_architecture()]
    for entry in index.get("manifests") or []:
        plat = entry.get("platform") if isinstance(entry, dict) else None
        if not isinstance(plat, dict):
            continue
        if plat.get("os") == wanted[0] and plat.get("architecture") == wanted[1] and (
                len(wanted) < 3 or plat.get("variant") == wanted[2]):
            digest = entry.get("digest")
            if isinstance(digest, str) and digest.startswith("sha256:"):
                return digest
    raise RegistryFailed(f"{ref} has no image for {'/'.join(wanted)}")


# what containers/image says, and what the caller is told
_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"x509:|certificate|tls: ", re.I),
     "TLS verification of the registry failed ({detail}); install its CA certificate "
     "under /etc/containers/certs.d/REGISTRY/ or pass tls_verify=false"),
    (re.compile(r"unauthorized|authentication required|invalid username/password|"
                r"access to the resource is denied|403 Forbidden", re.I),
     "the registry refused the credentials for {what} ({detail}); check the user "
     "name and password"),
    (re.compile(r"manifest unknown|name unknown|not found|repository .* not exist", re.I),
     "the registry has no image {what} ({detail}); check the name and tag"),
    (re.compile(r"connection refused|no such host|i/o timeout|network is unreachable|"
                r"dial tcp|no route to host|server misbehaving|EOF", re.I),
     "the registry for {what} could not be reached ({detail}); check the address "
     "and that the registry is up"),
    (re.compile(r"signature|policy", re.I),
     "the image {what} is refused by the signature policy ({detail}); see "
     "/etc/containers/policy.json"),
)


def registry_error(stderr: str, what: str) -> RegistryFailed:
    """A RegistryFailed whose message says which of the known causes it was."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    detail = lines[-1] if lines else "skopeo failed without a message"
    detail = re.sub(r'^time="[^"]*" level=\w+ msg="(.*)"$', r"\1", detail)[:500]
    for pattern, message in _CAUSES:
        if pattern.search(detail):
            return RegistryFailed(message.format(what=what, detail=detail))
    return RegistryFailed(f"transferring {what} failed: {detail}")


def write_registries_d(directory: Path, lookaside: Path) -> None:
    """A registries.d whose signature lookaside is ``lookaside``.

    With no registries.d entry, containers/image reads signatures of every image
    from /var/lib/containers/sigstore when it runs as uid 0, as skopeo does in
    a user's own daemon's namespace; there the user may not read it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lookaside.mkdir(parents=True, exist_ok=True)
    config = directory / "default.yaml"
    text = f"default-docker:\n  lookaside: file://{lookaside}\n"
    if not config.exists() or config.read_text() != text:
        tmp = config.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, config)
