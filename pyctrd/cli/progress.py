"""Feeding an archive to ImportImage through a pipe, with a progress bar.

ImportImage reads from a descriptor; given a pipe instead of the file, we
see how far it has read and draw that on stderr. A thread copies the file
into the pipe so the event loop stays free for the D-Bus call.
"""

from __future__ import annotations

import os
import select
import stat
import sys
import threading
import time
from typing import TextIO

CHUNK = 1 << 20
REDRAW_EVERY = 0.1  # seconds
BAR_WIDTH = 30
PROGRESS_MIN_SIZE = 1 << 20  # a smaller archive imports before a bar would say anything


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


class ProgressBar:
    """One line on a terminal, redrawn in place: "label [####....]  42%  12.3 / 29.1 MB"."""

    def __init__(self, label: str, total: int, out: TextIO) -> None:
        self.label = label
        self.total = max(total, 1)
        self.out = out
        self._last = 0.0

    def render(self, done: int) -> str:
        fraction = min(done / self.total, 1.0)
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return (f"{self.label} [{bar}] {fraction * 100:3.0f}%  "
                f"{_mb(done)} / {_mb(self.total)}")

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= REDRAW_EVERY:
            self._last = now
            self.out.write("\r" + self.render(done))
            self.out.flush()

    def finish(self, done: int) -> None:
        self.update(done, force=True)
        self.out.write("\n")
        self.out.flush()


class PipeFeeder:
    """Copies ``source_fd`` into a pipe whose read end goes to the daemon."""

    def __init__(self, source_fd: int, bar: ProgressBar | None) -> None:
        self.source_fd = source_fd
        self.bar = bar
        self.read_end, self.write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.write_end, False)  # a stalled reader must not hang the thread
        self.copied = 0
        self.error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._copy, name="import-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the copy (the daemon answered) and wait for the thread."""
        self._stop.set()
        self._thread.join()
        os.close(self.read_end)
        if self.bar is not None:
            self.bar.finish(self.copied)

    def _copy(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = os.read(self.source_fd, CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view and not self._stop.is_set():
                    # wait with a timeout: if the daemon gave up reading, stop() ends us
                    _, writable, _ = select.select([], [self.write_end], [], 0.2)
                    if writable:
                        try:
                            view = view[os.write(self.write_end, view):]
                        except BlockingIOError:
                            continue
                self.copied += len(chunk) - len(view)
                if self.bar is not None:
                    self.bar.update(self.copied)
        except OSError as err:  # EPIPE: the daemon closed its end (it refused the archive)
            self.error = err
        finally:
            os.close(self.write_end)  # EOF for the daemon


def wants_progress(fd: int, quiet: bool) -> int:
    """The archive's size if a progress bar should be drawn, else 0."""
    if quiet or not sys.stderr.isatty():
        return 0
    st = os.fstat(fd)
    return st.st_size if st.st_size >= PROGRESS_MIN_SIZE and stat.S_ISREG(st.st_mode) else 0
