"""Adapter over an OCI runtime binary (runc or crun).

Every call is an async subprocess with a timeout; a failure raises
RuntimeFailed carrying the runtime's stderr. All containers live under one
``--root`` inside the daemon's per-boot run root.
"""

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from pyctrd import teardown
from pyctrd.errors import RuntimeFailed
from pyctrd.oci import execfifo, runcstate
from pyctrd.oci.spawn import Spawner

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


class OCIRuntime:
    def __init__(self, path: str, root: Path, timeout: float = DEFAULT_TIMEOUT,
                 spawner: Spawner | None = None) -> None:
        self.path = path
        self.root = root
        self.timeout = timeout
        # one queue for every runtime binary we run, conmon's launches included
        self.spawner = spawner or Spawner()

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def global_args(self) -> list[str]:
        return [f"--root={self.root}"]

    async def run(self, *args: str, timeout: float | None = None) -> bytes:
        argv = [self.path, *self.global_args, *args]
        limit = timeout or self.timeout
        try:
            done = await self.spawner.run(argv, timeout=limit)
        except TimeoutError:
            raise RuntimeFailed(
                f"{self.name} {args[0]} did not finish within {limit:.0f} s") from None
        except OSError as err:  # EMFILE, a missing binary: the caller's RuntimeFailed
            raise RuntimeFailed(f"{self.name} {args[0]} could not be started: {err}") from None
        if done.returncode != 0:
            raise RuntimeFailed(f"{self.name} {args[0]} failed: {_last_error(done.stderr)}")
        return done.stdout

    async def start(self, cid: str) -> None:
        if self.reads_own_files:
            opened = runcstate.open_exec_fifo(self.root, cid)
            if opened is not None:
                fifo, pidfd = opened
                await execfifo.release_init(fifo, pidfd, self.timeout, f"{self.name} start")
                runcstate.remove_exec_fifo(self.root, cid)
                return
        await self.run("start", cid)

    async def kill(self, cid: str, signal: int, *, all_processes: bool = False) -> None:
        extra = ["--all"] if all_processes else []
        await self.run("kill", *extra, cid, str(signal))

    async def pause(self, cid: str) -> None:
        await self.run("pause", cid)

    async def resume(self, cid: str) -> None:
        await self.run("resume", cid)

    @property
    def reads_own_files(self) -> bool:
        """Its state files are runc's (see runcstate): read them, no call needed."""
        return self.name == "runc"

    async def delete(self, cid: str) -> None:
        """Delete the runtime's record of a container; absent is fine."""
        # Exited already: what runc delete would do, done without it, by a worker
        # (rmdir of cgroups waits on the kernel).
        if self.reads_own_files and await teardown.in_thread(
                runcstate.delete_stopped, self.root, cid):
            return
        try:
            await self.run("delete", "--force", cid)
        except RuntimeFailed as err:
            if not _is_missing(str(err)):
                raise

    async def state(self, cid: str) -> dict[str, Any] | None:
        """The runtime's view of a container, or None if it does not know it."""
        if self.reads_own_files:
            try:
                return runcstate.read_state(self.root, cid)
            except runcstate.Unsure as err:
                log.debug("container %s: asking %s: %s", cid, self.name, err)
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
