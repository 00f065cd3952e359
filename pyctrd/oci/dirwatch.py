"""Learning that files in a directory changed, without polling: inotify in the event loop.

One inotify instance serves the whole daemon (the kernel allows only 128
instances per user, but thousands of watches), and one watch serves every
subscriber of a directory: inotify_add_watch returns the same descriptor for
the same directory, so watches are reference counted here.
"""

import asyncio
import ctypes
import os
import struct
from pathlib import Path

IN_MODIFY = 0x0002
IN_MOVED_TO = 0x0080
IN_CREATE = 0x0100
IN_IGNORED = 0x8000  # the watch is gone (directory deleted, or watch removed)
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# Writes to a file, and files appearing (created or renamed in, as a rotated log is).
CHANGES = IN_MODIFY | IN_CREATE | IN_MOVED_TO

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


class _Inotify:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        self._subscribers: dict[int, set[asyncio.Event]] = {}
        loop.add_reader(self.fd, self._on_readable)

    def subscribe(self, directory: Path) -> tuple[int, asyncio.Event]:
        wd = _check(_libc.inotify_add_watch(self.fd, os.fsencode(directory), CHANGES))
        event = asyncio.Event()
        self._subscribers.setdefault(wd, set()).add(event)
        return wd, event

    def unsubscribe(self, wd: int, event: asyncio.Event) -> None:
        events = self._subscribers.get(wd)
        if events is None:
            return
        events.discard(event)
        if not events:
            del self._subscribers[wd]
            _libc.inotify_rm_watch(self.fd, wd)  # EINVAL if the kernel dropped it already

    def _on_readable(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, name_len = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + name_len
                for event in self._subscribers.get(wd, ()):
                    event.set()
                if mask & IN_IGNORED:
                    self._subscribers.pop(wd, None)


_instance: _Inotify | None = None


def _inotify() -> _Inotify:
    global _instance
    loop = asyncio.get_running_loop()
    if _instance is None or _instance.loop is not loop:
        _instance = _Inotify(loop)  # a new loop (tests): the old instance dies with its loop
    return _instance


class DirWatch:
    """Subscribe to changes in ``directory``; ``changed()`` returns after the next one.

    A change that happens between two ``changed()`` calls is not lost: the
    next call returns at once. Use as a context manager.
    """

    def __init__(self, directory: Path) -> None:
        self._inotify = _inotify()
        self._wd, self._event = self._inotify.subscribe(directory)

    async def changed(self) -> None:
        await self._event.wait()
        self._event.clear()

    def close(self) -> None:
        self._inotify.unsubscribe(self._wd, self._event)

    def __enter__(self) -> "DirWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

