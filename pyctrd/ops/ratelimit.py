"""Log lines that an attacker can trigger, at most one per key per interval.

A flood of refused calls must not become a flood of log lines: the first
line of a key is written, the next ones within ``interval`` are counted,
and the following line says how many were suppressed.
"""

import logging
import time
from collections.abc import Hashable

KEYS_MAX = 4096  # bounds the memory a stream of fresh keys can take


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._log = logger
        self._interval = interval
        self._last: dict[Hashable, tuple[float, int]] = {}  # key -> (written at, suppressed)

    def __call__(self, level: int, key: Hashable, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``key`` was logged within the interval;
        whether it was written."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if len(self._last) >= KEYS_MAX:
            self._forget(now)
        suppressed = last[1] if last is not None else 0
        if suppressed:
            message += " (%d similar lines suppressed)"
            args = (*args, suppressed)
        self._last[key] = (now, 0)
        self._log.log(level, message, *args)
        return True

    def _forget(self, now: float) -> None:
        for key, (at, _n) in list(self._last.items()):
            if now - at >= self._interval:
                del self._last[key]
        if len(self._last) >= KEYS_MAX:
            self._last.clear()
