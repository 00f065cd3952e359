"""The thread a container's exit and removal block in, apart from the loop's default pool.

An exit's cleanup and a Remove hand a few short blocking steps to a thread
(/dev/shm's lazy umount2; runc's state deleted and its cgroups removed; the
bundle deleted). When 500 containers exit at once, asyncio's
default pool ran six such threads side by side, each taking the GIL for its
bits of Python between system calls, while the loop thread needs the GIL back
after every system call of its own: a property Get's p99 during the storm
was 100-130 ms with six threads, 18-83 ms with two, 17-38 ms with one, and
the storm was cleaned up about as fast (1.6-1.9 s; bench/RESULTS.md). Steps
of unbounded length (the root filesystem's umount, which syncs what the
container wrote; deleting it; imports, exports, commits, transfers, lock
waits) stay in the default pool, so that no container can hold up every
other container's teardown.
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

THREADS = 1

_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="pyctrd-teardown")
    return _pool


async def in_thread(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` in one of the lifecycle threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_threads(), functools.partial(fn, *args, **kwargs))
