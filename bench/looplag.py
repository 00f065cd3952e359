#!/usr/bin/env python3
"""Run pyctrd with its event loop's slow iterations recorded: what stalled it, and why.

    looplag.py OUTPUT PYCTRD-ARGS...

Each callback over 2 ms is timed three ways: wall time, the loop thread's CPU
time, and its run-queue delay (/proc/self/task/TID/schedstat: time it was
runnable but not running). Wall time with neither CPU nor run-queue time is
time blocked: on the GIL (another thread holds it) or in a system call. At
exit OUTPUT lists the slowest iterations (over 15 ms) with when they began
(CLOCK_MONOTONIC) and their slowest callbacks. bench/storm.py --loop-lag uses
it for the exit storm. The instrumentation costs microseconds per callback.
"""

import asyncio.base_events
import asyncio.events
import atexit
import sys
import threading
import time
from typing import Any

SLOW_CALLBACK = 0.002
SLOW_ITERATION = 0.015

_callbacks: list[tuple[float, str]] = []
_iterations: list[tuple[float, int, float, list[tuple[float, str]]]] = []
_original_run = asyncio.events.Handle._run
_original_run_once = asyncio.base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]


def _run_queue_ms() -> float:
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        return int(f.read().split()[1]) / 1e6


def _timed_run(self: asyncio.events.Handle) -> None:
    wall, cpu, queued = time.perf_counter(), time.thread_time(), _run_queue_ms()
    try:
        _original_run(self)
    finally:
        took = time.perf_counter() - wall
        if took > SLOW_CALLBACK:
            what = repr(getattr(self, "_callback", None))[:70]
            _callbacks.append((took, f"{what} [cpu {(time.thread_time() - cpu) * 1e3:.1f} "
                                     f"ms, run queue {_run_queue_ms() - queued:.1f} ms]"))


def _timed_run_once(self: Any) -> None:
    _callbacks.clear()
    ready = len(self._ready)
    began = time.perf_counter()
    _original_run_once(self)
    took = time.perf_counter() - began
    # An iteration that began with nothing ready may have waited in epoll: idle.
    if took > SLOW_ITERATION and ready:
        _iterations.append((took, ready, time.monotonic() - took,
                            sorted(_callbacks, reverse=True)[:5]))


def _report(path: str) -> None:
    with open(path, "w") as out:
        for took, ready, began, slowest in sorted(_iterations, reverse=True)[:30]:
            out.write(f"at {began:.3f}: {took * 1e3:.1f} ms, {ready} ready; "
                      + "; ".join(f"{t * 1e3:.1f} ms {what}" for t, what in slowest) + "\n")
        out.write(f"{len(_iterations)} iterations over {SLOW_ITERATION * 1e3:.0f} ms\n")


def main() -> None:
    output, sys.argv = sys.argv[1], ["pyctrd", *sys.argv[2:]]
    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]
    asyncio.base_events.BaseEventLoop._run_once = _timed_run_once  # type: ignore[attr-defined]
    atexit.register(_report, output)
    from pyctrd.daemon import main as pyctrd_main
    pyctrd_main()


if __name__ == "__main__":
    main()
