"""Adapter over an OCI runtime binary (runc or crun).

Every call is an async subprocess with a timeout; a failure raises
RuntimeFailed carrying the runtime's stderr. All containers live under one
``--root`` inside the daemon's per-boot run root.
"""

import asyncio
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from pyctrd.errors import RuntimeFailed

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


class OCIRuntime:
    def __init__(self, path: str, root: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.root = root
        self.timeout = timeout

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def global_args(self) -> list[str]:
        return [f"--root={self.root}"]

    async def run(self, *args: str, timeout: float | None = None) -> bytes:
        argv = [self.path, *self.global_args, *args]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout or self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeFailed(
                f"{self.name} {args[0]} did not finish within {timeout or self.timeout:.0f} s"
            ) from None
        if proc.returncode != 0:
            raise RuntimeFailed(f"{self.name} {args[0]} failed: {_last_error(err)}")
        return out

    async def start(self, cid: str) -> None:
        await self.run("start", cid)

    async def kill(self, cid: str, signal: int, *, all_processes: bool = False) -> None:
        extra = ["--all"] if all_processes else []
        await self.run("kill", *extra, cid, str(signal))

    async def pause(self, cid: str) -> None:
        await self.run("pause", cid)

    async def resume(self, cid: str) -> None:
        await self.run("resume", cid)

    async def delete(self, cid: str) -> None:
        """Delete the runtime's record of a container; absent is fine."""
        try:
            await self.run("delete", "--force", cid)
        except RuntimeFailed as err:
            if not _is_missing(str(err)):
                raise

    async def state(self, cid: str) -> dict[str, Any] | None:
        """The runtime's view of a container, or None if it does not know it."""
        try:
            out = await self.run("state", cid)
        except RuntimeFailed as err:
            if _is_missing(str(err)):
                return None
            raise
        return dict(json.loads(out))


def _is_missing(message: str) -> bool:
    return "does not exist" in message or "not found" in message


# msg="..." in a logfmt line, with \" and \\ escapes inside the quotes.
_LOGFMT_MSG = re.compile(r'\bmsg="((?:[^"\\]|\\.)*)"')


def _last_error(stderr: bytes) -> str:
    """runc logs JSON or logfmt lines; keep the human text of the last one."""
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return "no error output"
    last = lines[-1]
    if last.startswith("{"):
        try:
            return str(json.loads(last).get("msg", last))
        except ValueError:
            return last
    match = _LOGFMT_MSG.search(last)
    if match:
        return match.group(1).replace('\\"', '"').replace("\\\\", "\\")
    return last
