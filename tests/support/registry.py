"""A local registry for tests and benchmarks: Debian's docker-registry
(distribution 2.8) on 127.0.0.1, plain HTTP or TLS with a throwaway CA and
htpasswd auth, and images pushed into it with skopeo."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*argv: str | Path, timeout: float = 120) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


class Registry:
    """One docker-registry process; ``stop()`` ends it (and only it)."""

    def __init__(self, base: Path, *, tls: bool = False, user: str = "",
                 password: str = "") -> None:
        self.base = base
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.log_path = base / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None
        base.mkdir(parents=True, exist_ok=True)
        lines = ["version: 0.1", "log:", "  level: info", "  accesslog:",
                 "    disabled: false", "storage:", "  filesystem:",
                 f"    rootdirectory: {base / 'store'}", "  delete:", "    enabled: true",
                 "http:", f"  addr: {self.host}"]
        if tls:
            self.ca = base / "ca.crt"
            self._make_certs()
            lines += ["  tls:", f"    certificate: {base / 'server.crt'}",
                      f"    key: {base / 'server.key'}"]
        if user:
            run("htpasswd", "-Bbc", base / "htpasswd", user, password)
            lines += ["auth:", "  htpasswd:", "    realm: pyctrd-test",
                      f"    path: {base / 'htpasswd'}"]
        (base / "config.yml").write_text("\n".join(lines) + "\n")

    def _make_certs(self) -> None:
        b = self.base
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=pyctrd test CA", "-keyout", b / "ca.key", "-out", b / "ca.crt")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", b / "server.key", "-out", b / "server.csr")
        (b / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
        run("openssl", "x509", "-req", "-in", b / "server.csr", "-CA", b / "ca.crt",
            "-CAkey", b / "ca.key", "-CAcreateserial", "-days", "2", "-extfile",
            b / "ext.cnf", "-out", b / "server.crt")

    def start(self) -> Registry:
        log = open(self.log_path, "ab")  # noqa: SIM115 (the process keeps it)
        self.proc = subprocess.Popen([REGISTRY, "serve", str(self.base / "config.yml")],
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"docker-registry exited: {self.log_path.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError("docker-registry did not listen within 15 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def blob_gets(self, digest: str = "") -> int:
        """GETs of blobs (of one digest, if given) in the access log so far."""
        pattern = re.compile(r'"GET /v2/[^ ]+/blobs/' + re.escape(digest) +
                             r'[^ ]* HTTP/[0-9.]+" 200 ')
        text = self.log_path.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if pattern.search(line))

    def push(self, source: str, name: str, *creds: str) -> str:
        """skopeo copy ``source`` (transport:ref) → this registry's ``name``."""
        argv: list[str | Path] = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if creds:
            argv += ["--dest-creds", creds[0]]
        run(*argv, source, f"docker://{self.host}/{name}")
        return f"{self.host}/{name}"

    def manifest_digest(self, name: str, *creds: str) -> str:
        argv: list[str | Path] = ["skopeo", "inspect", "--tls-verify=false",
                                  "--format", "{{.Digest}}"]
        if creds:
            argv += ["--creds", creds[0]]
        return run(*argv, f"docker://{self.host}/{name}").strip()


def ping(url: str) -> bool:
    with contextlib.suppress(OSError):
        urllib.request.urlopen(url, timeout=2)
        return True
    return False


def build_layered(busybox_tar: Path, work: Path, extra_layers: list[dict[str, bytes]]
                  ) -> Path:
    """An OCI layout at ``work``/layout with tag "base" (busybox alone) and tag "top"
    (busybox plus one layer per dict of path → content)."""
    layout = work / "layout"
    run("umoci", "init", "--layout", layout)
    image = f"{layout}:top"
    run("umoci", "new", "--image", image)
    bundle = work / "b0"
    run("umoci", "unpack", "--image", image, bundle)
    run("tar", "-xf", busybox_tar, "-C", bundle / "rootfs")
    run("umoci", "repack", "--image", image, bundle)
    run("umoci", "config", "--image", image, "--config.cmd", "sh")
    run("umoci", "tag", "--image", image, "base")
    for n, files in enumerate(extra_layers, 1):
        bundle = work / f"b{n}"
        run("umoci", "unpack", "--image", image, bundle)
        for name, data in files.items():
            target = bundle / "rootfs" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        run("umoci", "repack", "--image", image, bundle)
    return layout
