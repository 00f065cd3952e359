"""pyctrd/teardown.py: a container's blocking teardown steps run in their own few
threads, never more at once than THREADS, apart from asyncio's default pool."""

import asyncio
import threading
import time

from pyctrd import teardown


async def test_steps_run_in_the_teardown_threads_at_most_threads_at_once() -> None:
    running = 0
    most = 0
    names: set[str] = set()
    lock = threading.Lock()

    def step() -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        names.add(threading.current_thread().name)
        time.sleep(0.01)
        with lock:
            running -= 1
        return "done"

    results = await asyncio.gather(*(teardown.in_thread(step) for _ in range(8)))
    assert results == ["done"] * 8
    assert most == teardown.THREADS
    assert all(name.startswith("pyctrd-teardown") for name in names)


async def test_the_default_pool_is_not_held_up_by_teardown() -> None:
    release = threading.Event()
    held = [teardown.in_thread(release.wait, 10) for _ in range(teardown.THREADS)]
    blocked = asyncio.gather(*held)
    # every teardown thread is busy; the default pool still answers
    assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 5) == "free"
    release.set()
    assert await blocked == [True] * teardown.THREADS
