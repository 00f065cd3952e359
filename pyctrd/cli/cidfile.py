"""--cidfile: refused when it exists before anything is created, written once
the container is (podman writes the ID without a newline)."""

from __future__ import annotations

import os

from pyctrd.cli.errors import CliError


def check_cidfile(path: str | None) -> None:
    """podman refuses a --cidfile that exists before creating anything."""
    if path and os.path.exists(path):
        raise CliError(f"container id file exists. Ensure another container is not using it "
                       f"or delete {path}")


def write_cidfile(path: str | None, cid: str) -> None:
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise CliError(f"opening cidfile: {err.strerror}: {path}") from None
    with os.fdopen(fd, "w") as f:
        f.write(cid)
