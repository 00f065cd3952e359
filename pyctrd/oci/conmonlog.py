"""Container logs: conmon's k8s-file turned into records and streamed into a pipe.

conmon writes one file line per chunk of output::

    <RFC 3339 time> <stdout|stderr> <P|F> <text>\\n

P marks a partial line: conmon's 8 KiB buffer filled (or the process
flushed) before a newline. A reader of ours gets one line per record::

    <RFC 3339 time> <stdout|stderr> <text>\\n

with partials joined, timed when the record began. With --log-size-max,
conmon 2.1.6 rotates by renaming a fresh file over the log (a new inode); a
truncation in place (the file shorter than what we read) is handled too.

Nothing here blocks the event loop: file reads run in a thread, the pipe is
written without blocking, and at most one chunk (plus held-back partials, each
capped) is in memory per stream, however slowly the reader reads.
"""

import asyncio
import logging
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from pyctrd.oci.dirwatch import DirWatch

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
RECORD_MAX = 1 << 20  # a longer record is cut here, so that memory stays bounded


class LogConverter:
    """Incremental k8s-file → records; feed it the file's bytes in any chunks."""

    def __init__(self, record_max: int = RECORD_MAX) -> None:
        self._record_max = record_max
        self._tail = b""  # an incomplete file line, until its newline arrives
        # stream → (time of its first part, parts, total size)
        self._partial: dict[bytes, tuple[bytes, list[bytes], int]] = {}

    def feed(self, data: bytes) -> bytes:
        """The records completed by ``data``."""
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > self._record_max:  # not conmon's writing: drop the garbage
            self._tail = b""
        out: list[bytes] = []
        for line in lines:
            self._line(line, out)
        return b"".join(out)

    def new_file(self) -> None:
        """The log was rotated or truncated: the next bytes start a fresh line."""
        self._tail = b""

    def finish(self) -> bytes:
        """At the end of the log: the partial records held back (the text had no newline)."""
        out = b"".join(_record(time, stream, parts)
                       for stream, (time, parts, _) in self._partial.items())
        self._partial.clear()
        self._tail = b""
        return out

    def _line(self, line: bytes, out: list[bytes]) -> None:
        fields = line.split(b" ", 3)
        if len(fields) < 3:
            return  # not a conmon line (an empty one, or torn by a crash)
        time, stream, tag = fields[:3]
        text = fields[3] if len(fields) == 4 else b""
        time, parts, size = self._partial.pop(stream, (time, [], 0))
        parts.append(text)
        size += len(text)
        # k8s tags may carry more after a colon; the first one is P or F
        if tag.split(b":", 1)[0] == b"P" and size < self._record_max:
            self._partial[stream] = (time, parts, size)
        else:
            out.append(_record(time, stream, parts))


def _record(time: bytes, stream: bytes, parts: list[bytes]) -> bytes:
    return b"%s %s %s\n" % (time, stream, b"".join(parts))


class ReaderGone(Exception):
    """The read end of the pipe was closed."""


class PipeWriter:
    """Non-blocking writes into a pipe's write end, which this object owns and closes.

    ``gone`` is set as soon as the reader closes its end, even while nothing
    is being written: the write end then reports an error (EPOLLERR), which a
    read registration sees.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.gone = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._on_error)

    def _on_error(self) -> None:
        self._loop.remove_reader(self.fd)  # level-triggered: once is enough
        self.gone.set()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                await self._writable()
            except BrokenPipeError:
                raise ReaderGone from None

    async def _writable(self) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_writer(self.fd, wake)
        try:
            await ready
        finally:
            self._loop.remove_writer(self.fd)

    def close(self) -> None:
        if not self.gone.is_set():
            self._loop.remove_reader(self.fd)
        os.close(self.fd)


class LogFile:
    """A log file read from where we left off, across rotation and truncation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._inode = 0
        self._offset = 0

    def read(self) -> bytes:
        """The next chunk; b"" at the end (or while there is no file)."""
        if self._fd is None and not self._open():
            return b""
        assert self._fd is not None
        data = os.read(self._fd, CHUNK)
        self._offset += len(data)
        return data

    def restarted(self) -> bool:
        """At the end of our file: has conmon started a new one (rotation or truncation)?

        If so, read from the new file's start next.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # removed: what we have is all there is
        if self._fd is None:
            return st.st_size > 0
        if st.st_ino != self._inode:
            self.close()
            return True
        if st.st_size < self._offset:
            os.lseek(self._fd, 0, os.SEEK_SET)
            self._offset = 0
            return True
        return False

    def _open(self) -> bool:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self._inode = os.fstat(self._fd).st_ino
        self._offset = 0
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def stream_log(path: Path, out_fd: int, until: Awaitable[Any] | None = None) -> None:
    """Write the log at ``path`` into the pipe ``out_fd`` as records, then close it.

    Without ``until``: what the log holds now. With it: keep following new
    output until ``until`` completes (the container exited: conmon wrote all
    it will write), then the rest, then EOF. Ends early, quietly, if the
    reader goes away.
    """
    out = PipeWriter(out_fd)
    log_file = LogFile(path)
    converter = LogConverter()
    ended = asyncio.ensure_future(until) if until is not None else None
    watch: DirWatch | None = None
    try:
        if ended is not None:
            # Watch before the first read, so that no write can slip between the two.
            try:
                watch = DirWatch(path.parent)
            except FileNotFoundError:
                pass  # no container directory: nothing will ever be written there
            except OSError as err:  # e.g. ENOSPC: out of inotify watches
                log.warning("cannot follow %s (%s); sending what it holds", path, err)
        while True:
            last = ended is None or ended.done() or watch is None
            await _copy(log_file, converter, out)
            if last:
                break
            assert watch is not None and ended is not None
            await _next_event(watch, ended, out)
            if out.gone.is_set():
                raise ReaderGone
        await out.write(converter.finish())
    except ReaderGone:
        pass
    finally:
        if ended is not None:
            ended.cancel()
        if watch is not None:
            watch.close()
        log_file.close()
        out.close()


async def _copy(log_file: LogFile, converter: LogConverter, out: PipeWriter) -> None:
    """Convert and write what the log holds beyond what was read."""
    while True:
        reading = asyncio.ensure_future(asyncio.to_thread(log_file.read))
        try:
            chunk = await asyncio.shield(reading)
        except asyncio.CancelledError:
            # The thread reads on: let it finish before the caller closes its file.
            await asyncio.wait([reading])
            raise
        if chunk:
            await out.write(converter.feed(chunk))
        elif log_file.restarted():
            converter.new_file()
        else:
            return


async def _next_event(watch: DirWatch, ended: asyncio.Future[Any], out: PipeWriter) -> None:
    """Until the log changes, the container ends or the reader goes away."""
    changed = asyncio.ensure_future(watch.changed())
    gone = asyncio.ensure_future(out.gone.wait())
    try:
        await asyncio.wait({changed, gone, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        changed.cancel()
        gone.cancel()
